"""Every command and query of the rules, without a socket: state in, event or listing out.

Each test builds a State from events, as the owner does (decide, then apply), and checks
one rule in microseconds. The WebSocket tests check the same rules through the surface.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from morelia_trio.core import commands, queries
from morelia_trio.core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from morelia_trio.core.events import AnyEvent, MessageSent
from morelia_trio.core.paging import Bounds
from morelia_trio.core.records import Credentials, FlowType, MessageContent
from morelia_trio.core.snapshot_format import decode, encode
from morelia_trio.core.state import (
    MAX_SESSIONS_PER_USER,
    State,
    apply,
    capture,
    hash_token,
    restore,
)

T0 = 1_800_000_000.0
ANY = Bounds(1000, 10**9)
GENERAL = 1  # the flow bootstrap creates


def run(state: State, event: AnyEvent | None) -> AnyEvent:
    """Apply what a command decided, as the owner does once the journal has it."""
    assert event is not None
    apply(state, event)
    state.seq += 1
    return event


def new_state() -> State:
    state = State()
    run(state, commands.bootstrap(state, T0))
    return state


class Member(Credentials, frozen=True):
    """Credentials that name a user for certain, as every registered user's do."""

    user_id: int


def register(state: State, login: str, token: str | None = None) -> Member:
    token = token or f"{login}-token"
    event = commands.register_user(state, login, f"hash-{login}", None, None, hash_token(token), T0)
    run(state, event)
    return Member(event.user.id, token)


def flow(state: State, creds: Credentials, kind: FlowType, members: tuple[int, ...] = ()) -> int:
    event = commands.add_flow(state, creds, kind, f"a {kind}", None, list(members), T0)
    run(state, event)
    return event.flow.id


def send(
    state: State, creds: Credentials, flow_id: int, text: str = "hi", reply_to: int | None = None
) -> int:
    content = MessageContent(text=text, reply_to=reply_to)
    event = commands.send_message(state, creds, flow_id, content, T0)
    run(state, event)
    return event.message.id


# --- bootstrap and accounts ---------------------------------------------------------------------


def test_bootstrap_makes_one_general_group_on_a_new_server_only() -> None:
    state = new_state()
    assert [(f.id, f.type, f.title) for f in state.flows.values()] == [(1, "group", "General")]
    assert commands.bootstrap(state, T0) is None


def test_register_user_gives_a_token_that_authenticates() -> None:
    state = new_state()
    ann = register(state, "ann")
    assert state.authenticate(ann) == ann.user_id
    assert state.users[ann.user_id].username == "ann"  # the login when no name is given


def test_a_login_is_taken_in_every_case_and_form() -> None:
    state = new_state()
    register(state, "Ann")
    for taken in ("Ann", "ann", "ANN"):
        with pytest.raises(Conflict):
            commands.register_user(state, taken, "h", None, None, hash_token("t"), T0)


def test_no_user_beyond_the_largest_id() -> None:
    state = new_state()
    state.next_user_id = commands.MAX_ISSUED_ID + 1
    with pytest.raises(Conflict):
        commands.register_user(state, "ann", "h", None, None, hash_token("t"), T0)


def test_authenticate_needs_id_and_the_right_token() -> None:
    state = new_state()
    ann = register(state, "ann")
    bob = register(state, "bob")
    for wrong in (
        Credentials(None, ann.token),
        Credentials(ann.user_id, None),
        Credentials(ann.user_id, "guess"),
        Credentials(ann.user_id, bob.token),
    ):
        with pytest.raises(Unauthorized):
            state.authenticate(wrong)


def test_find_login_as_registered_or_by_its_form() -> None:
    state = new_state()
    ann = register(state, "Ann")
    assert queries.find_login(state, "Ann") == (ann.user_id, "hash-Ann")
    assert queries.find_login(state, "ann") == (ann.user_id, "hash-Ann")
    with pytest.raises(NotFound):
        queries.find_login(state, "bob")


def test_open_session_adds_a_token_and_keeps_the_old_ones() -> None:
    state = new_state()
    ann = register(state, "ann")
    run(state, commands.open_session(state, ann.user_id, "hash-ann", hash_token("second"), T0))
    assert state.authenticate(Credentials(ann.user_id, "second")) == ann.user_id
    assert state.authenticate(ann) == ann.user_id


def test_the_oldest_session_ends_past_the_cap() -> None:
    state = new_state()
    ann = register(state, "ann")
    for n in range(MAX_SESSIONS_PER_USER):
        run(state, commands.open_session(state, ann.user_id, "hash-ann", hash_token(f"t{n}"), T0))
    with pytest.raises(Unauthorized):
        state.authenticate(ann)
    assert state.authenticate(Credentials(ann.user_id, "t0")) == ann.user_id


def test_a_session_is_refused_for_an_account_that_changed_meanwhile() -> None:
    state = new_state()
    ann = register(state, "ann")
    with pytest.raises(NotFound):
        commands.open_session(state, ann.user_id, "another hash", hash_token("t"), T0)
    with pytest.raises(NotFound):
        commands.delete_user(state, ann.user_id, "another hash", T0)


def test_delete_user_ends_every_session_and_frees_the_login() -> None:
    state = new_state()
    ann = register(state, "ann")
    run(state, commands.delete_user(state, ann.user_id, "hash-ann", T0))
    with pytest.raises(Unauthorized):
        state.authenticate(ann)
    with pytest.raises(NotFound):
        queries.find_login(state, "ann")
    assert register(state, "ANN").user_id != ann.user_id


# --- flows --------------------------------------------------------------------------------------


def test_add_flow_makes_the_creator_owner_and_member() -> None:
    state = new_state()
    ann = register(state, "ann")
    bob = register(state, "bob")
    flow_id = flow(state, ann, "group", (bob.user_id,))
    added = state.flows[flow_id]
    assert added.owner == ann.user_id
    assert added.users == (ann.user_id, bob.user_id)


def test_a_chat_has_at_most_two_members_and_its_creator_among_them() -> None:
    state = new_state()
    ann, bob, cid = register(state, "ann"), register(state, "bob"), register(state, "cid")
    with pytest.raises(BadRequest):
        commands.add_flow(
            state, ann, "chat", "t", None, [ann.user_id, bob.user_id, cid.user_id], T0
        )
    with pytest.raises(Forbidden):
        commands.add_flow(state, ann, "chat", "t", None, [bob.user_id], T0)


def test_add_flow_refuses_unknown_members_and_strangers() -> None:
    state = new_state()
    ann = register(state, "ann")
    with pytest.raises(NotFound):
        commands.add_flow(state, ann, "group", "t", None, [99], T0)
    with pytest.raises(Unauthorized):
        commands.add_flow(state, Credentials(ann.user_id, "x"), "group", "t", None, [], T0)


def test_add_flow_stops_at_the_owned_flows_limit() -> None:
    state = new_state()
    ann = register(state, "ann")
    run(state, commands.add_flow(state, ann, "group", "one", None, [], T0, max_owned=1))
    with pytest.raises(Forbidden):
        commands.add_flow(state, ann, "group", "two", None, [], T0, max_owned=1)


def test_all_flow_shows_public_flows_and_ones_own_chats() -> None:
    state = new_state()
    ann, bob, cid = register(state, "ann"), register(state, "bob"), register(state, "cid")
    chat = flow(state, ann, "chat", (ann.user_id, bob.user_id))
    group = flow(state, cid, "group")
    assert [f.id for f in queries.all_flow(state, ann, 0, ANY).flows] == [GENERAL, chat, group]
    assert [f.id for f in queries.all_flow(state, cid, 0, ANY).flows] == [GENERAL, group]


def test_all_flow_pages_by_the_item_cap() -> None:
    state = new_state()
    ann = register(state, "ann")
    for _ in range(3):
        flow(state, ann, "group")
    listing = queries.all_flow(state, ann, 0, Bounds(2, 10**9))
    assert len(listing.flows) == 2 and listing.partial


# --- messages -----------------------------------------------------------------------------------


def test_send_message_stores_the_content_as_sent() -> None:
    state = new_state()
    ann = register(state, "ann")
    content = MessageContent(text="hello", emoji="🙂", client_id=7)
    event = commands.send_message(state, ann, GENERAL, content, T0)
    assert isinstance(event, MessageSent)
    message = event.message
    assert (message.flow_id, message.author_id) == (GENERAL, ann.user_id)
    assert (message.text, message.emoji, message.client_id) == ("hello", "🙂", 7)


def test_only_a_channels_owner_writes_to_it() -> None:
    state = new_state()
    ann, bob = register(state, "ann"), register(state, "bob")
    channel = flow(state, ann, "channel")
    send(state, ann, channel)
    with pytest.raises(Forbidden):
        commands.send_message(state, bob, channel, MessageContent(text="x"), T0)


def test_a_chat_is_invisible_to_others() -> None:
    state = new_state()
    ann, bob, cid = register(state, "ann"), register(state, "bob"), register(state, "cid")
    chat = flow(state, ann, "chat", (ann.user_id, bob.user_id))
    message_id = send(state, ann, chat)
    with pytest.raises(NotFound):
        commands.send_message(state, cid, chat, MessageContent(text="x"), T0)
    with pytest.raises(NotFound):
        queries.all_messages(state, cid, chat, 0, ANY)
    with pytest.raises(NotFound):
        commands.delete_message(state, cid, message_id, None, T0)


def test_a_reply_quotes_a_message_of_the_same_flow() -> None:
    state = new_state()
    ann = register(state, "ann")
    other = flow(state, ann, "group")
    quoted = send(state, ann, other)
    with pytest.raises(NotFound):
        commands.send_message(state, ann, GENERAL, MessageContent(text="x", reply_to=quoted), T0)
    assert state.messages[send(state, ann, other, reply_to=quoted)].reply_to == quoted


def test_the_storage_quota_counts_content_and_frees_it_on_delete() -> None:
    state = new_state()
    ann = register(state, "ann")
    first = commands.send_message(state, ann, GENERAL, MessageContent(text="12345678"), T0, 10)
    run(state, first)  # '"12345678"' is 10 bytes of JSON: exactly the quota
    with pytest.raises(PayloadTooLarge):
        commands.send_message(state, ann, GENERAL, MessageContent(text="x"), T0, 10)
    with pytest.raises(PayloadTooLarge):
        commands.edit_message(state, ann, first.message.id, None, "123456789", T0, 10)
    run(state, commands.delete_message(state, ann, first.message.id, None, T0))
    assert state.stored_bytes[ann.user_id] == 0


def test_only_the_author_edits_or_deletes_in_the_flow_named() -> None:
    state = new_state()
    ann, bob = register(state, "ann"), register(state, "bob")
    message_id = send(state, ann, GENERAL)
    with pytest.raises(Forbidden):
        commands.edit_message(state, bob, message_id, None, "mine now", T0)
    with pytest.raises(Forbidden):
        commands.delete_message(state, bob, message_id, None, T0)
    with pytest.raises(NotFound):
        commands.edit_message(state, ann, message_id, GENERAL + 1, "x", T0)
    with pytest.raises(NotFound):
        commands.edit_message(state, ann, message_id + 1, None, "x", T0)


def test_edit_replaces_the_text_and_marks_the_time() -> None:
    state = new_state()
    ann = register(state, "ann")
    message_id = send(state, ann, GENERAL, "before")
    run(state, commands.edit_message(state, ann, message_id, GENERAL, "after", T0 + 5))
    edited = state.messages[message_id]
    assert edited.text == "after" and edited.edited_time == T0 + 5


def test_a_deleted_message_is_gone_from_every_listing() -> None:
    state = new_state()
    ann = register(state, "ann")
    kept, gone = send(state, ann, GENERAL, "kept"), send(state, ann, GENERAL, "gone")
    run(state, commands.delete_message(state, ann, gone, None, T0))
    assert [m.id for m in queries.all_messages(state, ann, GENERAL, 0, ANY).messages] == [kept]
    assert gone not in [m.id for m in queries.get_update(state, ann, None, 0, ANY).messages]


def test_all_messages_merges_every_readable_flow_oldest_first() -> None:
    state = new_state()
    ann = register(state, "ann")
    other = flow(state, ann, "group")
    ids = [send(state, ann, GENERAL if n % 2 else other, f"m{n}") for n in range(6)]
    listing = queries.all_messages(state, ann, None, 0, ANY)
    assert [m.id for m in listing.messages] == ids
    assert listing.usernames == {ann.user_id: "ann"}
    assert listing.flow_types == {GENERAL: "group", other: "group"}


def test_all_messages_from_a_time_and_in_pages() -> None:
    state = new_state()
    ann = register(state, "ann")
    ids = [send(state, ann, GENERAL, f"m{n}") for n in range(5)]
    since = state.messages[ids[2]].time
    listed = queries.all_messages(state, ann, GENERAL, since, ANY).messages
    assert [m.id for m in listed] == ids[2:]
    page = queries.all_messages(state, ann, GENERAL, 0, Bounds(2, 10**9))
    assert [m.id for m in page.messages] == ids[:2] and page.partial


def test_a_deleted_author_shows_as_a_deleted_user() -> None:
    state = new_state()
    ann, bob = register(state, "ann"), register(state, "bob")
    send(state, bob, GENERAL)
    run(state, commands.delete_user(state, bob.user_id, "hash-bob", T0))
    listing = queries.all_messages(state, ann, GENERAL, 0, ANY)
    assert listing.usernames == {bob.user_id: queries.DELETED_USERNAME}


# --- other queries ------------------------------------------------------------------------------


def test_ping_only_checks_the_credentials() -> None:
    state = new_state()
    ann = register(state, "ann")
    queries.ping(state, ann)  # no error: the credentials hold
    with pytest.raises(Unauthorized):
        queries.ping(state, Credentials(ann.user_id, "x"))


def test_user_info_lists_oneself_first_then_each_named_user() -> None:
    state = new_state()
    ann, bob = register(state, "ann"), register(state, "bob")
    found = queries.user_info(state, bob, [ann.user_id, bob.user_id]).users
    assert [u.id for u in found] == [bob.user_id, ann.user_id, bob.user_id]
    with pytest.raises(NotFound, match=r"user\[2\]"):
        queries.user_info(state, bob, [ann.user_id, 99])


def test_get_update_lists_each_change_once_oldest_first() -> None:
    state = new_state()
    ann = register(state, "ann")
    first = send(state, ann, GENERAL, "one")
    second = send(state, ann, GENERAL, "two")
    run(state, commands.edit_message(state, ann, first, None, "one, edited", state.clock + 1))
    update = queries.get_update(state, ann, None, 0, ANY)
    assert [m.id for m in update.messages] == [second, first]  # the edit moved it last
    assert [f.id for f in update.flows] == [GENERAL]
    assert [u.id for u in update.users] == [ann.user_id]
    in_flow = queries.get_update(state, ann, GENERAL, 0, ANY)
    assert in_flow.users == [] and [f.id for f in in_flow.flows] == [GENERAL]


def test_get_update_since_a_time_shows_only_what_changed_from_it() -> None:
    state = new_state()
    ann = register(state, "ann")
    send(state, ann, GENERAL, "old")
    new = send(state, ann, GENERAL, "new")
    later = queries.get_update(state, ann, None, state.messages[new].time, ANY)
    assert [m.id for m in later.messages] == [new] and later.flows == [] and later.users == []


# --- snapshots ----------------------------------------------------------------------------------


def test_a_snapshot_restored_answers_every_query_alike() -> None:
    state = new_state()
    ann, bob = register(state, "ann"), register(state, "bob")
    chat = flow(state, ann, "chat", (ann.user_id, bob.user_id))
    for n in range(5):
        send(state, ann if n % 2 else bob, chat if n % 2 else GENERAL, f"m{n}")
    run(state, commands.delete_message(state, bob, 1, None, T0))
    restored = restore(decode(encode(capture(state), T0), Path("snapshot")))
    for creds in (ann, bob):
        for query in (queries.all_messages, queries.get_update):
            assert query(restored, creds, None, 0, ANY) == query(state, creds, None, 0, ANY)
        assert queries.all_flow(restored, creds, 0, ANY) == queries.all_flow(state, creds, 0, ANY)
    assert restored.stored_bytes == state.stored_bytes
    assert restored.seq == state.seq


def test_deletion_items_only_when_asked_and_only_to_who_could_see_the_message() -> None:
    state = new_state()
    ann, bob, carl = register(state, "ann"), register(state, "bob"), register(state, "carl")
    chat = flow(state, ann, "chat", (ann.user_id, bob.user_id))
    public, private = send(state, ann, GENERAL, "public"), send(state, ann, chat, "private")
    run(state, commands.delete_message(state, ann, public, None, T0))
    run(state, commands.delete_message(state, ann, private, None, T0))

    def deleted(creds: Credentials, with_deletions: bool) -> list[tuple[int, int]]:
        listing = queries.get_update(state, creds, None, 0, ANY, with_deletions)
        assert not listing.messages
        return [(d.id, d.flow_id) for d in listing.deletions]

    assert deleted(bob, False) == []
    assert deleted(bob, True) == [(public, GENERAL), (private, chat)]
    assert deleted(carl, True) == [(public, GENERAL)]
    restored = restore(decode(encode(capture(state), T0), Path("snapshot")))
    for creds in (ann, bob, carl):
        assert queries.get_update(restored, creds, None, 0, ANY, True) == queries.get_update(
            state, creds, None, 0, ANY, True
        )

"""Moderation's rules without a socket (CONTRACT §8.5): who deletes a message, server
admins, suspended accounts, and their place in the journal and in snapshots."""

from __future__ import annotations

import zlib
from pathlib import Path

import msgspec
import pytest

from morelia_trio.core import commands
from morelia_trio.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from morelia_trio.core.events import AdminChanged, AnyEvent, SuspensionChanged
from morelia_trio.core.snapshot_format import HEADER, MAGIC, decode, encode
from morelia_trio.core.state import apply, capture, hash_token, restore
from tests.test_core import GENERAL, T0, flow, new_state, register, run, send


def test_the_owner_of_a_group_or_channel_deletes_any_message_in_it() -> None:
    state = new_state()
    ann, bob = register(state, "ann"), register(state, "bob")
    group = flow(state, ann, "group")
    in_group = send(state, bob, group)
    run(state, commands.delete_message(state, ann, in_group, None, T0))
    assert state.messages.get(in_group) is None
    channel = flow(state, bob, "channel")
    mine = send(state, bob, channel)
    with pytest.raises(Forbidden):  # the owner of another flow is nobody here
        commands.delete_message(state, ann, mine, None, T0)


def test_a_chats_creator_moderates_nothing_and_edits_stay_the_authors() -> None:
    state = new_state()
    ann, bob = register(state, "ann"), register(state, "bob")
    chat = flow(state, ann, "chat", (ann.user_id, bob.user_id))
    from_bob = send(state, bob, chat)
    with pytest.raises(Forbidden):
        commands.delete_message(state, ann, from_bob, None, T0)
    group = flow(state, ann, "group")
    in_group = send(state, bob, group)
    with pytest.raises(Forbidden):  # the owner deletes, but never rewrites
        commands.edit_message(state, ann, in_group, None, "changed", T0)


def test_a_server_admin_deletes_any_message_it_may_see() -> None:
    state = new_state()
    ann, bob, eve = register(state, "ann"), register(state, "bob"), register(state, "eve")
    public = send(state, bob, GENERAL)
    chat = flow(state, ann, "chat", (ann.user_id, bob.user_id))
    private = send(state, bob, chat)
    with pytest.raises(Forbidden):
        commands.delete_message(state, eve, public, None, T0)
    run(state, commands.set_admin(state, eve.user_id, True, T0))
    with pytest.raises(NotFound):  # a chat it is not in stays out of its sight
        commands.delete_message(state, eve, private, None, T0)
    with pytest.raises(Forbidden):  # an admin still edits only its own
        commands.edit_message(state, eve, public, None, "x", T0)
    run(state, commands.delete_message(state, eve, public, None, T0))
    run(state, commands.set_admin(state, eve.user_id, False, T0))
    other = send(state, bob, GENERAL)
    with pytest.raises(Forbidden):
        commands.delete_message(state, eve, other, None, T0)


def test_making_an_admin_twice_or_an_unknown_user_is_refused() -> None:
    state = new_state()
    ann = register(state, "ann")
    run(state, commands.set_admin(state, ann.user_id, True, T0))
    with pytest.raises(Conflict):
        commands.set_admin(state, ann.user_id, True, T0)
    with pytest.raises(NotFound):
        commands.set_admin(state, ann.user_id + 1, True, T0)
    with pytest.raises(Conflict):
        commands.set_suspended(state, ann.user_id, False, T0)


def test_a_suspension_ends_sessions_refuses_logins_and_keeps_messages() -> None:
    state = new_state()
    ann = register(state, "ann")
    kept = send(state, ann, GENERAL)
    run(state, commands.set_suspended(state, ann.user_id, True, T0))
    with pytest.raises(Unauthorized):
        state.authenticate(ann)
    with pytest.raises(Forbidden, match="this account is suspended"):
        commands.open_session(state, ann.user_id, "hash-ann", hash_token("new-token"), T0)
    assert state.messages[kept].author_id == ann.user_id
    run(state, commands.set_suspended(state, ann.user_id, False, T0))
    with pytest.raises(Unauthorized):  # old tokens stay ended
        state.authenticate(ann)
    run(state, commands.open_session(state, ann.user_id, "hash-ann", hash_token("new-token"), T0))
    assert state.authenticate(msgspec.structs.replace(ann, token="new-token")) == ann.user_id


def test_the_operators_deletions_need_no_password() -> None:
    state = new_state()
    ann = register(state, "ann")
    message_id = send(state, ann, GENERAL)
    run(state, commands.remove_message(state, message_id, T0))
    with pytest.raises(NotFound):
        commands.remove_message(state, message_id, T0)
    run(state, commands.set_admin(state, ann.user_id, True, T0))
    run(state, commands.remove_user(state, ann.user_id, T0))
    assert ann.user_id not in state.users and not state.admins
    with pytest.raises(NotFound):
        commands.remove_user(state, ann.user_id, T0)


def test_moderation_events_replay_and_survive_a_snapshot() -> None:
    state = new_state()
    ann, bob = register(state, "ann"), register(state, "bob")
    events: list[AnyEvent] = [
        run(state, commands.set_admin(state, ann.user_id, True, T0)),
        run(state, commands.set_suspended(state, bob.user_id, True, T0)),
    ]
    assert isinstance(events[0], AdminChanged) and isinstance(events[1], SuspensionChanged)
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(events), type=list[AnyEvent])
    replayed = new_state()
    register(replayed, "ann")
    register(replayed, "bob")
    for event in decoded:
        apply(replayed, event)
    restored = restore(decode(encode(capture(state), T0), Path("snapshot")))
    for rebuilt in (replayed, restored):
        assert rebuilt.admins == {ann.user_id} and rebuilt.suspended == {bob.user_id}


def test_a_snapshot_from_before_moderation_loads_with_no_admins() -> None:
    state = new_state()
    register(state, "ann")
    old = msgspec.structs.asdict(capture(state))
    del old["admins"], old["suspended"]
    old["message_chunks"] = []
    payload = msgspec.msgpack.encode(old)  # as a server before moderation wrote it
    framed = MAGIC + HEADER.pack(len(payload), zlib.crc32(payload)) + payload
    restored = restore(decode(framed, Path("snapshot")))
    assert restored.admins == set() and restored.suspended == set()
    assert [u.login for u in restored.users.values()] == ["ann"]

"""What one user can make the server send or keep: reply bytes, flows, stored bytes.

Each limit is attacked through real sockets; the pure size bounds are held against the real
renderer for any text at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from morelia_trio import Running, serve
from morelia_trio.config import AbuseLimits, Config, Limits, Rate
from morelia_trio.core.answers import Answer
from morelia_trio.core.frames import Dialect
from morelia_trio.core.queries import Listing
from morelia_trio.core.records import Flow, Message, User
from morelia_trio.core.replies import render
from morelia_trio.core.sizes import (
    MESSAGE_KEYS,
    REPLY_ENVELOPE,
    flow_size,
    json_size,
    message_content,
    profile_size,
)
from tests.wire import Client, open_client

from .helpers import Frame, check_doc_reply, check_list_reply, exchange

KIB, MIB = 1024, 1024 * 1024
# Everything generous, so that each test meets only the limit it is about.
LAVISH = AbuseLimits(
    logins_per_address=Rate(10_000, 10_000),
    login_failures_per_account=Rate(10_000, 10_000),
    registrations_per_address=Rate(10_000, 10_000),
    messages_per_user=Rate(10_000, 10_000),
    flows_per_user=Rate(10_000, 10_000),
    max_owned_flows=10_000,
    storage_quota_bytes=2**40,
    frames_per_connection=Rate(10_000, 10_000),
    frames_per_address=Rate(10_000, 10_000),
    flood_strikes=10_000,
    hash_queue=10_000,
    connections_per_address=10_000,
    max_connections=10_000,
)

Start = Callable[..., Awaitable[Running]]


@pytest.fixture
def start(deadline: None, nursery: trio.Nursery, morelia_config: Config) -> Start:
    """Start a server with LAVISH abuse limits but for the ones given, and these sizes."""

    async def started(limits: Limits | None = None, **abuse: Any) -> Running:
        config = msgspec.structs.replace(
            morelia_config,
            abuse=msgspec.structs.replace(LAVISH, **abuse),
            limits=limits or morelia_config.limits,
        )
        running: Running = await nursery.start(serve, config)
        return running

    return started


@pytest.fixture
def big_client() -> Callable[[Running], Any]:
    """Clients that accept replies far above the server's cap, to see what it really sends."""
    return lambda running: open_client(running.url, max_message_size=256 * MIB)


def me(client: Client) -> Frame:
    return {"uuid": client.user_id, "auth_id": client.token}


async def raw(client: Client, type_: str, **data: Any) -> tuple[int, Frame]:
    """A list-dialect request: (bytes of the reply, the reply checked)."""
    text, reply = await exchange(
        client, {"type": type_, "data": {"user": [me(client)], **data}, "jsonapi": None}
    )
    check_list_reply(reply, type_, reply["errors"]["code"])
    return len(text.encode()), reply


def code(reply: Frame) -> int:
    value: int = reply["errors"]["code"]
    return value


# --- the reply byte cap ---------------------------------------------------------------------------


async def test_all_messages_stops_at_the_byte_cap_and_pages_to_the_end(
    start: Start, big_client: Callable[[Running], Any]
) -> None:
    running = await start()  # the default cap: 1 MiB
    picture = "p" * (300 * KIB)
    async with big_client(running) as client:
        await client.register("ann", "ann-password")
        general = (await client.flows())[0]["uuid"]
        sent = [
            (await client.send(general, f"m{n}", file_picture=picture))["uuid"] for n in range(12)
        ]  # 3.6 MB in all
        seen: list[str] = []
        since = 0.0
        for _ in range(len(sent)):
            frame = doc_frame(client, "all_messages", time=since, flow={"id": int(general)})
            text, reply = await exchange(client, frame)
            messages = reply["data"]["message"]
            assert len(text.encode()) <= MIB  # 3 messages (900 KiB), never a fourth
            assert len(messages) == 3 or (code(reply), len(messages)) == (200, 2)
            seen += [str(m["id"]) for m in messages if str(m["id"]) not in seen]
            if code(reply) == 200:
                break
            check_doc_reply(reply, "all_messages", 206)
            since = messages[-1]["time"]
        assert seen == sent


async def test_in_the_list_dialect_byte_pages_end_between_seconds_and_reach_the_end(
    start: Start, big_client: Callable[[Running], Any]
) -> None:
    running = await start()
    picture = "p" * (300 * KIB)
    async with big_client(running) as client:
        await client.register("ann", "ann-password")
        general = (await client.flows())[0]["uuid"]
        sent = []
        for n in range(9):  # three a second
            sent.append((await client.send(general, f"m{n}", file_picture=picture))["uuid"])
            await trio.sleep(1.01 if n % 3 == 2 else 0)
        seen: list[str] = []
        since = 0
        for page in range(len(sent)):
            size, reply = await raw(client, "all_messages", flow=[{"uuid": general}], time=since)
            messages = reply["data"]["message"]
            if page == 0:  # asking again repeats the last second, so only the first is strict
                assert size <= MIB and len(messages) == 3
            seen += [m["uuid"] for m in messages if m["uuid"] not in seen]
            if code(reply) == 200:
                break
            assert code(reply) == 206
            assert len({m["time"] for m in messages}) < len(messages)  # whole seconds
            since = messages[-1]["time"]
        assert seen == sent


def doc_frame(client: Client, type_: str, **data: Any) -> Frame:
    creds = {"id": int(client.user_id or 0), "auth_id": client.token}
    return {"type": type_, "data": {"user": creds, **data}, "jsonapi": {"version": 1.0}}


async def test_a_page_holds_one_item_even_when_it_alone_is_above_the_cap(
    start: Start, big_client: Callable[[Running], Any]
) -> None:
    running = await start(limits=Limits(max_reply_bytes=64 * KIB))
    async with big_client(running) as client:
        await client.register("ann", "ann-password")
        general = (await client.flows())[0]["uuid"]
        if time.time() % 1 > 0.5:  # both messages in one wall-clock second, as asserted below
            await trio.sleep(1 - time.time() % 1)
        await client.send(general, "big", file_document="d" * (100 * KIB))
        await client.send(general, "small")
        for dialect_time in (0, 0.0):  # list dialect (int time) and document (float)
            frame: dict[str, Any] = {
                "type": "all_messages",
                "data": {"time": dialect_time, "flow": None},
            }
            if isinstance(dialect_time, int):
                frame["data"]["user"] = [me(client)]
            else:
                frame["data"]["user"] = {"id": int(client.user_id or 0), "auth_id": client.token}
                frame["jsonapi"] = {"version": 1.0}
            _, reply = await exchange(client, frame)
            texts = [m["text"] for m in reply["data"]["message"]]
            if isinstance(dialect_time, int):  # one second holds both: never cut inside it
                assert (code(reply), texts) == (200, ["big", "small"])
            else:
                check_doc_reply(reply, "all_messages", 206)
                assert texts == ["big"]


async def test_get_update_stops_at_the_byte_cap(
    start: Start, big_client: Callable[[Running], Any]
) -> None:
    running = await start(limits=Limits(max_reply_bytes=256 * KIB))
    async with big_client(running) as client:
        await client.register("ann", "ann-password")
        general = (await client.flows())[0]["uuid"]
        for n in range(4):
            await client.send(general, f"m{n}", file_audio="a" * (100 * KIB))
            await trio.sleep(1.01)
        size, reply = await raw(client, "get_update", time=0)
        assert code(reply) == 206 and size <= 256 * KIB
        assert [m["text"] for m in reply["data"]["message"]] == ["m0", "m1"]


async def test_all_flow_pages_by_time_at_the_item_cap(start: Start) -> None:
    running = await start(limits=Limits(reply_cap=3))
    async with open_client(running.url) as client:
        await client.register("ann", "ann-password")
        made = ["General"]
        for n in range(7):
            made.append((await client.add_flow("group", f"g{n}"))["title"])
            await trio.sleep(1.01 if n % 2 else 0)  # two flows a second
        seen: list[str] = []
        since = 0
        for _ in range(len(made)):
            _, reply = await raw(client, "all_flow", time=since)
            flows = reply["data"]["flow"]
            seen += [f["title"] for f in flows if f["title"] not in seen]
            if code(reply) == 200:
                break
            assert code(reply) == 206
            since = flows[-1]["time"]
        assert seen == made


async def test_all_flow_stops_at_the_byte_cap(start: Start) -> None:
    running = await start(limits=Limits(max_reply_bytes=8 * KIB, max_info_chars=3000))
    async with open_client(running.url) as client:
        await client.register("ann", "ann-password")
        for n in range(6):
            await client.add_flow("group", f"g{n}", info="i" * 2500)
        frame = {
            "type": "all_flow",
            "data": {"user": {"id": int(client.user_id or 0), "auth_id": client.token}},
        }
        text, reply = await exchange(client, {**frame, "jsonapi": {"version": 1.0}})
        check_doc_reply(reply, "all_flow", 206)
        assert len(text.encode()) <= 8 * KIB
        assert [f["title"] for f in reply["data"]["flow"]] == ["General", "g0", "g1"]


# --- add_flow ---------------------------------------------------------------------------------


async def test_add_flow_bursts_five_then_thirty_an_hour(start: Start) -> None:
    running = await start(flows_per_user=Rate(5, 0.5))
    running.context.guard.clock = clock = Clock()
    async with open_client(running.url) as ann, open_client(running.url) as bob:
        await ann.register("ann", "ann-password")
        await bob.register("bob", "bob-password")
        codes = [code(await add_flow(ann, f"g{n}")) for n in range(8)]
        assert codes == [200] * 5 + [429] * 3
        assert code(await add_flow(bob, "bob's")) == 200  # per user
        # A request that fails costs nothing: a chat with no such user.
        clock.now += 120  # one more a minute: two minutes, one flow
        assert code(await add_flow(ann, "bad", users=[ann.user_id, "999"], type_="chat")) == 404
        assert code(await add_flow(ann, "g8")) == 200
        assert code(await add_flow(ann, "g9")) == 429
        titles = [f["title"] for f in await ann.flows()]
        assert titles == ["General", "g0", "g1", "g2", "g3", "g4", "bob's", "g8"]


async def test_one_user_owns_at_most_max_owned_flows(start: Start) -> None:
    running = await start(max_owned_flows=4)
    async with open_client(running.url) as ann, open_client(running.url) as bob:
        await ann.register("ann", "ann-password")
        await bob.register("bob", "bob-password")
        assert [code(await add_flow(ann, f"g{n}")) for n in range(4)] == [200] * 4
        _, reply = await exchange(ann, add_flow_frame(ann, "one too many"))
        check_list_reply(reply, "add_flow", 403)
        assert "4 flows" in reply["errors"]["detail"]
        chat = add_flow_frame(ann, "chat", users=[ann.user_id, bob.user_id], type_="chat")
        assert code((await exchange(ann, chat))[1]) == 403  # chats count too
        assert code(await add_flow(bob, "bob's")) == 200


def add_flow_frame(
    client: Client, title: str, users: list[Any] | None = None, type_: str = "group"
) -> Frame:
    flow = {"type": type_, "title": title, "users": users}
    return {"type": "add_flow", "data": {"user": [me(client)], "flow": [flow]}}


async def add_flow(client: Client, title: str, **kwargs: Any) -> Frame:
    return (await exchange(client, add_flow_frame(client, title, **kwargs)))[1]


class Clock:
    """The guard's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the storage quota ------------------------------------------------------------------------


def send_frame(client: Client, flow: str, text: str, **extra: Any) -> Frame:
    message = {"text": text, **extra}
    return {
        "type": "send_message",
        "data": {"user": [me(client)], "flow": [{"uuid": flow}], "message": [message]},
    }


async def test_storage_quota_is_per_user_survives_restarts_and_shrinks_with_deletes(
    deadline: None, morelia_config: Config
) -> None:
    quota = 95 * KIB
    config = msgspec.structs.replace(
        morelia_config, abuse=msgspec.structs.replace(LAVISH, storage_quota_bytes=quota)
    )
    picture = "p" * (30 * KIB)
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(serve, config)
        async with open_client(running.url) as ann, open_client(running.url) as bob:
            await ann.register("ann", "ann-password")
            await bob.register("bob", "bob-password")
            general = (await ann.flows())[0]["uuid"]
            codes = [await send(ann, general, f"m{n}", file_picture=picture) for n in range(4)]
            assert codes == [200, 200, 200, 413]
            _, reply = await exchange(ann, send_frame(ann, general, "m", file_picture=picture))
            check_list_reply(reply, "send_message", 413)
            assert reply["errors"]["detail"] == (
                "The storage quota is reached: delete messages to make room."
            )
            # Editing a text longer counts too; shorter is always allowed.
            first = (await ann.messages(general))[0]["uuid"]
            edit = {
                "type": "edited_message",
                "data": {"user": [me(ann)], "message": [{"uuid": first, "text": "x" * 9000}]},
            }
            assert code((await exchange(ann, edit))[1]) == 413
            await ann.edit(first, "m")
            # Another user has a quota of their own.
            assert await send(bob, general, "b", file_picture=picture) == 200
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:  # the count is rebuilt from the data
        running = await nursery.start(serve, config)
        async with open_client(running.url) as ann:
            await ann.login("ann", "ann-password")
            assert await send(ann, general, "more", file_picture=picture) == 413
            await ann.delete_message(first)
            assert await send(ann, general, "room", file_picture=picture) == 200
        nursery.cancel_scope.cancel()


async def send(client: Client, flow: str, text: str, **extra: Any) -> int:
    return code((await exchange(client, send_frame(client, flow, text, **extra)))[1])


# --- the size bounds against the renderer -----------------------------------------------------

ANY_TEXT = st.text(max_size=200)
MAX_ID = 2**31 - 1
TIMES = st.floats(0, 4e9, allow_nan=False)


def item_bytes(listing: Listing, dialect: Dialect, viewer: int | None = None) -> int:
    """What one item adds to a reply, in a dialect."""
    empty = render(
        "get_update", dialect, Answer(Listing()), "successfully", now=4e9, reply_id=2**62
    )
    full = render(
        "get_update",
        dialect,
        Answer(listing, viewer=viewer),
        "successfully",
        now=4e9,
        reply_id=2**62,
    )
    assert len(empty.encode()) <= REPLY_ENVELOPE
    return len(full.encode()) - len(empty.encode())


@given(
    text=st.none() | ANY_TEXT,
    picture=st.none() | ANY_TEXT | st.lists(st.integers(0, 255), max_size=50),
    client_id=st.none() | ANY_TEXT,
    username=ANY_TEXT,
    time=TIMES,
    edited=st.none() | TIMES,
    ids=st.integers(1, MAX_ID),
)
def test_a_message_never_renders_above_its_bound(
    text: str | None,
    picture: Any,
    client_id: str | None,
    username: str,
    time: float,
    edited: float | None,
    ids: int,
) -> None:
    message = Message(
        id=ids,
        flow_id=ids,
        author_id=ids,
        time=time,
        text=text,
        picture=picture,
        client_id=client_id,
        edited_time=edited,
        reply_to=ids,
    )
    bound = MESSAGE_KEYS + message_content(message) + json_size(username)
    listing = Listing(messages=[message], usernames={ids: username}, flow_types={ids: "channel"})
    for dialect in Dialect:
        assert item_bytes(listing, dialect) <= bound


@given(title=ANY_TEXT, info=st.none() | ANY_TEXT, members=st.integers(0, 100), time=TIMES)
def test_a_flow_never_renders_above_its_bound(
    title: str, info: str | None, members: int, time: float
) -> None:
    flow = Flow(
        id=MAX_ID,
        type="channel",
        title=title,
        info=info,
        owner=MAX_ID,
        users=tuple(range(MAX_ID - members, MAX_ID)),
        time=time,
    )
    for dialect in Dialect:
        assert item_bytes(Listing(flows=[flow]), dialect) <= flow_size(flow)


@given(login=ANY_TEXT, username=ANY_TEXT, email=st.none() | ANY_TEXT, time=TIMES)
def test_a_profile_never_renders_above_its_bound(
    login: str, username: str, email: str | None, time: float
) -> None:
    user = User(
        id=MAX_ID, login=login, password_hash="h", username=username, email=email, time=time
    )
    for dialect in Dialect:
        assert item_bytes(Listing(users=[user]), dialect, viewer=MAX_ID) <= profile_size(user)


def test_json_size_is_the_encoded_length() -> None:
    assert json_size(None) == 0
    text = 'a"\n\x01é'
    assert json_size(text) == len(json.dumps(text, ensure_ascii=False).encode())
    assert json_size([1, 255]) == len("[1,255]")

"""Live updates (CONTRACT §8.2): subscribe, update frames, deletion items, resync, unsubscribe.

Every test speaks through real sockets to the in-process server. A subscribed connection may
get update frames before a reply, so these tests read through ``call``, which keeps them.
Nothing-arrived checks are deterministic: a visible change after invisible ones must be the
next update, and a connection flushes its updates before it reads its next request.
"""

from __future__ import annotations

import errno
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio
from trio_websocket import wrap_client_stream

from morelia_trio import Config, Running, live, serve
from morelia_trio.core import commands
from morelia_trio.core.frames import Dialect
from morelia_trio.core.state import MAX_SESSIONS_PER_USER
from morelia_trio.live import Subscriber
from morelia_trio.persistence.journal_file import JournalFile
from tests.wire import Client, RequestFailed, open_client

from .helpers import check_doc_reply, check_list_reply, exchange
from .test_client_traffic import ANDROID_MASTER, ELECTRON, FLUTTER_REGISTER, fill

pytestmark = pytest.mark.spread

Frame = dict[str, Any]
Connect = Callable[[], AbstractAsyncContextManager[Client]]
DELETION_KEYS = {"uuid", "id", "from_flow", "from_flow_id", "time", "deleted"}


async def call(client: Client, type_: str, **data: Any) -> tuple[Frame, list[Frame]]:
    """A list-dialect request with the client's token: (its reply, the updates before it)."""
    if client.user_id is not None:
        data.setdefault("user", [{"uuid": client.user_id, "auth_id": client.token}])
    await client.ws.send_message(json.dumps({"type": type_, "data": data}))
    before: list[Frame] = []
    with trio.fail_after(5):
        while True:
            frame = json.loads(await client.ws.get_message())
            if frame["type"] == type_:
                return frame, before
            assert frame["type"] in ("update", "resync"), frame
            before.append(frame)


async def subscribe(client: Client, since: float = 0) -> None:
    reply, before = await call(client, "subscribe", time=since)
    check_list_reply(reply, "subscribe", 200)
    assert before == []


async def pushed(client: Client) -> Frame:
    """The next frame, which must be pushed: an update or a resync."""
    with trio.fail_after(5):
        frame: Frame = json.loads(await client.ws.get_message())
    assert frame["type"] in ("update", "resync"), frame
    return frame


def items(update: Frame) -> list[tuple[str, str]]:
    """(kind, what) for each item of a list-dialect update: a message's text or "deleted",
    a flow's title, a user's login."""
    data = update["data"]
    return (
        [("user", u["login"]) for u in data["user"]]
        + [("flow", f["title"]) for f in data["flow"]]
        + [("message", "deleted" if m.get("deleted") else m["text"]) for m in data["message"]]
    )


async def test_updates_reach_whoever_may_see_them_and_no_one_else(
    ann: Client, bob: Client, connect: Connect
) -> None:
    general = (await ann.flows())[0]["uuid"]
    ann_id, bob_id = str(ann.user_id), str(bob.user_id)
    async with connect() as carl, connect() as dave:
        carl_id = await carl.register("carl", "carl-password")
        await subscribe(ann)

        hello = await bob.send(general, "hello")
        update = await pushed(ann)
        check_list_reply(update, "update", 200)
        assert items(update) == [("message", "hello")]
        assert update["data"]["message"][0]["uuid"] == hello["uuid"]

        # A chat between others, its message and its deletion: ann hears nothing of them.
        theirs = await bob.add_flow("chat", "bob and carl", users=[bob_id, carl_id])
        secret = await bob.send(theirs["uuid"], "secret")
        await bob.delete_message(secret["uuid"])

        ours = await bob.add_flow("chat", "bob and ann", users=[bob_id, ann_id])
        assert items(await pushed(ann)) == [("flow", "bob and ann")]
        await bob.send(ours["uuid"], "hi ann")
        assert items(await pushed(ann)) == [("message", "hi ann")]

        # Her own change too: after its reply.
        reply, before = await call(
            ann, "send_message", flow=[{"uuid": general}], message=[{"text": "mine"}]
        )
        check_list_reply(reply, "send_message", 200)
        assert before == []
        assert items(await pushed(ann)) == [("message", "mine")]

        await bob.delete_message(hello["uuid"])
        update = await pushed(ann)
        (deletion,) = update["data"]["message"]
        assert set(deletion) == DELETION_KEYS and "text" not in deletion
        assert deletion["uuid"] == deletion["id"] == hello["uuid"]
        assert deletion["from_flow"] == deletion["from_flow_id"] == general
        assert deletion["deleted"] is True and type(deletion["time"]) is int

        await dave.register("dave", "dave-password", email="dave@example.org")
        update = await pushed(ann)
        assert items(update) == [("user", "dave")]
        assert update["data"]["user"][0]["email"] is None  # a profile, never its email


async def test_the_document_dialect_gets_document_updates(ann: Client, bob: Client) -> None:
    general = (await ann.flows())[0]["uuid"]
    me = {"id": int(ann.user_id or 0), "auth_id": ann.token}
    _, reply = await exchange(
        ann, {"type": "subscribe", "data": {"user": me}, "jsonapi": {"version": 1.0}}
    )
    assert check_doc_reply(reply, "subscribe", 200) is None  # data as for ping_pong

    sent = await bob.send(general, "hello")
    update = await pushed(ann)
    data = check_doc_reply(update, "update", 200)
    assert data is not None
    (message,) = data["message"]
    assert (message["id"], message["text"]) == (int(sent["uuid"]), "hello")
    assert message["from_flow"] == {"id": int(general), "type": "group"}

    await bob.delete_message(sent["uuid"])
    data = check_doc_reply(await pushed(ann), "update", 200)
    assert data is not None
    (deletion,) = data["message"]
    assert set(deletion) == {"id", "from_flow", "time", "deleted"}
    assert deletion["id"] == int(sent["uuid"]) and deletion["deleted"] is True
    assert deletion["from_flow"] == {"id": int(general), "type": "group"}
    assert isinstance(deletion["time"], float)


async def test_get_update_lists_deletions_only_once_the_connection_subscribed(
    ann: Client, connect: Connect
) -> None:
    general = (await ann.flows())[0]["uuid"]
    gone = await ann.send(general, "gone")
    await ann.delete_message(gone["uuid"])

    reply, _ = await call(ann, "get_update", time=0)
    assert '"deleted"' not in json.dumps(reply)  # §8.1: no new keys for old clients
    await subscribe(ann)
    reply, _ = await call(ann, "get_update", time=0)
    deletions = [m for m in reply["data"]["message"] if m.get("deleted")]
    assert [(d["uuid"], d["from_flow"]) for d in deletions] == [(gone["uuid"], general)]

    async with connect() as other:  # her other connection has not subscribed
        await other.login("ann", "ann-password")
        reply, _ = await call(other, "get_update", time=0)
        assert '"deleted"' not in json.dumps(reply)


async def test_subscribe_needs_a_token_and_a_second_one_changes_nothing(
    ann: Client, bob: Client
) -> None:
    general = (await ann.flows())[0]["uuid"]
    reply, _ = await call(ann, "subscribe", user=[{"uuid": ann.user_id, "auth_id": "wrong"}])
    check_list_reply(reply, "subscribe", 401)
    reply, _ = await call(ann, "subscribe", user=[])
    check_list_reply(reply, "subscribe", 401)
    await bob.send(general, "not for a refused subscriber")

    await subscribe(ann)
    await subscribe(ann)
    await bob.send(general, "one")
    await bob.send(general, "two")
    assert items(await pushed(ann)) == [("message", "one")]
    assert items(await pushed(ann)) == [("message", "two")]  # not "one" a second time


# Its first half fails now and then on nodes: an update of a change another node acknowledged
# just before the unsubscribe can reach this node while the unsubscribe waits to catch up, and
# is dropped with the subscription rather than sent before the reply.
@pytest.mark.one_node("counts the subscribers of its one server's publisher")
async def test_nothing_follows_unsubscribe(server: Running, ann: Client, bob: Client) -> None:
    general = (await ann.flows())[0]["uuid"]
    await subscribe(ann)
    await bob.send(general, "heard")
    assert items(await pushed(ann)) == [("message", "heard")]
    await bob.send(general, "sent before the unsubscribe")
    reply, before = await call(ann, "unsubscribe")
    check_list_reply(reply, "unsubscribe", 200)
    assert [items(u) for u in before] == [[("message", "sent before the unsubscribe")]]
    await bob.send(general, "after")
    reply, before = await call(ann, "ping_pong")
    check_list_reply(reply, "ping_pong", 200)
    assert before == []
    assert server.store.publisher.count == 0


@pytest.mark.one_node("counts the subscribers of its one server's publisher")
async def test_deleting_the_account_ends_its_subscriptions(
    server: Running, ann: Client, bob: Client, connect: Connect
) -> None:
    general = (await bob.flows())[0]["uuid"]
    await subscribe(ann)
    async with connect() as other:
        await other.login("ann", "ann-password")
        await other.delete_user("ann", "ann-password")
    assert server.store.publisher.count == 0
    await bob.send(general, "after she left")
    reply, before = await call(ann, "ping_pong")
    check_list_reply(reply, "ping_pong", 401)
    assert before == []


@pytest.mark.one_node("suspends through its one server's store, and counts its subscribers")
async def test_a_suspension_ends_its_subscriptions(
    server: Running, ann: Client, bob: Client
) -> None:
    general = (await bob.flows())[0]["uuid"]
    await subscribe(ann)
    assert ann.user_id is not None
    await server.store.call(commands.set_suspended, int(ann.user_id), True, time.time())
    assert server.store.publisher.count == 0
    await bob.send(general, "while she is suspended")
    reply, before = await call(ann, "ping_pong")
    check_list_reply(reply, "ping_pong", 401)  # her sessions ended with it
    assert before == []  # and nothing was pushed to her


@pytest.mark.one_node("counts the subscribers of its one server's publisher")
async def test_a_session_pushed_out_by_newer_logins_ends_its_subscription(
    server: Running, ann: Client, connect: Connect
) -> None:
    await subscribe(ann)
    async with connect() as other:
        for _ in range(MAX_SESSIONS_PER_USER - 1):
            await other.login("ann", "ann-password")
        assert server.store.publisher.count == 1  # her first session is still one
        await other.login("ann", "ann-password")
    assert server.store.publisher.count == 0


@asynccontextmanager
async def _open_slow_reader(url: str) -> AsyncIterator[Client]:
    """A client with a tiny receive buffer: one that stops reading soon holds the server up."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect((parts.hostname, parts.port))
    async with trio.SocketStream(sock) as stream, trio.open_nursery() as nursery:
        ws = await wrap_client_stream(nursery, stream, parts.hostname, parts.path)
        yield Client(ws)
        nursery.cancel_scope.cancel()


def _subscriber_of(server: Running, user_id: str | None) -> Subscriber:
    (subscriber,) = server.store.publisher.by_user[int(user_id or 0)]
    return subscriber


@pytest.mark.one_node("watches the backlog of its one server's subscriber")
async def test_a_subscriber_that_does_not_read_gets_a_resync_and_misses_nothing(
    server: Running, bob: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "MAX_BACKLOG_FRAMES", 4)
    general = (await bob.flows())[0]["uuid"]
    async with _open_slow_reader(server.url) as ann:
        await ann.register("ann", "ann-password")
        await subscribe(ann)
        subscriber = _subscriber_of(server, ann.user_id)
        sent: list[str] = []
        while subscriber.lost_since is None:  # ann reads nothing meanwhile
            assert len(subscriber.frames) <= 4  # the backlog stays bounded
            assert len(sent) < 3000, "the backlog never overflowed"
            sent.append((await bob.send(general, f"{len(sent)} " + "x" * 9000))["uuid"])
        await bob.send(general, "after the overflow")

        heard: set[str] = set()
        resync: Frame | None = None
        while True:
            frame = await pushed(ann)
            if frame["type"] == "resync":
                assert resync is None, "one resync"
                resync = frame
                check_list_reply(frame, "resync", 200)
                continue
            texts = [m["text"] for m in frame["data"]["message"]]
            if texts == ["after the overflow"]:
                break
            heard.update(m["uuid"] for m in frame["data"]["message"])
        assert resync is not None
        caught_up: set[str] = set()
        since = resync["data"]["time"]
        while True:  # get_update, page after page
            reply, _ = await call(ann, "get_update", time=since)
            caught_up.update(m["uuid"] for m in reply["data"]["message"])
            if reply["errors"]["code"] == 200:
                break
            since = reply["data"]["message"][-1]["time"]
        assert set(sent) <= heard | caught_up
        assert set(sent) - heard  # some were dropped indeed


@pytest.mark.one_node("restarts its one server on its data directory")
async def test_a_restarted_server_catches_a_resubscriber_up(morelia_config: Config) -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(serve, morelia_config)
            async with open_client(running.url) as ann, open_client(running.url) as bob:
                await ann.register("ann", "ann-password")
                await bob.register("bob", "bob-password")
                general = (await bob.flows())[0]["uuid"]
                await subscribe(ann)
                first = await bob.send(general, "first")
                last_seen = (await pushed(ann))["data"]["time"]
                # ann's client goes away unread; the server stops (a snapshot at the end)
                await bob.send(general, "second")
                await bob.delete_message(first["uuid"])
                await bob.add_flow("group", "later")
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve, morelia_config)
            async with open_client(running.url) as ann, open_client(running.url) as bob:
                await ann.login("ann", "ann-password")
                await bob.login("bob", "bob-password")
                await subscribe(ann, since=last_seen)
                await bob.send(general, "live")
                seen: list[tuple[str, str]] = []
                while ("message", "live") not in seen:
                    seen += items(await pushed(ann))
            nursery.cancel_scope.cancel()
    assert {("message", "second"), ("message", "deleted"), ("flow", "later")} <= set(seen)
    assert seen[-1] == ("message", "live")


@pytest.mark.one_node("fills its one server's disk")
async def test_no_update_for_a_change_the_disk_refused(
    morelia_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write_all = JournalFile._write_all
    disk_full = False

    def write_all(journal: JournalFile, data: bytes) -> None:
        if disk_full and data:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(journal, data)

    monkeypatch.setattr(JournalFile, "_write_all", write_all)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(serve, morelia_config)
            async with open_client(running.url) as ann, open_client(running.url) as bob:
                await ann.register("ann", "ann-password")
                await bob.register("bob", "bob-password")
                general = (await bob.flows())[0]["uuid"]
                await subscribe(ann)
                disk_full = True
                with pytest.raises(RequestFailed) as refused:
                    await bob.send(general, "refused")
                assert refused.value.code == 503
                disk_full = False
                for _ in range(40):  # a probe gets through within a second or so
                    try:
                        await bob.send(general, "stored")
                        break
                    except RequestFailed:
                        await trio.sleep(0.1)
                seen: list[tuple[str, str]] = []
                while ("message", "stored") not in seen:
                    seen += items(await pushed(ann))
            nursery.cancel_scope.cancel()
    assert seen == [("message", "stored")]


async def test_real_clients_see_nothing_of_live_updates(
    ann: Client, bob: Client, connect: Connect
) -> None:
    """The Android client's whole session, frame by frame, while others subscribe and change
    things around it: it gets its replies, one per request, as before, and nothing else."""
    general = (await bob.flows())[0]["uuid"]
    await subscribe(ann)
    await subscribe(bob)
    async with connect() as android:
        who = {"L": "andrei", "P": "pass-word", "U": "Andrei", "E": "andrei@example.org"}
        _, reply = await exchange(android, fill(ANDROID_MASTER[0], **who))
        user = check_list_reply(reply, "register_user", 201)["user"][0]
        ids = {"A": user["auth_id"], "id_9": int(user["uuid"])}
        for n, template in enumerate(ANDROID_MASTER[1:], start=1):
            sent, _ = await call(
                bob, "send_message", flow=[{"uuid": general}], message=[{"text": f"{n}"}]
            )
            await call(
                bob, "delete_message", message=[{"uuid": sent["data"]["message"][0]["uuid"]}]
            )
            frame = fill(template, **who, **ids).replace('"id":2', f'"id":{general}')
            _, reply = await exchange(android, frame)
            check_list_reply(reply, json.loads(frame)["type"], 200)
        get_update = {
            "type": "get_update",
            "data": {"time": 0, "user": [{"uuid": user["uuid"], "auth_id": user["auth_id"]}]},
        }
        raw, reply = await exchange(android, get_update)
        check_list_reply(reply, "get_update", 200)
        assert '"deleted"' not in raw
        await call(ann, "send_message", flow=[{"uuid": general}], message=[{"text": "last"}])
        _, reply = await exchange(android, get_update)
        check_list_reply(reply, "get_update", 200)
    # Electron and Flutter register and log in, one frame each, as changes go on around them.
    async with connect() as electron:
        for template, code in ((ELECTRON[0], 201), (ELECTRON[1], 200)):
            await call(bob, "send_message", flow=[{"uuid": general}], message=[{"text": "e"}])
            frame = fill(template, L="electron", P="secret")
            _, reply = await exchange(electron, frame)
            check_list_reply(reply, json.loads(frame)["type"], code)
    async with connect() as flutter:
        await call(bob, "send_message", flow=[{"uuid": general}], message=[{"text": "f"}])
        _, reply = await exchange(flutter, fill(FLUTTER_REGISTER, L="flutter", P="pw"))
        check_list_reply(reply, "register_user", 201)
        await call(bob, "send_message", flow=[{"uuid": general}], message=[{"text": "g"}])
        all_flow = {"type": "all_flow", "data": {"user": [reply["data"]["user"][0]]}}
        _, reply = await exchange(flutter, all_flow)
        check_list_reply(reply, "all_flow", 200)


def test_a_backlog_that_overflows_owes_one_resync_from_the_first_update_lost() -> None:
    subscriber = Subscriber()
    subscriber.dialect = Dialect.LIST
    for n in range(live.MAX_BACKLOG_FRAMES + 3):
        subscriber.hand(1000.0 + n, f"frame {n}")
        assert len(subscriber.frames) <= live.MAX_BACKLOG_FRAMES
    assert subscriber.lost_since == 1000.0
    resync = json.loads(subscriber.next_out() or "")
    assert (resync["type"], resync["data"]["time"]) == ("resync", 1000)
    kept = [f"frame {live.MAX_BACKLOG_FRAMES + n}" for n in range(3)]
    assert [subscriber.next_out() for _ in range(4)] == [*kept, None]
    subscriber.hand(2000.0, "x" * (live.MAX_BACKLOG_CHARS + 1))  # too big alone: lost too
    assert subscriber.frames == [] and subscriber.lost_since == 2000.0

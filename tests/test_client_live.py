"""The typed client's live updates: ``Client.subscribe()`` through a real in-process server."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import pytest
import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

from morelia_trio import Config, Running, live
from morelia_trio.client import Client, ConnectionLost, Subscription, Update, open_client

from .test_client import QUICK, Restartable


def _items(update: Update) -> list[tuple[str, str]]:
    """(kind, what) for each item: a message's text, a deletion's id, a flow's title, a login."""
    return (
        [("user", user.login) for user in update.users]
        + [("flow", flow.title) for flow in update.flows]
        + [("message", message.text or "") for message in update.messages]
        + [("deleted", gone.id) for gone in update.deleted]
    )


async def _next(updates: Subscription) -> Update:
    with trio.fail_after(5):
        return await anext(updates)


def _subscribed(server: Running, user_id: str | None) -> int:
    return len(server.store.publisher.by_user.get(int(user_id or 0), ()))


async def test_a_subscription_yields_each_change_in_order(
    deadline: None, morelia_server: Running
) -> None:
    url = morelia_server.url
    async with open_client(url) as ann, open_client(url) as bob:
        await ann.register("ann", "ann-password")
        await bob.register("bob", "bob-password")
        general = (await bob.flows())[0].id
        async with ann.subscribe() as updates:
            assert _subscribed(morelia_server, ann.user_id) == 1
            sent = await bob.send(general, "hello")
            await bob.edit(sent.id, "hello again")
            await bob.delete_message(sent.id)
            await bob.add_flow("group", "Pub")
            async with open_client(url) as carol:
                await carol.register("carol", "carol-password")

            first = await _next(updates)
            assert _items(first) == [("message", "hello")]
            assert first.messages[0].id == sent.id and first.messages[0].flow_id == general
            edited = await _next(updates)
            assert _items(edited) == [("message", "hello again")]
            assert edited.messages[0].edited_status
            deleted = await _next(updates)
            assert _items(deleted) == [("deleted", sent.id)]
            assert deleted.deleted[0].flow_id == general
            assert deleted.deleted[0].time >= first.messages[0].time
            assert _items(await _next(updates)) == [("flow", "Pub")]
            assert _items(await _next(updates)) == [("user", "carol")]
        # leaving the block unsubscribes: the server forgets the subscriber
        assert _subscribed(morelia_server, ann.user_id) == 0
        await bob.send(general, "nobody hears this live")
        assert (await ann.messages(general))[-1].text == "nobody hears this live"


async def test_a_request_while_subscribed_gets_its_own_reply(
    deadline: None, morelia_server: Running
) -> None:
    url = morelia_server.url
    async with open_client(url) as ann, open_client(url) as bob:
        await ann.register("ann", "ann-password")
        await bob.register("bob", "bob-password")
        general = (await bob.flows())[0].id
        async with ann.subscribe() as updates:
            for n in range(3):
                await bob.send(general, f"news {n}")
            # the server sends the three updates first, then the reply: the reply reaches
            # the request, the updates wait for the iterator
            texts = [m.text for m in await ann.messages(general)]
            assert texts == ["news 0", "news 1", "news 2"]
            await ann.send(general, "mine")  # one's own changes come too
            heard = [_items(await _next(updates)) for _ in range(4)]
            assert heard == [[("message", f"news {n}")] for n in range(3)] + [[("message", "mine")]]


@asynccontextmanager
async def _open_slow_reader(url: str) -> AsyncIterator[Client]:
    """A client with a tiny receive buffer: one that stops reading soon holds the server up."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect((parts.hostname, parts.port))

    async def no_reconnecting(nursery: trio.Nursery) -> WebSocketConnection:
        raise OSError("this client does not reconnect")

    async with trio.SocketStream(sock) as stream, trio.open_nursery() as nursery:
        ws = await wrap_client_stream(nursery, stream, parts.hostname, parts.path)
        yield Client(nursery, no_reconnecting, ws)
        nursery.cancel_scope.cancel()


async def test_a_resync_is_caught_up_with_get_update(
    deadline: None, morelia_server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "MAX_BACKLOG_FRAMES", 4)
    async with open_client(morelia_server.url) as bob, _open_slow_reader(morelia_server.url) as ann:
        await bob.register("bob", "bob-password")
        await ann.register("ann", "ann-password")
        general = (await bob.flows())[0].id
        async with ann.subscribe() as updates:
            (subscriber,) = morelia_server.store.publisher.by_user[int(ann.user_id or 0)]
            sent: list[str] = []
            while subscriber.lost_since is None:  # ann does not iterate meanwhile
                assert len(sent) < 3000, "the backlog never overflowed"
                sent.append((await bob.send(general, f"{len(sent)} " + "x" * 9000)).id)
            await bob.send(general, "after the overflow")

            heard: set[str] = set()
            texts: list[str | None] = []
            yielded = 0
            while "after the overflow" not in texts:
                update = await _next(updates)
                yielded += 1
                heard.update(message.id for message in update.messages)
                texts += [message.text for message in update.messages]
            assert set(sent) <= heard  # nothing missed
            assert yielded < len(sent)  # what the server dropped came back in one update


async def test_a_reconnecting_client_subscribes_again_and_misses_nothing(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    server = Restartable(nursery, morelia_config)
    url = (await server.start()).url
    async with open_client(url, reconnect=QUICK) as ann, open_client(url, reconnect=QUICK) as bob:
        await ann.register("ann", "ann-password")
        await bob.register("bob", "bob-password")
        general = (await bob.flows())[0].id
        async with ann.subscribe() as updates:
            # dropped before any update came: it catches up from when it subscribed
            await server.stop()  # every connection drops
            await server.start()
            await bob.send(general, "while ann was away")  # before ann subscribes again
            await _texts_until("while ann was away", updates)

            # dropped after updates: it catches up from the latest one it saw
            await server.stop()
            running = await server.start()
            await bob.send(general, "away again")
            await _texts_until("away again", updates)
            assert _subscribed(running, ann.user_id) == 1

            await bob.send(general, "live again")
            assert await _texts_until("live again", updates) == ["live again"]
    await server.stop()


async def _texts_until(text: str, updates: Subscription) -> list[str]:
    """The texts of the messages yielded until ``text`` comes."""
    texts: list[str] = []
    while text not in texts:
        texts += [m.text or "" for m in (await _next(updates)).messages]
    return texts


async def test_without_reconnect_a_dropped_subscription_says_so(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    server = Restartable(nursery, morelia_config)
    url = (await server.start()).url
    async with open_client(url) as ann:
        await ann.register("ann", "ann-password")
        async with ann.subscribe() as updates:
            await server.stop()
            with pytest.raises(ConnectionLost, match="the connection dropped"):
                await _next(updates)

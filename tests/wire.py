"""The wire-level test client: every reply as a plain dict, every request as sent.

The tests check the server's exact frames, so they speak through this thin layer rather
than the typed ``morelia_trio.client``:

async with open_client("ws://127.0.0.1:8000/ws") as client:
    await client.register("ann", "secret")
    flow = (await client.flows())[0]
    await client.send(flow["id"], "Hello!")
    print(await client.messages(flow["id"]))
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import msgspec
import trio
from trio_websocket import WebSocketConnection, open_websocket_url, wrap_client_stream

Frame: TypeAlias = dict[str, Any]
_encoder = msgspec.json.Encoder()


class RequestFailed(Exception):
    """The server answered with an error code."""

    def __init__(self, reply: Frame) -> None:
        errors = reply["errors"]
        super().__init__(f"{errors['code']} {errors['status']}: {errors['detail']}")
        self.code: int = errors["code"]
        self.reply = reply


class Client:
    """One connection. After ``register`` or ``login`` it sends the token with each request."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.user_id: str | None = None
        self.token: str | None = None

    async def request(self, frame: Frame | str | bytes) -> Frame:
        """Send one frame (a dict is encoded as JSON text) and return the decoded reply."""
        if isinstance(frame, dict):
            frame = _encoder.encode(frame).decode()
        reply: Frame = msgspec.json.decode(await self.exchange(frame))
        return reply

    async def exchange(self, frame: str | bytes) -> str | bytes:
        """Send one frame as it is and return the next frame received, undecoded."""
        await self.ws.send_message(frame)
        return await self.ws.get_message()

    async def call(self, type_: str, **data: Any) -> Frame:
        """Send a list-dialect request with this client's token; raise on an error code."""
        if self.user_id is not None and "user" not in data:
            data["user"] = [self._me()]
        reply = await self.request({"type": type_, "data": data, "jsonapi": {"version": "1.0"}})
        if reply["errors"]["code"] >= 300:
            raise RequestFailed(reply)
        return reply

    def _me(self) -> Frame:
        return {"uuid": self.user_id, "auth_id": self.token}

    async def register(
        self, login: str, password: str, username: str | None = None, email: str | None = None
    ) -> str:
        user = {"login": login, "password": password, "username": username, "email": email}
        return self._keep(await self.call("register_user", user=[user]))

    async def login(self, login: str, password: str) -> str:
        return self._keep(await self.call("auth", user=[{"login": login, "password": password}]))

    def _keep(self, reply: Frame) -> str:
        user = reply["data"]["user"][0]
        self.user_id, self.token = user["uuid"], user["auth_id"]
        return str(user["uuid"])

    async def user_info(self, *others: str) -> list[Frame]:
        named = [{"uuid": other} for other in others]
        return list((await self.call("user_info", user=[self._me(), *named]))["data"]["user"])

    async def flows(self) -> list[Frame]:
        return list((await self.call("all_flow"))["data"]["flow"])

    async def add_flow(
        self, type_: str, title: str, users: list[str] | None = None, info: str | None = None
    ) -> Frame:
        flow = {"type": type_, "title": title, "info": info, "users": users}
        created: Frame = (await self.call("add_flow", flow=[flow]))["data"]["flow"][0]
        return created

    async def send(self, flow_id: str, text: str, **extra: Any) -> Frame:
        reply = await self.call(
            "send_message", flow=[{"uuid": flow_id}], message=[{"text": text, **extra}]
        )
        sent: Frame = reply["data"]["message"][0]
        return sent

    async def messages(self, flow_id: str | None = None, since: int = 0) -> list[Frame]:
        flow = [{"uuid": flow_id}] if flow_id is not None else None
        reply = await self.call("all_messages", flow=flow, time=since)
        return list(reply["data"]["message"])

    async def update(self, since: int = 0) -> Frame:
        data: Frame = (await self.call("get_update", time=since))["data"]
        return data

    async def edit(self, message_id: str, text: str) -> None:
        await self.call("edited_message", message=[{"uuid": message_id, "text": text}])

    async def delete_message(self, message_id: str) -> None:
        await self.call("delete_message", message=[{"uuid": message_id}])

    async def delete_user(self, login: str, password: str) -> None:
        await self.call("delete_user", user=[{"login": login, "password": password}])
        self.user_id = self.token = None

    async def ping(self) -> None:
        await self.call("ping_pong")


class SpreadClient(Client):
    """A connection to each server of a cluster, each request sent over one picked at random.

    ``ws`` is its home connection, which ``request`` picks too, and the one a test reads
    pushed frames from: a subscription lives on the connection that asked for it, so a
    subscribe answered 200 makes that connection the home one (raw reads of ``ws`` then see
    its updates).
    """

    def __init__(self, connections: Sequence[WebSocketConnection], picker: random.Random) -> None:
        self.connections = list(connections)
        self.picker = picker
        super().__init__(picker.choice(self.connections))

    async def exchange(self, frame: str | bytes) -> str | bytes:
        ws = self.picker.choice(self.connections)
        await ws.send_message(frame)
        reply = await ws.get_message()
        if _is_subscribed(reply):
            self.ws = ws
        return reply


def _is_subscribed(reply: str | bytes) -> bool:
    try:
        frame = msgspec.json.decode(reply)
    except msgspec.DecodeError:
        return False
    if not isinstance(frame, dict) or frame.get("type") != "subscribe":
        return False
    errors = frame.get("errors")
    return isinstance(errors, dict) and errors.get("code") == 200


@asynccontextmanager
async def open_spread_client(
    urls: Sequence[str], picker: random.Random | None = None
) -> AsyncIterator[Client]:
    """A ``SpreadClient`` connected to each of ``urls``; every connection closes at the end."""
    async with AsyncExitStack() as stack:
        connections = [
            await stack.enter_async_context(
                open_websocket_url(url, max_message_size=16 * 1024 * 1024)
            )
            for url in urls
        ]
        yield SpreadClient(connections, picker or random.Random())


@asynccontextmanager
async def open_client(
    url: str, *, max_message_size: int = 16 * 1024 * 1024, local_address: str | None = None
) -> AsyncIterator[Client]:
    """Connect to a MoreliaTalk server; the connection closes when the block ends.

    ``local_address``: the address to connect from, such as 127.0.0.2 (every 127.x.y.z
    reaches a server on 127.0.0.1): a client the server's limits per address count apart.
    """
    if local_address is None:
        async with open_websocket_url(url, max_message_size=max_message_size) as ws:
            yield Client(ws)
        return
    async with _open_websocket_from(url, local_address, max_message_size) as ws:
        yield Client(ws)


@asynccontextmanager
async def _open_websocket_from(
    url: str, local_address: str, max_message_size: int
) -> AsyncIterator[WebSocketConnection]:
    """open_websocket_url, from a chosen local address (ws:// only)."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None:
        raise ValueError(f"{url!r}: only ws://HOST:PORT/PATH URLs may name a local address")
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    stream = await trio.open_tcp_stream(
        parts.hostname, parts.port or 80, local_address=local_address
    )
    async with stream, trio.open_nursery() as nursery:
        ws = await wrap_client_stream(
            nursery, stream, parts.hostname, resource, max_message_size=max_message_size
        )
        try:
            yield ws
        finally:
            await ws.aclose()

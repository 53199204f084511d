"""The client's connection: requests, paging, resuming and reconnecting with backoff."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

import msgspec
import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    connect_websocket_url,
    wrap_client_stream,
)

from .errors import ERRORS, ConnectionLost, RequestFailed, Unauthorized
from .results import (
    Deleted,
    Flow,
    FlowType,
    Frame,
    Message,
    Page,
    Profile,
    Sent,
    Session,
    Update,
    _encoder,
    _Envelope,
    _Flows,
    _Listing,
    _Pushed,
    _Sents,
    _Tokens,
)
from .subscription import Subscription


class Backoff(msgspec.Struct, frozen=True):
    """Waits between attempts to reconnect: ``first`` seconds, growing by ``factor`` up to
    ``most``, each taken at random between half and all of it (so clients a restart dropped
    together do not return together); after ``attempts`` failures, ``ConnectionLost``."""

    first: float = 0.1
    factor: float = 2.0
    most: float = 10.0
    attempts: int = 10

    def delays(self) -> list[float]:
        waits = (min(self.most, self.first * self.factor**n) for n in range(self.attempts))
        return [wait * random.uniform(0.5, 1.0) for wait in waits]


# Requests that change nothing: after a dropped connection they are safely sent again.
_READS = frozenset({"user_info", "all_flow", "all_messages", "get_update", "ping_pong"})
# A subscription ends with its connection: on a new one, subscribing again is what is wanted.
_RESENT = _READS | {"subscribe"}
_PUSHED = frozenset({"update", "resync"})  # frame types the server sends unasked
_DROPPED = (ConnectionClosed, HandshakeError, trio.BrokenResourceError, OSError)

Listed: TypeAlias = Literal["all_messages", "all_flow", "get_update"]
Connector: TypeAlias = Callable[[trio.Nursery], Awaitable[WebSocketConnection]]
# What a connection's reader hands on: a frame, or why the connection dropped.
Routed: TypeAlias = str | bytes | BaseException


class _Router:
    """A subscribed connection's one reader: replies to the request waiting, ``update`` and
    ``resync`` frames to the subscription (queued, so neither waits for the other).

    It reads only while someone waits for a frame: updates nobody iterates over stay with
    the server, whose bounded backlog turns them into one ``resync``, rather than piling up
    here. A request's wait queues the updates sent before its reply: a backlog at most."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.replies_in, self.replies = trio.open_memory_channel[Routed](math.inf)
        self.waiting = 0
        self.wake = trio.Event()
        self.closed = False

    async def wanted(self) -> None:
        """Wait until a frame is wanted, or the connection closed (reading then says how)."""
        while self.waiting == 0 and not self.closed:
            self.wake = trio.Event()
            await self.wake.wait()

    @asynccontextmanager
    async def want(self) -> AsyncIterator[None]:
        self.waiting += 1
        self.wake.set()
        try:
            yield
        finally:
            self.waiting -= 1

    def close(self) -> None:
        """Its connection closed: the reader reads once more, to learn how, and ends."""
        self.closed = True
        self.wake.set()


class Client:
    """A session with a server. After ``register``, ``login`` or ``resume`` every request
    carries the token. Requests take turns, so tasks may share one client."""

    def __init__(
        self,
        nursery: trio.Nursery,
        connect: Connector,
        ws: WebSocketConnection,
        backoff: Backoff | None = None,
    ) -> None:
        self._nursery = nursery
        self._connect = connect
        self._ws: WebSocketConnection | None = ws
        self._backoff = backoff  # None: never reconnect
        self._turn = trio.Lock()
        self._router: _Router | None = None  # once the connection has subscribed
        self._pushed: trio.MemorySendChannel[Routed] | None = None  # the subscription's queue
        self.session: Session | None = None

    @property
    def user_id(self) -> str | None:
        return None if self.session is None else self.session.user_id

    # --- the wire ---

    async def request(self, frame: Frame | str | bytes) -> Frame:
        """Send one raw frame and return the reply decoded as JSON, whatever its code."""
        if isinstance(frame, dict):
            frame = _encoder.encode(frame).decode()
        reply: Frame = msgspec.json.decode(await self._exchange(frame, resend=False))
        return reply

    async def _exchange(
        self, frame: str | bytes, *, resend: bool, route: bool = False
    ) -> str | bytes:
        """Send ``frame``, return its reply. ``route``: from now on one reader takes every
        frame of the connection, as a subscribed one also gets frames nobody asked for."""
        async with self._turn:
            while True:
                # A connection that fails as soon as it is made fails for this request:
                # trying it again would only loop (a frame the server refuses, say).
                fresh = self._ws is None
                ws = self._ws or await self._reconnect()
                if route and (self._router is None or self._router.ws is not ws):
                    self._router = _Router(ws)
                    self._nursery.start_soon(self._route, self._router)
                try:
                    await ws.send_message(frame)
                except _DROPPED as exc:  # a frame cut short is never applied: safe to send
                    await self._drop(ws, exc, sent=False, again=not fresh)
                    continue
                try:
                    return await self._reply(ws)
                except _DROPPED as exc:
                    await self._drop(ws, exc, sent=not resend, again=resend and not fresh)

    async def _reply(self, ws: WebSocketConnection) -> str | bytes:
        router = self._router
        if router is None or router.ws is not ws:
            return await ws.get_message()
        async with router.want():
            routed = await router.replies.receive()
        if isinstance(routed, BaseException):
            raise routed
        return routed

    async def _route(self, router: _Router) -> None:
        """Read every frame of a subscribed connection until it drops or closes."""
        ws = router.ws
        try:
            while True:
                await router.wanted()
                frame = await ws.get_message()
                try:
                    pushed = msgspec.json.decode(frame, type=_Pushed).type in _PUSHED
                except msgspec.MsgspecError:  # not ours to judge: the request gets it
                    pushed = False
                if not pushed:
                    router.replies_in.send_nowait(frame)
                elif self._pushed is not None:  # else unsubscribed: nobody wants it
                    self._pushed.send_nowait(frame)
        except _DROPPED as exc:
            if self._ws is ws:
                self._ws = None  # the next request connects again (or says it dropped)
            router.replies_in.send_nowait(exc)
            if self._pushed is not None:
                self._pushed.send_nowait(exc)

    async def _drop(
        self, ws: WebSocketConnection, exc: BaseException, *, sent: bool, again: bool
    ) -> None:
        """Forget a dropped connection; raise unless the request may be sent again.

        ``sent``: a change reached the server, whose answer never came."""
        self._ws = None
        with trio.move_on_after(1):
            await ws.aclose()
        if self._router is not None and self._router.ws is ws:
            self._router.close()
        if self._backoff is not None and again:
            return
        if sent:
            raise ConnectionLost(
                f"the connection dropped before the answer came ({_why(exc)}): "
                "the request may or may not have been applied",
                maybe_applied=True,
            ) from exc
        raise ConnectionLost(f"the connection dropped ({_why(exc)})") from exc

    async def _reconnect(self) -> WebSocketConnection:
        if self._backoff is None:
            raise ConnectionLost("the connection dropped earlier (open_client(reconnect=True)?)")
        failure: BaseException | None = None
        for delay in self._backoff.delays():
            await trio.sleep(delay)
            try:
                self._ws = await self._connect(self._nursery)
                return self._ws
            except _DROPPED as exc:
                failure = exc
        raise ConnectionLost(
            f"could not reconnect in {self._backoff.attempts} attempts ({_why(failure)})"
        ) from failure

    async def call(self, type_: str, **data: Any) -> msgspec.Raw:
        """Send a list-dialect request with the session's token; return its ``data``, raw.

        Raises the ``RequestFailed`` subclass of an error code, or ``ConnectionLost``.
        """
        return (await self._call(type_, **data))[1]

    async def _call(
        self, type_: str, *, route: bool = False, **data: Any
    ) -> tuple[int, msgspec.Raw]:
        if self.session is not None and "user" not in data:
            data["user"] = [self._me()]
        frame = {"type": type_, "data": data, "jsonapi": {"version": "1.0"}}
        encoded = _encoder.encode(frame).decode()
        raw = await self._exchange(encoded, resend=type_ in _RESENT, route=route)
        reply = msgspec.json.decode(raw, type=_Envelope)
        errors = reply.errors
        if errors.code >= 300:
            kind = ERRORS.get(errors.code, RequestFailed)
            raise kind(errors.code, errors.status, errors.detail, msgspec.json.decode(raw))
        return errors.code, reply.data

    def _me(self) -> Frame:
        assert self.session is not None
        return {"uuid": self.session.user_id, "auth_id": self.session.token}

    # --- sessions ---

    async def register(
        self, login: str, password: str, username: str | None = None, email: str | None = None
    ) -> Session:
        user = {"login": login, "password": password, "username": username, "email": email}
        return self._keep(await self.call("register_user", user=[user]))

    async def login(self, login: str, password: str) -> Session:
        return self._keep(await self.call("auth", user=[{"login": login, "password": password}]))

    async def resume(self, session: Session) -> None:
        """Carry on a saved session; raises ``Unauthorized`` when its token no longer works."""
        self.session = session
        try:
            await self.ping()
        except Unauthorized:
            self.session = None
            raise

    def _keep(self, data: msgspec.Raw) -> Session:
        token = msgspec.json.decode(data, type=_Tokens).user[0]
        self.session = Session(token.id, token.auth_id)
        return self.session

    async def delete_user(self, login: str, password: str) -> None:
        await self.call("delete_user", user=[{"login": login, "password": password}])
        self.session = None

    async def ping(self) -> None:
        await self.call("ping_pong")

    # --- reading ---

    async def me(self) -> Profile:
        """Your own profile (with your email)."""
        return msgspec.json.decode(await self.call("user_info"), type=_Listing).user[0]

    async def users(self, *user_ids: str) -> list[Profile]:
        """The public profiles of these users, in that order."""
        named = [{"uuid": user_id} for user_id in user_ids]
        data = await self.call("user_info", user=[self._me(), *named])
        return msgspec.json.decode(data, type=_Listing).user[1:]

    async def flows(self, since: int = 0) -> list[Flow]:
        """Every flow you may see (created at or after ``since``), oldest first."""
        return (await self._everything("all_flow", since, None)).flows

    async def messages(self, flow_id: str | None = None, since: int = 0) -> list[Message]:
        """Messages from ``since`` on, oldest first, in one flow or every flow you may read."""
        return (await self._everything("all_messages", since, flow_id)).messages

    async def updates(self, since: int = 0, flow_id: str | None = None) -> Update:
        """Messages, flows and profiles that changed at or after ``since``."""
        everything = await self._everything("get_update", since, flow_id)
        return Update(
            users=everything.users,
            flows=everything.flows,
            messages=everything.messages,
            deleted=everything.deleted,
            time=everything.time,
        )

    async def _everything(self, type_: Listed, since: int, flow_id: str | None) -> Page:
        users: dict[str, Profile] = {}
        flows: dict[str, Flow] = {}
        messages: dict[str, Message] = {}
        deleted: dict[str, Deleted] = {}
        time = since
        async for page in self.pages(type_, since, flow_id):
            # a later copy (an edit, say) replaces the earlier one in place
            users.update((user.id, user) for user in page.users)
            flows.update((flow.id, flow) for flow in page.flows)
            messages.update((message.id, message) for message in page.messages)
            deleted.update((gone.id, gone) for gone in page.deleted)
            time = page.time
        return Page(
            users=list(users.values()),
            flows=list(flows.values()),
            messages=[m for m in messages.values() if m.id not in deleted],
            deleted=list(deleted.values()),
            time=time,
        )

    async def pages(
        self,
        type_: Listed,
        since: int = 0,
        flow_id: str | None = None,
    ) -> AsyncIterator[Page]:
        """Each reply of a listing in turn, following 206 to the end.

        The list dialect's times are whole seconds, and a partial page never ends inside
        one, so the next page is asked from the last second received: its items come again,
        and are left out here. A page may hence come out empty.
        """
        seen: set[tuple[str, str]] = set()
        while True:
            flow = [{"uuid": flow_id}] if flow_id is not None else None
            code, data = await self._call(type_, flow=flow, time=since)
            listing = msgspec.json.decode(data, type=_Listing)
            messages, deleted = listing.messages()
            partial = code == 206
            keys = {("Profile", u.id) for u in listing.user}
            keys |= {("Flow", f.id) for f in listing.flow}
            keys |= {("Message", m.id) for m in messages}
            keys |= {("Deleted", d.id) for d in deleted}
            yield Page(
                users=[u for u in listing.user if ("Profile", u.id) not in seen],
                flows=[f for f in listing.flow if ("Flow", f.id) not in seen],
                messages=[m for m in messages if ("Message", m.id) not in seen],
                deleted=[d for d in deleted if ("Deleted", d.id) not in seen],
                time=listing.time,
                partial=partial,
            )
            if not partial:
                return
            seen = keys
            # Profiles carry no time; the page holds whole seconds past ``since``, so the
            # next second is always safe to ask from.
            times = [f.time for f in listing.flow]
            times += [m.edited_time or m.time for m in messages]
            times += [d.time for d in deleted]
            since = max([since + 1, *times])

    # --- live updates ---

    @asynccontextmanager
    async def subscribe(self, since: int = 0) -> AsyncIterator[Subscription]:
        """Live updates (``async for update in ...``) until the block ends, which unsubscribes.

        ``since`` above 0: what changed from then on comes first. Raises as requests do
        (``BadRequest`` from a server without live updates). One subscription at a time.
        """
        if self._pushed is not None:
            raise RuntimeError("this client has subscribed already")
        self._pushed, pushed = trio.open_memory_channel[Routed](math.inf)
        subscribed = False
        try:
            _, data = await self._call("subscribe", time=since, route=True)
            subscribed = True
            # Without ``since``, the server's clock now: a reconnect catches up from there.
            start = since or msgspec.json.decode(data, type=_Listing).time
            yield Subscription(self, pushed, start)
        finally:
            self._pushed = None  # what still comes is nobody's
            # a dropped connection took the subscription with it
            if subscribed and self._ws is not None:
                # a refusal or a drop: the subscription ends with its connection anyway
                shielded, bounded = trio.CancelScope(shield=True), trio.move_on_after(5)
                with shielded, bounded, suppress(RequestFailed, ConnectionLost):
                    await self.call("unsubscribe")

    async def _next_pushed(self, pushed: trio.MemoryReceiveChannel[Routed]) -> Routed:
        """The subscription's next frame, reading the connection for it if need be."""
        try:
            return pushed.receive_nowait()
        except trio.WouldBlock:
            pass
        router = self._router
        if router is None:  # never: subscribing starts the reader
            return await pushed.receive()
        async with router.want():
            return await pushed.receive()

    async def _subscribe_again(self, exc: BaseException, since: int) -> None:
        """The subscribed connection dropped: subscribe on a new one, or raise."""
        if self._backoff is None:
            raise ConnectionLost(f"the connection dropped ({_why(exc)})") from exc
        await self._call("subscribe", time=since, route=True)

    # --- writing ---

    async def add_flow(
        self, type_: FlowType, title: str, users: list[str] | None = None, info: str | None = None
    ) -> Flow:
        flow = {"type": type_, "title": title, "info": info, "users": users}
        return msgspec.json.decode(await self.call("add_flow", flow=[flow]), type=_Flows).flow[0]

    async def send(self, flow_id: str, text: str | None = None, **extra: Any) -> Sent:
        """Post to a flow; ``extra``: client_id, reply_to, file_picture, emoji and the like."""
        message = {"text": text, **extra}
        data = await self.call("send_message", flow=[{"uuid": flow_id}], message=[message])
        return msgspec.json.decode(data, type=_Sents).message[0]

    async def edit(self, message_id: str, text: str) -> None:
        await self.call("edited_message", message=[{"uuid": message_id, "text": text}])

    async def delete_message(self, message_id: str) -> None:
        await self.call("delete_message", message=[{"uuid": message_id}])


def _why(exc: BaseException | None) -> str:
    if isinstance(exc, ConnectionClosed) and exc.reason is not None:
        return f"closed with {exc.reason.code}"
    return "no reason given" if exc is None else type(exc).__name__


@asynccontextmanager
async def open_client(
    url: str,
    *,
    session: Session | None = None,
    reconnect: bool | Backoff = False,
    max_message_size: int = 16 * 1024 * 1024,
    local_address: str | None = None,
) -> AsyncIterator[Client]:
    """Connect to a MoreliaTalk server; the connection closes when the block ends.

    ``session``: resume it (``Unauthorized`` if its token no longer works).
    ``reconnect``: when the connection drops, connect again at the next request, waiting
    as ``Backoff`` says (``True``: its defaults); reads lost in flight are sent again, a
    change lost in flight raises ``ConnectionLost``. Off, a drop raises ``ConnectionLost``.
    ``local_address``: the address to connect from, such as 127.0.0.2 (every 127.x.y.z
    reaches a server on 127.0.0.1): a client the server's limits per address count apart.
    """

    async def connect(nursery: trio.Nursery) -> WebSocketConnection:
        if local_address is None:
            return await connect_websocket_url(nursery, url, max_message_size=max_message_size)
        return await _connect_from(nursery, url, local_address, max_message_size)

    backoff = Backoff() if reconnect is True else (reconnect or None)
    try:
        async with trio.open_nursery() as nursery:  # the connections' own tasks
            client = Client(nursery, connect, await connect(nursery), backoff)
            try:
                if session is not None:
                    await client.resume(session)
                yield client
            finally:
                if client._ws is not None:
                    await client._ws.aclose()
                if client._router is not None:
                    client._router.close()
    except BaseExceptionGroup as group:
        # The nursery wraps what the caller's block raised: hand it back as it was raised.
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        context = leaf.__context__
        try:
            raise leaf
        finally:
            leaf.__context__ = context


async def _connect_from(
    nursery: trio.Nursery, url: str, local_address: str, max_message_size: int
) -> WebSocketConnection:
    """connect_websocket_url, from a chosen local address (ws:// only)."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None:
        raise ValueError(f"{url!r}: only ws://HOST:PORT/PATH URLs may name a local address")
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    stream = await trio.open_tcp_stream(
        parts.hostname, parts.port or 80, local_address=local_address
    )
    return await wrap_client_stream(
        nursery, stream, parts.hostname, resource, max_message_size=max_message_size
    )

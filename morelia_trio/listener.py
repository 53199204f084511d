"""One TCP port for WebSocket and plain HTTP: each connection's request head says which.

For every accepted connection the request head is read with h11 under the handshake timeout
(a peer that sends it too slowly is dropped unanswered). A WebSocket upgrade is handed to
trio-websocket on a stream that returns the bytes already read before reading on, so it
sees the connection as if it had read it from the start (its handshake, 404 for other paths,
maximum message size and closing handshake are its own). Any other request is answered as
plain HTTP/1.1 from ``endpoints.ROUTES``, one request per connection (``Connection: close``).

Every connection, whatever it carries, counts against the per-address and total connection
limits from accept to close; a refused one hears 429 or 503 once its head is read. A
connection from a trusted proxy counts for the client its ``X-Forwarded-For`` names instead
(``proxies.py``), from the moment its head is read.

With TLS (``tls.py``) each TCP stream is wrapped in ``trio.SSLStream`` and its TLS handshake
done under the same deadline as the head, before the head is read; nothing after it changes.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import suppress
from http import HTTPStatus
from typing import Any, Final

import h11
import trio
from trio_websocket import WebSocketRequest, wrap_server_stream

from . import endpoints
from .connection import Peer
from .handlers import Context
from .logs import PEER
from .logtext import for_log
from .proxies import TrustedProxies
from .sockets import open_tcp_listeners
from .tls import Certificates

log = logging.getLogger(__name__)

RECEIVE_BYTES: Final = 4096  # as trio-websocket reads
MAX_HEAD_BYTES: Final = 16 * 1024  # h11's default, and so what trio-websocket allowed
BAD_REQUEST: Final = endpoints.Reply(400, b"Malformed or too large HTTP request.\n")
PLAIN_ON_TLS: Final = b"This port speaks TLS: wss:// or https://.\n"

WebSocketHandler = Callable[[WebSocketRequest, Peer], Awaitable[None]]


class _Head:
    """A request head as read: h11's state, the request (None if it was malformed), the bytes."""

    __slots__ = ("h11", "raw", "request")

    def __init__(self) -> None:
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.raw = bytearray()
        self.request: h11.Request | None = None

    def forwarded_for(self) -> list[bytes]:
        assert self.request is not None
        return [value for name, value in self.request.headers if name == b"x-forwarded-for"]

    def is_upgrade(self) -> bool:
        """Whether the request asks for a WebSocket (a malformed one asks for nothing)."""
        if self.request is None:
            return False
        return any(
            name == b"upgrade" and b"websocket" in value.lower()
            for name, value in self.request.headers
        )


class Replay(trio.abc.Stream):
    """A stream whose first bytes are ``buffered`` (already read from ``inner``), then inner's.

    Its methods hand back inner's awaitables rather than being coroutines of their own: every
    WebSocket frame goes through them.
    """

    def __init__(self, inner: trio.abc.Stream, buffered: bytes) -> None:
        self._inner = inner
        self._buffered = buffered

    def receive_some(self, max_bytes: int | None = None) -> Coroutine[Any, Any, bytes | bytearray]:
        if self._buffered:
            return self._replay(max_bytes)
        return self._inner.receive_some(max_bytes)

    async def _replay(self, max_bytes: int | None) -> bytes | bytearray:
        await trio.lowlevel.checkpoint()
        size = len(self._buffered) if max_bytes is None else max_bytes
        data, self._buffered = self._buffered[:size], self._buffered[size:]
        return data

    def send_all(self, data: bytes | bytearray | memoryview) -> Coroutine[Any, Any, None]:
        return self._inner.send_all(data)

    def wait_send_all_might_not_block(self) -> Coroutine[Any, Any, None]:
        return self._inner.wait_send_all_might_not_block()

    def aclose(self) -> Coroutine[Any, Any, None]:
        return self._inner.aclose()


class Listener:
    """What every connection on the port shares: where WebSockets go, the limits, timeouts."""

    def __init__(
        self,
        ctx: Context,
        websocket: WebSocketHandler | None,
        *,
        max_message_size: int,
        tls: Certificates | None = None,
        proxies: TrustedProxies | None = None,
        routes: Mapping[str, endpoints.Endpoint] = endpoints.ROUTES,
        reuse_port: bool = False,
    ) -> None:
        self.ctx = ctx
        self.websocket = websocket  # None: plain HTTP only (a --metrics-port listener)
        self.max_message_size = max_message_size
        self.tls = tls
        self.proxies = proxies or TrustedProxies(())
        self.routes = routes
        self.reuse_port = reuse_port  # share the port with other processes (sockets.py)

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept connections on host:port until cancelled; ``started`` with the port bound."""
        listeners = await open_tcp_listeners(port, host, reuse_port=self.reuse_port)
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve_tcp, listeners)
            for listener in listeners:
                log.debug("Listening on %s", listener.socket.getsockname())
            task_status.started(listeners[0].socket.getsockname()[1])

    async def _serve_tcp(self, tcp: trio.SocketStream) -> None:
        try:
            address, port, *_ = tcp.socket.getpeername()
        except OSError:  # gone already
            await tcp.aclose()
            return
        peer = Peer(str(address), port)
        PEER.set(str(peer))  # this connection's task: every line it logs names the peer
        # The peer's time to send its head (and, with TLS, to finish the TLS handshake first).
        deadline = trio.current_time() + self.ctx.timeouts.handshake
        # A trusted proxy's connection is counted once its head names the client it carries:
        # counted for the proxy, a proxy's connections would all share one address's limit.
        admission = _Admission(self.ctx, None if self.proxies.trusts(peer.address) else peer)
        try:
            upgrade = await self._answer_or_upgrade(tcp, peer, admission, deadline)
            if upgrade is None:
                return
            # The WebSocket's life is spent in this frame and the handler's: every frame
            # between them would be stepped through each time the connection's task wakes.
            stream, peer = upgrade
            async with stream, trio.open_nursery() as nursery:
                with trio.move_on_at(deadline) as handshake:
                    request = await wrap_server_stream(
                        nursery, stream, max_message_size=self.max_message_size
                    )
                if handshake.cancelled_caught:
                    nursery.cancel_scope.cancel()
                    return
                assert self.websocket is not None  # only upgrades with a handler come here
                try:
                    await self.websocket(request, peer)
                finally:
                    with trio.move_on_after(self.ctx.timeouts.close):
                        # The request's connection: the one way to end its reader task, as
                        # trio-websocket's server does after its handler.
                        await request._connection.aclose()
        finally:
            admission.release()

    async def _answer_or_upgrade(
        self, tcp: trio.SocketStream, peer: Peer, admission: _Admission, deadline: float
    ) -> tuple[Replay, Peer] | None:
        """Read the request head and answer it, closing the connection; or, for a WebSocket
        upgrade, return the open stream (replaying the head) and the client it serves."""
        stream: trio.abc.Stream = tcp
        if self.tls is not None:
            # https_compatible: no waiting for the peer's close_notify, which HTTP clients skip.
            stream = trio.SSLStream(tcp, self.tls.context, server_side=True, https_compatible=True)
        try:
            found = await self._head(stream, tcp, peer, admission, deadline)
            if (
                found is not None
                and admission.refused is None
                and self.websocket is not None  # a listener for /metrics alone takes none
                and found[0].is_upgrade()
            ):
                head, peer = found
                return Replay(stream, bytes(head.raw)), peer
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        async with stream:
            if found is not None:
                await self._answer(stream, *found, admission)
        return None

    async def _head(
        self,
        stream: trio.abc.Stream,
        tcp: trio.SocketStream,
        peer: Peer,
        admission: _Admission,
        deadline: float,
    ) -> tuple[_Head, Peer] | None:
        """The request head and the client it is for; None if there is nothing to answer."""
        with trio.move_on_at(deadline):
            if isinstance(stream, trio.SSLStream):
                try:
                    await stream.do_handshake()
                except trio.BrokenResourceError as exc:  # not TLS, or no common ground
                    why = _tls_failure(exc)
                    log.info("%s: TLS handshake failed: %s", peer, why)
                    if why == "HTTP_REQUEST":  # plain HTTP (ws://): answered in its terms
                        await _send_plain_refusal(tcp, self.ctx.timeouts.send)
                    return None
            head = await _read_head(stream)
            if head is None:
                return None  # gone before a request
            if head.request is not None and admission.peer is None:
                client = self.proxies.client(peer.address, head.forwarded_for())
                if client != peer.address:
                    proxy, peer = peer, Peer(client)  # its port is the proxy's business
                    PEER.set(str(peer))
                    log.debug("%s: connection forwarded by the proxy at %s", peer, proxy.address)
                admission.admit(peer)
            return head, peer
        return None  # too slow: nothing to answer

    async def _answer(
        self, stream: trio.abc.Stream, head: _Head, peer: Peer, admission: _Admission
    ) -> None:
        """Answer a request that is no WebSocket upgrade (or one refused), in plain HTTP."""
        send_within = self.ctx.timeouts.send
        refused = admission.refused
        if head.request is None:
            log.info("%s: malformed HTTP request (400)", peer)
            await _send(stream, head, BAD_REQUEST, send_within)
        elif refused is not None:
            status, why = refused
            log.info("%s: connection refused (%d): %s", peer, status, why.strip())
            await _send(stream, head, endpoints.Reply(status, why.encode()), send_within)
        else:
            request = head.request
            method, target = request.method.decode(), request.target.decode("ascii", "replace")
            reply = await endpoints.answer(method, target, self.ctx, self.routes)
            if reply.status >= 400:
                shown = for_log(method, 16), for_log(target, 100)  # both the client's
                log.info("%s: HTTP %s %s %d", peer, *shown, reply.status)
            await _send(stream, head, reply, send_within)


class _Admission:
    """One connection's place in the connection limits: taken (or refused) once, given back."""

    def __init__(self, ctx: Context, peer: Peer | None) -> None:
        self.ctx = ctx
        self.peer: Peer | None = None
        self.refused: tuple[int, str] | None = None
        if peer is not None:
            self.admit(peer)

    def admit(self, peer: Peer) -> None:
        self.peer = peer
        self.refused = self.ctx.guard.admit(peer.address)

    def release(self) -> None:
        if self.peer is not None and self.refused is None:
            self.ctx.guard.release(self.peer.address)


def _tls_failure(exc: trio.BrokenResourceError) -> str:
    """Why, in ssl's words (its reason code), never the bytes the peer sent."""
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLError) and cause.reason:
        return cause.reason
    return "connection lost" if cause is None else type(cause).__name__


async def _send_plain_refusal(tcp: trio.SocketStream, within: float) -> None:
    """A 400 in plain HTTP, so that an http:// or ws:// client hears why at once."""
    head = (
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(PLAIN_ON_TLS)}\r\nConnection: close\r\n\r\n"
    )
    with trio.move_on_after(within), suppress(trio.BrokenResourceError):
        await tcp.send_all(head.encode() + PLAIN_ON_TLS)


async def _read_head(stream: trio.abc.Stream) -> _Head | None:
    """The request head; its ``request`` None if malformed or too large; None if the peer left."""
    head = _Head()
    while True:
        try:
            event = head.h11.next_event()
        except h11.RemoteProtocolError:
            return head
        if isinstance(event, h11.Request):
            # h11 checks the size only while it waits for more: a head that came whole in
            # the last read may be larger.
            if len(head.raw) - len(head.h11.trailing_data[0]) <= MAX_HEAD_BYTES:
                head.request = event
            return head
        if event is not h11.NEED_DATA:
            return None  # closed before a request
        try:
            data = await stream.receive_some(RECEIVE_BYTES)
        except trio.BrokenResourceError:
            return None
        head.raw += data
        head.h11.receive_data(bytes(data))


async def _send(
    stream: trio.abc.Stream, head: _Head, reply: endpoints.Reply, within: float
) -> None:
    """Send ``reply`` (without its body to a HEAD), then the connection is closed."""
    headers = [
        ("Content-Type", reply.content_type),
        ("Content-Length", str(len(reply.body))),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
        *reply.headers,
    ]
    phrase = HTTPStatus(reply.status).phrase.encode()
    events: list[h11.Event] = [
        h11.Response(status_code=reply.status, headers=headers, reason=phrase)
    ]
    if head.request is None or head.request.method != b"HEAD":
        events.append(h11.Data(data=reply.body))
    events.append(h11.EndOfMessage())
    data = b"".join(head.h11.send(event) or b"" for event in events)
    # The peer may be gone (broken): there is nothing more to tell it.
    with trio.move_on_after(within), suppress(trio.BrokenResourceError):
        await stream.send_all(data)

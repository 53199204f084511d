"""One task per WebSocket: read a frame, answer it, repeat. The boundary no bug crosses.

A connection holds at most one reply at a time: the next frame is read only once the last
reply was taken by the client, so a client that stops reading costs one reply's memory (and,
once subscribed, its bounded backlog of live updates), and is disconnected after
``timeouts.send``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest

from .core.answers import Answer
from .core.errors import InternalError, MoreliaError, TooManyRequests
from .core.frames import Dialect
from .core.protocol import ERRORS_TYPE, FrameError, decode_request
from .core.replies import render
from .handlers import Context, handle
from .live import SUCCESS_DETAIL, Subscriber
from .live import reply_ids as _reply_ids
from .logs import REQUEST_ID
from .logtext import for_log
from .parse_failures import answer_parse_failures, parse_failure
from .watchdog import PeerTimer, Watchdog

log = logging.getLogger(__name__)

WS_PATH = "/ws"
# Only with --autobahn-echo: every frame comes back as it was sent, over the same WebSocket
# stack, limits and connection loop as /ws, so a conformance suite (Autobahn) can test them.
ECHO_PATH = "/echo"


def _failure(error: MoreliaError) -> Answer:
    return Answer(code=error.code, status=error.status)


class Peer(msgspec.Struct, frozen=True):
    """Who is at the other end: limits count by address, logs name address and port."""

    address: str
    port: int = 0

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"


IN_PROCESS: Final = Peer("in-process")


async def respond(
    frame: str | bytes, ctx: Context, peer: Peer = IN_PROCESS, live: Subscriber | None = None
) -> str:
    """The reply to one frame from ``peer``, whose connection's live updates are ``live``.
    Never raises but for cancellation."""
    started, reply_id = time.perf_counter(), next(_reply_ids)
    REQUEST_ID.set(reply_id)  # for the log lines of this request (logs.py)
    reply_type, dialect = ERRORS_TYPE, Dialect.DOCUMENT
    try:
        request = decode_request(frame, ctx.limits)
        reply_type, dialect = request.type, request.dialect
        answer = await handle(request, ctx, peer.address, live)
        detail = SUCCESS_DETAIL
    except FrameError as exc:
        reply_type, dialect = exc.reply_type, exc.dialect
        answer, detail = _failure(exc.error), exc.error.detail
    except MoreliaError as exc:
        answer, detail = _failure(exc), exc.detail
    except Exception:
        log.exception("%s: bug while answering a %s request", peer, for_log(reply_type))
        error = InternalError("The server failed to answer this request; it has been logged.")
        answer, detail = _failure(error), error.detail
    if answer.code >= 400:  # details name fields, never a value the client sent
        log.info("%s: %s %d %s", peer, for_log(reply_type), answer.code, for_log(detail, 200))
    reply = render(reply_type, dialect, answer, detail, now=ctx.clock(), reply_id=reply_id)
    ctx.metrics.replied(reply_type, answer.code, started)
    return reply


CONNECTION_FLOODING = "Too many frames on this connection; slow down."
OUSTED = "its address kept flooding (1008)"
ADDRESS_FLOODING = "Too many frames from this address; slow down."


def _flood_reply(ctx: Context, why: str) -> str:
    error = TooManyRequests(why)
    return render(
        ERRORS_TYPE,
        Dialect.DOCUMENT,
        _failure(error),
        error.detail,
        now=ctx.clock(),
        reply_id=next(_reply_ids),
    )


def _too_big(frame: str | bytes, limit: int) -> bool:
    """trio-websocket limits a text frame in characters; the contract limits it in bytes."""
    if isinstance(frame, bytes) or len(frame) * 4 <= limit:  # UTF-8: at most 4 bytes a char
        return len(frame) > limit
    return len(frame.encode("utf-8", "surrogatepass")) > limit


async def _echo(
    frame: str | bytes, ctx: Context, peer: Peer, live: Subscriber | None
) -> str | bytes:
    """The reply at ECHO_PATH: the frame itself, text or binary."""
    return frame


async def serve_connection(
    request: WebSocketRequest,
    peer: Peer,
    ctx: Context,
    watchdog: Watchdog,
    *,
    echo: bool = False,
) -> None:
    """Answer every frame on one WebSocket, in order, until the peer goes away.

    The listener has counted the connection in (``Guard.admit``) and releases it after.
    With ``echo`` (``--autobahn-echo``), ECHO_PATH is served too, by the same loop.
    """
    path = request.path.split("?", 1)[0]
    if path != WS_PATH and not (echo and path == ECHO_PATH):
        await request.reject(404, body=b"MoreliaTalk is served at /ws\n")
        return
    answer_parse_failures(request)
    ws = await request.accept()
    log.debug("%s: connection opened", peer)  # a client may open one for each request
    ouster = _Ouster()
    live = Subscriber()
    ended = OUSTED  # unless the conversation ends on its own
    try:
        with watchdog.timer() as timer, ctx.guard.watch_for_floods(peer.address, ouster.oust):
            with ouster.scope:
                answer = _echo if path == ECHO_PATH else respond
                # Awaited here, not through a coroutine of its own: every frame between the
                # handler and the loop is stepped through each time the connection's task wakes.
                conversation = _Conversation(ws, ctx, peer, timer, ouster, live, answer)
                ended = await conversation.run()
            if ended == OUSTED:
                await _close(ws, ctx, 1008, "flooding")
    finally:
        ctx.store.publisher.unsubscribe(live)
    REQUEST_ID.set(None)  # the last request is over: the close is no part of it
    log.debug("%s: connection closed: %s", peer, ended)


class _Ouster:
    """Ends a connection once its address has kept flooding (``Guard.watch_for_floods``).

    A wait for the peer is cut short; an answer or a send under way is let finish, the loop
    ending after it, so that no reply is left half-written on the socket.
    """

    __slots__ = ("ousted", "scope", "waiting")

    def __init__(self) -> None:
        self.ousted = False  # read on every frame: an attribute, not a method
        self.waiting = True  # for a frame or a pong (else answering or sending)
        self.scope = trio.CancelScope()

    def oust(self) -> None:
        """Called by the connection of the address whose frame showed it kept flooding."""
        self.ousted = True
        if self.waiting:
            self.scope.cancel()


class _Ends(Exception):
    """The connection ends here: why (for the log), and the close frame to send, if any."""

    def __init__(self, why: str, code: int = 0, reason: str = "") -> None:
        super().__init__(why)
        self.why, self.code, self.reason = why, code, reason


Respond = Callable[[str | bytes, Context, Peer, Subscriber | None], Awaitable[str | bytes]]


async def _ready(reply: str) -> str:
    return reply


class _Conversation:
    """One connection's turns: read a frame (pinging a silent peer), answer it, send the reply.
    Once subscribed, the live updates waiting are sent before each read: between replies,
    never inside one, through the same timed send.

    Only the peer is timed, by one ``PeerTimer`` whose scope lasts across frames: timing a
    frame writes the timer's due time, it never moves a cancel scope's deadline nor enters a
    new scope (see ``watchdog``). A step after which the connection ends raises ``_Ends``.
    """

    __slots__ = (
        "caught",
        "ctx",
        "frames",
        "live",
        "ouster",
        "peer",
        "respond",
        "silent",
        "strikes",
        "timer",
        "waited",
        "ws",
    )

    def __init__(
        self,
        ws: WebSocketConnection,
        ctx: Context,
        peer: Peer,
        timer: PeerTimer,
        ouster: _Ouster,
        live: Subscriber,
        respond: Respond,
    ) -> None:
        self.ws, self.ctx, self.peer, self.respond = ws, ctx, peer, respond
        self.live = live
        self.timer, self.ouster = timer, ouster
        self.frames = ctx.guard.frame_bucket()
        self.strikes = 0  # frames refused for flooding since the last one let through
        self.silent = 0.0  # seconds since the last frame
        self.waited = 0.0  # seconds the current read was given
        self.caught: str | bytes | None = None  # a frame that came in just as its read timed out

    async def run(self) -> str:
        """Read and answer frames until the connection ends; say why it ended.

        Returns OUSTED, or is cancelled by ``ouster.scope``, once its address kept flooding.
        """
        try:
            while True:
                # The watchdog cancels this scope once the peer is late.
                with self.timer.restart():
                    while True:
                        await self.send(await self.answer(await self.read()))
                await self.peer_late()
        except _Ends as end:
            if end.code:
                await _close(self.ws, self.ctx, end.code, end.reason)
            return end.why
        except ConnectionClosed as closed:
            failure = parse_failure(self.ws)
            if failure is not None:
                return f"by the server: {failure}"
            reason = closed.reason
            return f"by the peer ({reason.code})" if reason is not None else "by the peer"
        except Exception:  # a bug here must not take the whole server down with it
            log.exception("%s: bug in a connection; closing it", self.peer)
            await _close(self.ws, self.ctx, 1011, "internal error")
            return "internal error (1011)"

    async def read(self) -> str | bytes:
        """The next frame. Timed: the peer has until the next ping (or idling out) to send it."""
        ouster, timer = self.ouster, self.timer
        if ouster.ousted:
            raise _Ends(OUSTED)
        frame = self.caught
        if frame is None:
            if self.live.active:
                frame = await self.read_or_push()
            else:
                self.waited = min(
                    self.ctx.timeouts.ping_interval, self.ctx.timeouts.idle - self.silent
                )
                timer.expire_in(self.waited)
                ouster.waiting = True
                frame = await self.ws.get_message()
            self.silent = 0.0
            if ouster.ousted:  # as the frame came in: not answered
                raise _Ends(OUSTED)
            if timer.scope.cancel_called:  # the timer fired as the frame came in
                self.caught = frame  # answered first under the next scope
                await trio.lowlevel.checkpoint()  # takes the cancellation
        else:
            self.caught = None
        ouster.waiting = False
        timer.stop()
        return frame

    async def read_or_push(self) -> str | bytes:
        """A subscribed connection's read: send the updates waiting, then wait for a frame
        or for more updates, whichever comes first. A peer busy taking updates is no silent
        one: its idle time starts again after each of them."""
        live, ouster, timer = self.live, self.ouster, self.timer
        while True:
            while (update := live.next_out()) is not None:
                ouster.waiting = False
                await self.send(update)
            self.waited = min(self.ctx.timeouts.ping_interval, self.ctx.timeouts.idle - self.silent)
            timer.expire_in(self.waited)
            ouster.waiting = True
            frame = await live.next_frame(self.ws)
            if frame is not None:
                return frame
            if timer.scope.cancel_called:  # the peer is late too: see peer_late
                await trio.lowlevel.checkpoint()

    def answer(self, frame: str | bytes) -> Awaitable[str | bytes]:
        """The reply to ``frame``, or a refusal while flooding.

        Untimed: the answer takes what it takes (a login may queue for a hashing thread).
        The steps that do not wait return an awaitable rather than being coroutines: each
        request goes through them, and a coroutine's frame is a cost of its own.
        """
        ctx = self.ctx
        if _too_big(frame, ctx.limits.max_frame_bytes):
            raise _Ends("frame too big (1009)", 1009, "frame too big")
        guard = ctx.guard
        if not guard.address_frame(self.peer.address):
            if self.ouster.ousted:
                raise _Ends(OUSTED)
            return _ready(_flood_reply(ctx, ADDRESS_FLOODING))
        if self.frames is None or self.frames.take(guard.clock()):
            self.strikes = 0
            return self.respond(frame, ctx, self.peer, self.live)
        self.strikes += 1
        guard.refusals["frames_per_connection"] += 1
        if guard.limits is not None and self.strikes >= guard.limits.flood_strikes:
            raise _Ends("kept flooding (1008)", 1008, "flooding")
        return _ready(_flood_reply(ctx, CONNECTION_FLOODING))

    def send(self, reply: str | bytes) -> Awaitable[None]:
        """Timed: a peer that does not take its reply is a slow reader."""
        self.timer.expire_in(self.ctx.timeouts.send)
        return self.ws.send_message(reply)

    async def peer_late(self) -> None:
        """The timer fired: a frame caught as it did, a slow reader, or a silent peer."""
        timeouts = self.ctx.timeouts
        if self.ouster.ousted:
            raise _Ends(OUSTED)
        if self.caught is not None:
            return
        if not self.ouster.waiting:
            raise _Ends(f"a reply not taken in {timeouts.send:g} s (slow reader)")
        self.silent += self.waited
        if self.silent >= timeouts.idle:
            raise _Ends(f"idle for {timeouts.idle:g} s", 1001, "idle")
        with trio.move_on_after(timeouts.pong) as pinging:
            await self.ws.ping()
        if pinging.cancelled_caught:
            raise _Ends(f"no pong in {timeouts.pong:g} s", 1001, "no pong")


async def _close(ws: WebSocketConnection, ctx: Context, code: int, reason: str) -> None:
    with trio.move_on_after(ctx.timeouts.close):
        await ws.aclose(code=code, reason=reason)

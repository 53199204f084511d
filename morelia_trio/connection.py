"""One task per WebSocket: read a frame, answer it, repeat. The boundary no bug crosses.

A connection holds at most one reply at a time: the next frame is read only once the last
reply was taken by the client, so a client that stops reading costs one reply's memory, and
is disconnected after ``timeouts.send``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
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
from .logtext import for_log
from .parse_failures import answer_parse_failures, parse_failure
from .watchdog import PeerTimer, Watchdog

log = logging.getLogger(__name__)

SUCCESS_DETAIL = "successfully"
WS_PATH = "/ws"
# Only with --autobahn-echo: every frame comes back as it was sent, over the same WebSocket
# stack, limits and connection loop as /ws, so a conformance suite (Autobahn) can test them.
ECHO_PATH = "/echo"

# errors.id in the document dialect: unique and increasing, across restarts too.
_reply_ids: Iterator[int] = itertools.count(time.time_ns() // 1000)


def _failure(error: MoreliaError) -> Answer:
    return Answer(code=error.code, status=error.status)


class Peer(msgspec.Struct, frozen=True):
    """Who is at the other end: limits count by address, logs name address and port."""

    address: str
    port: int = 0

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"


IN_PROCESS: Final = Peer("in-process")


async def respond(frame: str | bytes, ctx: Context, peer: Peer = IN_PROCESS) -> str:
    """The reply to one frame from ``peer``. Never raises but for cancellation."""
    reply_type, dialect = ERRORS_TYPE, Dialect.DOCUMENT
    try:
        request = decode_request(frame, ctx.limits)
        reply_type, dialect = request.type, request.dialect
        answer = await handle(request, ctx, peer.address)
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
    return render(reply_type, dialect, answer, detail, now=ctx.clock(), reply_id=next(_reply_ids))


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


async def _echo(frame: str | bytes, ctx: Context, peer: Peer) -> str | bytes:
    """The reply at ECHO_PATH: the frame itself, text or binary."""
    return frame


async def serve_connection(
    request: WebSocketRequest, ctx: Context, watchdog: Watchdog, *, echo: bool = False
) -> None:
    """Answer every frame on one WebSocket, in order, until the peer goes away.

    With ``echo`` (``--autobahn-echo``), ECHO_PATH is served too, by the same loop.
    """
    path = request.path.split("?", 1)[0]
    if path != WS_PATH and not (echo and path == ECHO_PATH):
        await request.reject(404, body=b"MoreliaTalk is served at /ws\n")
        return
    remote = request.remote
    peer = Peer(remote) if isinstance(remote, str) else Peer(str(remote.address), remote.port)
    refused = ctx.guard.admit(peer.address)
    if refused is not None:
        status, why = refused
        log.info("%s: connection refused (%d): %s", peer, status, why.strip())
        await request.reject(status, body=why.encode())
        return
    try:
        answer_parse_failures(request)
        ws = await request.accept()
        log.info("%s: connection opened", peer)
        ouster = _Ouster()
        ended = OUSTED  # unless _converse ends on its own
        with watchdog.timer() as timer, ctx.guard.watch_for_floods(peer.address, ouster.oust):
            with ouster.scope:
                answer = _echo if path == ECHO_PATH else respond
                ended = await _converse(ws, ctx, peer, timer, ouster, answer)
            if ended == OUSTED:
                await _close(ws, ctx, 1008, "flooding")
        log.info("%s: connection closed: %s", peer, ended)
    finally:
        ctx.guard.release(peer.address)


class _Ouster:
    """Ends a connection once its address has kept flooding (``Guard.watch_for_floods``).

    A wait for the peer is cut short; an answer or a send under way is let finish, the loop
    ending after it, so that no reply is left half-written on the socket.
    """

    __slots__ = ("_ousted", "phase", "scope")

    def __init__(self) -> None:
        self._ousted = False
        self.phase = "reading"  # or answering, sending, pinging
        self.scope = trio.CancelScope()

    def oust(self) -> None:
        """Called by the connection of the address whose frame showed it kept flooding."""
        self._ousted = True
        if self.phase in ("reading", "pinging"):
            self.scope.cancel()

    def ousted(self) -> bool:
        return self._ousted


async def _converse(
    ws: WebSocketConnection,
    ctx: Context,
    peer: Peer,
    timer: PeerTimer,
    ouster: _Ouster,
    answer: Callable[[str | bytes, Context, Peer], Awaitable[str | bytes]] = respond,
) -> str:
    """Read and answer frames until the connection ends; say why it ended.

    Returns OUSTED, or is cancelled by ``ouster.scope``, once its address kept flooding.
    """
    timeouts, guard = ctx.timeouts, ctx.guard
    frames = guard.frame_bucket()
    strikes = 0  # frames refused for flooding since the last one let through
    silent = 0.0  # seconds since the last frame
    caught: str | bytes | None = None  # a frame that came in just as its read timed out
    try:
        while not ouster.ousted():
            # The watchdog cancels this scope once the peer is late; only the peer is timed.
            ouster.phase = "reading"
            with timer.restart() as scope:
                while not ouster.ousted():
                    if caught is None:
                        waited = min(timeouts.ping_interval, timeouts.idle - silent)
                        timer.expire_in(waited)
                        ouster.phase = "reading"
                        frame = await ws.get_message()
                        silent = 0.0
                        if ouster.ousted():  # as the frame came in: not answered
                            break
                        if scope.cancel_called:  # the timer fired as the frame came in
                            caught = frame
                            break
                    else:
                        frame, caught = caught, None
                    # The answer takes what it takes (a login may queue for a hashing
                    # thread): it is not timed.
                    ouster.phase = "answering"
                    timer.stop()
                    if _too_big(frame, ctx.limits.max_frame_bytes):
                        await _close(ws, ctx, 1009, "frame too big")
                        return "frame too big (1009)"
                    if not guard.address_frame(peer.address):
                        if ouster.ousted():
                            break
                        reply: str | bytes = _flood_reply(ctx, ADDRESS_FLOODING)
                    elif frames is None or frames.take(guard.clock()):
                        strikes = 0
                        reply = await answer(frame, ctx, peer)
                    else:
                        strikes += 1
                        if guard.limits is not None and strikes >= guard.limits.flood_strikes:
                            await _close(ws, ctx, 1008, "flooding")
                            return "kept flooding (1008)"
                        reply = _flood_reply(ctx, CONNECTION_FLOODING)
                    ouster.phase = "sending"
                    timer.expire_in(timeouts.send)
                    await ws.send_message(reply)
            if ouster.ousted():
                break
            if caught is not None:
                continue
            if ouster.phase == "sending":
                return f"a reply not taken in {timeouts.send:g} s (slow reader)"
            silent += waited
            if silent >= timeouts.idle:
                await _close(ws, ctx, 1001, "idle")
                return f"idle for {timeouts.idle:g} s"
            ouster.phase = "pinging"
            with trio.move_on_after(timeouts.pong) as pinging:
                await ws.ping()
            if pinging.cancelled_caught:
                await _close(ws, ctx, 1001, "no pong")
                return f"no pong in {timeouts.pong:g} s"
        return OUSTED
    except ConnectionClosed as closed:
        failure = parse_failure(ws)
        if failure is not None:
            return f"by the server: {failure}"
        reason = closed.reason
        return f"by the peer ({reason.code})" if reason is not None else "by the peer"
    except Exception:  # a bug here must not take the whole server down with it
        log.exception("%s: bug in a connection; closing it", peer)
        await _close(ws, ctx, 1011, "internal error")
        return "internal error (1011)"


async def _close(ws: WebSocketConnection, ctx: Context, code: int, reason: str) -> None:
    with trio.move_on_after(ctx.timeouts.close):
        await ws.aclose(code=code, reason=reason)

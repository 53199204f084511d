"""One task per WebSocket: read a frame, answer it, repeat. The boundary no bug crosses."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator

from trio_websocket import ConnectionClosed, WebSocketRequest

from .errors import InternalError, MoreliaError
from .handlers import Context, handle
from .protocol import ERRORS_TYPE, Dialect, FrameError, decode_request
from .replies import Answer, render

log = logging.getLogger(__name__)

SUCCESS_DETAIL = "successfully"
WS_PATH = "/ws"

# errors.id in the document dialect: unique and increasing, across restarts too.
_reply_ids: Iterator[int] = itertools.count(time.time_ns() // 1000)


def _failure(error: MoreliaError) -> Answer:
    return Answer(code=error.code, status=error.status)


async def respond(frame: str | bytes, ctx: Context) -> str:
    """The reply to one frame. Never raises but for cancellation."""
    reply_type, dialect = ERRORS_TYPE, Dialect.DOCUMENT
    try:
        request = decode_request(frame, ctx.limits)
        reply_type, dialect = request.type, request.dialect
        answer = await handle(request, ctx)
        detail = SUCCESS_DETAIL
    except FrameError as exc:
        reply_type, dialect = exc.reply_type, exc.dialect
        answer, detail = _failure(exc.error), exc.error.detail
    except MoreliaError as exc:
        answer, detail = _failure(exc), exc.detail
    except Exception:
        log.exception("Bug while answering a %r request", reply_type)
        error = InternalError("The server failed to answer this request; it has been logged.")
        answer, detail = _failure(error), error.detail
    return render(reply_type, dialect, answer, detail, now=ctx.clock(), reply_id=next(_reply_ids))


def _too_big(frame: str | bytes, limit: int) -> bool:
    """trio-websocket limits a text frame in characters; the contract limits it in bytes."""
    if isinstance(frame, bytes) or len(frame) * 4 <= limit:  # UTF-8: at most 4 bytes a char
        return len(frame) > limit
    return len(frame.encode("utf-8", "surrogatepass")) > limit


async def serve_connection(request: WebSocketRequest, ctx: Context) -> None:
    """Answer every frame on one WebSocket, in order, until the peer goes away."""
    if request.path.split("?", 1)[0] != WS_PATH:
        await request.reject(404, body=b"MoreliaTalk is served at /ws\n")
        return
    ws = await request.accept()
    try:
        while True:
            frame = await ws.get_message()
            if _too_big(frame, ctx.limits.max_frame_bytes):
                await ws.aclose(code=1009, reason="frame too big")
                return
            await ws.send_message(await respond(frame, ctx))
    except ConnectionClosed:
        return
    except Exception:  # a bug here must not take the whole server down with it
        log.exception("Bug in a connection; closing it")
        await ws.aclose(code=1011, reason="internal error")

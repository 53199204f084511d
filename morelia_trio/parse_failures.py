"""Frames wsproto cannot parse are answered with a close frame of their code, by the server.

RFC 6455 asks an endpoint that receives invalid UTF-8 in a text frame to fail the connection
with 1007 (1002 for other malformed frames): send a close frame with that code, then close
the TCP connection. wsproto reports such a frame (its ParseFailed) as a CloseConnection event
while the connection is still OPEN, and trio-websocket takes every CloseConnection for the
peer's: it records the peer as having closed with that code and drops the TCP connection
without a close frame. So the client never hears why, and the log blames the peer.

The adaptation is one proxy at the connection boundary, put in place of the connection's
wsproto object before the handshake is accepted. It uses wsproto's public interface only: it
notes the failure, and reports the state wsproto reports after a close frame from the peer
(REMOTE_CLOSING) until the server has answered it. trio-websocket then does what it does for
a peer's close frame: it sends the same code back, and closes the TCP connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from trio_websocket import WebSocketConnection, WebSocketRequest
from wsproto import WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Event

INVALID_UTF8 = 1007


class _AnsweringParseFailures:
    """A wsproto WSConnection that reports a parse failure as a close the server must answer."""

    def __init__(self, inner: WSConnection) -> None:
        self._inner = inner
        self.failure: CloseConnection | None = None
        # What every frame calls, bound here: a lookup through __getattr__ costs a call each.
        self.send = inner.send
        self.receive_data = inner.receive_data

    @property
    def state(self) -> ConnectionState:
        state = self._inner.state
        if self.failure is not None and state is ConnectionState.OPEN:
            return ConnectionState.REMOTE_CLOSING  # until the close frame is sent
        return state

    def events(self) -> Iterator[Event]:
        for event in self._inner.events():
            # A close frame from the peer moves wsproto out of OPEN before it is reported.
            if isinstance(event, CloseConnection) and self._inner.state is ConnectionState.OPEN:
                self.failure = event
            yield event

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def answer_parse_failures(request: WebSocketRequest) -> None:
    """Adapt the connection of ``request``; call it before accepting the request."""
    ws = request._connection  # the one way in: see the module's docstring
    ws._wsproto = cast(WSConnection, _AnsweringParseFailures(ws._wsproto))


def parse_failure(ws: WebSocketConnection) -> str | None:
    """Why the server failed ``ws`` for a frame it could not parse; None if it did not.

    Worded here, not taken from wsproto's reason, which may quote the client's bytes.
    """
    proxy: object = ws._wsproto
    failure = proxy.failure if isinstance(proxy, _AnsweringParseFailures) else None
    if failure is None:
        return None
    if failure.code == INVALID_UTF8:
        return f"invalid UTF-8 ({INVALID_UTF8})"
    return f"a malformed frame ({failure.code})"

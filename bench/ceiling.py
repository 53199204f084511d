"""The ceiling: the least a trio-websocket + msgspec server can do per frame.

    .venv/bin/python -m bench.ceiling [--host 127.0.0.1] [--port 0] [--server-gc] [--broadcast]

One task per connection decodes each text frame with msgspec and sends it back: no state, no
auth, no journal, no logging. Whatever the real server does beyond this costs it throughput, so
the suite prints every chat figure as a ratio to this server measured in the same run.

With ``--server-gc`` it tunes CPython's cycle collector as ``morelia-trio serve`` does
(``cli.settle_gc``): the suite measures that variant too, so that the server's gain from the
setting is not mistaken for a gain over the stack.

With ``--broadcast`` it is the fan-out's ceiling: each text frame a connection sends is
decoded, echoed to it (the sender's reply), then sent to every other open connection, one
task per connection sending what was queued for it, as a trio-websocket server that
fans out does at best: the suite sends the same frames to it as to the real server's group.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from functools import partial

import msgspec
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

_decode = msgspec.json.decode


async def echo(request: WebSocketRequest) -> None:
    ws = await request.accept()
    try:
        while True:
            frame = await ws.get_message()
            _decode(frame)
            await ws.send_message(frame)
    except ConnectionClosed:
        pass


class Broadcast:
    """Every open connection's queue of frames to send; a full queue drops (never blocks)."""

    QUEUE = 256  # frames, as the real server's backlog per subscriber

    def __init__(self) -> None:
        self.queues: dict[WebSocketConnection, trio.MemorySendChannel[str | bytes]] = {}

    async def serve(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        send, receive = trio.open_memory_channel[str | bytes](self.QUEUE)
        self.queues[ws] = send
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send_queued, ws, receive)
                await self._read(ws)
                nursery.cancel_scope.cancel()
        finally:
            del self.queues[ws]

    async def _read(self, ws: WebSocketConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = await ws.get_message()
                _decode(frame)
                await ws.send_message(frame)
                for other, queue in self.queues.items():
                    if other is not ws:
                        with contextlib.suppress(trio.WouldBlock):
                            queue.send_nowait(frame)

    @staticmethod
    async def _send_queued(
        ws: WebSocketConnection, receive: trio.MemoryReceiveChannel[str | bytes]
    ) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in receive:
                await ws.send_message(frame)


async def main(host: str, port: int, broadcast: bool) -> None:
    handler = Broadcast().serve if broadcast else echo
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(serve_websocket, handler, host, port, None, max_message_size=1024 * 1024)
        )
        print(f"Serving ceiling on ws://{host}:{server.port}/ws", file=sys.stderr, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--server-gc", action="store_true", help="the server's gc setting")
    parser.add_argument("--broadcast", action="store_true", help="the fan-out's ceiling")
    args = parser.parse_args()
    if args.server_gc:
        from morelia_trio.cli import settle_gc

        settle_gc()
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main, args.host, args.port, args.broadcast)

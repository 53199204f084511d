"""The ceiling: the least a trio-websocket + msgspec server can do per frame.

    .venv/bin/python -m bench.ceiling [--host 127.0.0.1] [--port 0] [--server-gc]

One task per connection decodes each text frame with msgspec and sends it back: no state, no
auth, no journal, no logging. Whatever the real server does beyond this costs it throughput, so
the suite prints every chat figure as a ratio to this server measured in the same run.

With ``--server-gc`` it tunes CPython's cycle collector as ``morelia-trio serve`` does
(``cli.settle_gc``): the suite measures that variant too, so that the server's gain from the
setting is not mistaken for a gain over the stack.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from functools import partial

import msgspec
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

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


async def main(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(serve_websocket, echo, host, port, None, max_message_size=1024 * 1024)
        )
        print(f"Serving ceiling on ws://{host}:{server.port}/ws", file=sys.stderr, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--server-gc", action="store_true", help="the server's gc setting")
    args = parser.parse_args()
    if args.server_gc:
        from morelia_trio.cli import settle_gc

        settle_gc()
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main, args.host, args.port)

"""A flood from many connections of one address: is every one closed, at what CPU cost, and
does a well-behaved client on another address notice?

    .venv/bin/python -m bench.flood [--connections 19] [--seconds 15] [--rounds 3] [--rev REV]

The real server runs with its default limits, on the server's core. A probe connects from
127.0.0.2, registers and sends a ping_pong with its token 20 times a second, for
``--seconds`` alone, then as long again while ``--connections`` connections from 127.0.0.1
(another process, on the generator's core) send ping_pong frames as fast as the server takes
them, each reading its replies, until the server closes it or ``--seconds`` pass; ``--rounds``
times on one server. Printed per round: how many flooders were closed, with what codes, the
last when; the frames they sent and the replies they got; the server's CPU seconds during
the flood. Then the probe's round trips alone and during the floods, all rounds together.
With ``--rev``, REV's server is measured first, the same way (from a temporary worktree).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from bench.wire import open_client

from . import suite
from .procstat import cpu_seconds

PING = '{"type": "ping_pong"}'
PROBE_ADDRESS = "127.0.0.2"
PROBE_RATE = 20.0  # round trips a second
FLOODER = [suite.PYTHON, "-m", "bench.flood", "--flooder"]


class Flooder(msgspec.Struct):
    """One flooding connection, as the flooder process saw it."""

    closed_after: float | None = None  # seconds from the flood's start; None: never
    code: int | None = None
    sent: int = 0
    too_many: int = 0  # 429 replies
    other: int = 0  # any other reply


# --- the flooder process ------------------------------------------------------------------------


async def flood(url: str, connections: int, seconds: float) -> list[Flooder]:
    flooders = [Flooder() for _ in range(connections)]
    started = trio.current_time()

    async def one(flooder: Flooder) -> None:
        async with open_websocket_url(url) as ws, trio.open_nursery() as nursery:

            async def send() -> None:
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        await ws.send_message(PING)
                        flooder.sent += 1

            nursery.start_soon(send)
            try:
                while True:
                    reply = await ws.get_message()
                    if '"code":429' in str(reply):
                        flooder.too_many += 1
                    else:
                        flooder.other += 1
            except ConnectionClosed as closed:
                flooder.closed_after = trio.current_time() - started
                flooder.code = closed.reason.code if closed.reason else None
            nursery.cancel_scope.cancel()

    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for flooder in flooders:
                nursery.start_soon(one, flooder)
    return flooders


def flooder_main(url: str, connections: int, seconds: float) -> None:
    # Started (interpreter, imports) before the flood's clock and the probe's start.
    print("ready", flush=True)
    sys.stdin.readline()
    flooders = trio.run(flood, url, connections, seconds)
    sys.stdout.buffer.write(msgspec.json.encode(flooders))


# --- the probe -----------------------------------------------------------------------------------


async def probe(url: str, seconds: float, first: bool) -> list[float]:
    """Round trips (ms) of a well-behaved client on PROBE_ADDRESS, PROBE_RATE a second."""
    async with open_client(url, local_address=PROBE_ADDRESS) as client:
        if first:
            await client.register("probe", "a well-behaved password")
        else:
            await client.login("probe", "a well-behaved password")
        frame = msgspec.json.encode(
            {
                "type": "ping_pong",
                "data": {"user": [{"uuid": client.user_id, "auth_id": client.token}]},
            }
        ).decode()
        times: list[float] = []
        start = trio.current_time()
        for n in range(int(seconds * PROBE_RATE)):
            await trio.sleep_until(start + n / PROBE_RATE)
            sent = time.perf_counter()
            reply = await client.request(frame)
            times.append((time.perf_counter() - sent) * 1000)
            assert reply["errors"]["code"] == 200, reply
        return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def summary(times: list[float]) -> str:
    return (
        f"{len(times)} round trips: p50 {statistics.median(times):.2f} ms, "
        f"p99 {percentile(times, 0.99):.2f} ms, max {max(times):.2f} ms"
    )


# --- one measurement -----------------------------------------------------------------------------


@contextlib.contextmanager
def limited_server(tree: Path) -> Iterator[suite.Server]:
    """The real server with its default limits (suite.running_server switches them off)."""
    with tempfile.TemporaryDirectory(prefix="morelia-flood-") as data_dir:
        argv = [suite.PYTHON, "-m", "morelia_trio", "serve", "--port", "0"]
        argv += ["--data-dir", data_dir, "--snapshot-interval", "inf", "--log-level", "INFO"]
        server = suite.Server("server", argv, tree)
        try:
            yield server
        finally:
            server.stop()


def measure(name: str, tree: Path, connections: int, seconds: float, rounds: int) -> None:
    """``rounds`` times: the probe alone, then the probe in a flood."""
    print(f"== {name}")
    alone: list[float] = []
    flooded: list[float] = []
    with limited_server(tree) as server:
        for round_ in range(rounds):
            alone += trio.run(probe, server.url, seconds, round_ == 0)
            process = subprocess.Popen(
                [*FLOODER, server.url, str(connections), str(seconds)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=suite.REPO,
            )
            assert process.stdin is not None and process.stdout is not None
            if suite.GENERATOR_CORES is not None:
                os.sched_setaffinity(process.pid, suite.GENERATOR_CORES)
            assert process.stdout.readline() == b"ready\n"
            cpu_before = cpu_seconds(server.process.pid)
            process.stdin.write(b"go\n")
            process.stdin.flush()
            flooded += trio.run(probe, server.url, seconds, False)
            cpu = cpu_seconds(server.process.pid) - cpu_before
            out, _ = process.communicate(timeout=seconds + 60)
            report(msgspec.json.decode(out, type=list[Flooder]), cpu, seconds)
    print(f"probe alone:        {summary(alone)}")
    print(f"probe in the flood: {summary(flooded)}")


def report(flooders: list[Flooder], cpu: float, seconds: float) -> None:
    closes = sorted(f.closed_after for f in flooders if f.closed_after is not None)
    codes = sorted({f.code for f in flooders}, key=str)
    sent = sum(f.sent for f in flooders)
    too_many, other = sum(f.too_many for f in flooders), sum(f.other for f in flooders)
    last = f", the last after {closes[-1]:.2f} s" if closes else ""
    print(
        f"closed {len(closes)} of {len(flooders)} (codes {codes}){last}; "
        f"{sent} frames sent, {too_many} 429s and {other} other replies; "
        f"server CPU in the {seconds:g} s: {cpu:.2f} s"
    )


def main() -> None:
    if sys.argv[1:2] == ["--flooder"]:
        url, connections, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        return flooder_main(url, connections, seconds)
    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__)
    parser.add_argument("--connections", type=int, default=19)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rev", help="also measure this revision, first")
    args = parser.parse_args()
    if args.rev:
        from .experiments import worktree

        with worktree(args.rev) as other:
            measure(args.rev, other, args.connections, args.seconds, args.rounds)
    measure("working tree", suite.REPO, args.connections, args.seconds, args.rounds)


if __name__ == "__main__":
    main()

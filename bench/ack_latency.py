"""Acknowledgement latency: 16 writers, each sending a message and waiting for its reply.

    .venv/bin/python -m bench.ack_latency [--writers 16] [--seconds 5] [--fsync always batch off]

Starts the real server as a separate process (data dir on the same disk as the repo) for each
fsync mode and reports messages/s and reply latency percentiles.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import trio

from bench.wire import open_client

from .suite import running_server


async def drive(url: str, writers: int, seconds: float) -> list[float]:
    latencies: list[float] = []

    async def writer(n: int) -> None:
        async with open_client(url) as client:
            await client.register(f"writer{n}-{time.time_ns()}", "pw")
            general = (await client.flows())[0]["uuid"]
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await client.send(general, f"message from writer {n}")
                latencies.append(time.perf_counter() - started)

    async with trio.open_nursery() as nursery:
        for n in range(writers):
            nursery.start_soon(writer, n)
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--fsync", nargs="+", default=["always", "batch", "off"])
    args = parser.parse_args()
    print(f"{args.writers} writers, {args.seconds:g} s per mode; data dir under {Path.cwd()}")
    print(f"{'fsync':8} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for mode in args.fsync:
        data_dir = Path(tempfile.mkdtemp(prefix="ack-latency-", dir=Path.cwd()))
        try:
            with running_server(data_dir, mode) as server:
                latencies = trio.run(drive, server.url, args.writers, args.seconds)
        finally:
            shutil.rmtree(data_dir)
        rate = len(latencies) / args.seconds
        print(
            f"{mode:8} {rate:8.0f} {statistics.median(latencies) * 1000:8.2f} "
            f"{percentile(latencies, 0.99) * 1000:8.2f} {max(latencies) * 1000:8.2f}"
        )


if __name__ == "__main__":
    main()

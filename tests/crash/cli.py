"""The crash test's command line: one server (harness.py) or servers sharing a stream (nodes.py).

    .venv/bin/python -m tests.crash --kills 60 [--power-loss [--torn-tails]] [--seed N]
    .venv/bin/python -m tests.crash --nodes 3 --kills 60 [--seed N]

Prints a line per round (one kill, or ``--kills-per-check`` kills across nodes) and the
counts of the whole run; exits 1 if anything acknowledged was lost, anything else showed
up, nodes disagreed, or the run could not go on.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import trio

from tests.nats import NatsServerFailed

from .harness import CheckFailed, Harness, Options
from .nodes import NodesHarness
from .process import ServerFailed


def parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m tests.crash",
        description="Kill the real server at random moments and check that every acknowledged "
        "change survives and nothing unacknowledged shows up.",
    )
    parser.add_argument("--kills", type=int, default=60, help="rounds, one SIGKILL each (60)")
    parser.add_argument(
        "--power-loss",
        action="store_true",
        help="after each kill, cut every journal file to what its last fsync covered",
    )
    parser.add_argument(
        "--torn-tails",
        action="store_true",
        help="with --power-loss: a random part of each unsynced tail survives (torn records)",
    )
    parser.add_argument(
        "--broken-fsync",
        action="store_true",
        help="run a deliberately broken server whose fsync does nothing "
        "(with --power-loss the test must fail)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--writers", type=int, default=16, help="concurrent writers (16)")
    parser.add_argument("--min-delay-ms", type=float, default=20.0, help="(20)")
    parser.add_argument("--max-delay-ms", type=float, default=400.0, help="(400)")
    parser.add_argument(
        "--cheap-argon2", action="store_true", help="argon2's cheapest cost in the server"
    )
    parser.add_argument(
        "--snapshot-interval",
        type=float,
        default=1.0,
        help="the server's --snapshot-interval in seconds (1); below the ~0.5-1 s a server "
        "lives between kills, kills also land during snapshots",
    )
    nodes = parser.add_argument_group(
        "across nodes", "servers sharing one stream of a nats-server (see nodes.py)"
    )
    nodes.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="servers sharing one stream, killed in turn (1: the single server, no stream)",
    )
    nodes.add_argument(
        "--kills-per-check",
        type=int,
        default=5,
        help="kills between two checks of every node (5)",
    )
    nodes.add_argument(
        "--wipe-chance",
        type=float,
        default=0.25,
        help="the chance a killed node restarts from an empty data directory (0.25)",
    )
    nodes.add_argument(
        "--event-log-keep",
        type=int,
        default=3000,
        help="the nodes' --event-log-keep: records past the stream's snapshot before the "
        "next one and a purge (3000)",
    )
    nodes.add_argument(
        "--nats-server",
        default=None,
        help="the nats-server binary (default: the one beside this Python, else PATH's)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where data and logs go (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the workdir even on success")
    parser.add_argument("--json", type=Path, default=None, help="also write the counts here")
    parser.add_argument("--quiet", action="store_true", help="only the summary")
    args = parser.parse_args(argv)
    if args.kills < 1 or args.writers < 1 or not 0 <= args.min_delay_ms <= args.max_delay_ms:
        parser.error("need --kills >= 1, --writers >= 1 and 0 <= --min-delay-ms <= --max-delay-ms")
    if not args.snapshot_interval > 0:
        parser.error("--snapshot-interval must be positive")
    if args.torn_tails and not args.power_loss:
        parser.error("--torn-tails needs --power-loss")
    if args.nodes < 1 or args.kills_per_check < 1 or args.event_log_keep < 1:
        parser.error("need --nodes, --kills-per-check and --event-log-keep >= 1")
    if not 0 <= args.wipe_chance <= 1:
        parser.error("--wipe-chance is a chance: from 0 to 1")
    if args.nodes == 2 or (args.nodes > 2 and (args.power_loss or args.broken_fsync)):
        parser.error(
            "--nodes: 1, or 3 or more (one is killed while two serve); "
            "--power-loss and --broken-fsync are the single server's"
        )
    return Options(
        kills=args.kills,
        power_loss=args.power_loss,
        torn_tails=args.torn_tails,
        broken_fsync=args.broken_fsync,
        seed=secrets.randbits(32) if args.seed is None else args.seed,
        writers=args.writers,
        min_delay_ms=args.min_delay_ms,
        max_delay_ms=args.max_delay_ms,
        cheap_argon2=args.cheap_argon2,
        snapshot_interval=args.snapshot_interval,
        nodes=args.nodes,
        kills_per_check=args.kills_per_check,
        wipe_chance=args.wipe_chance,
        event_log_keep=args.event_log_keep,
        nats_server=args.nats_server,
        workdir=args.workdir,
        keep=args.keep,
        json_path=args.json,
        quiet=args.quiet,
    )


def command_line(options: Options) -> str:
    parts = [f"--kills {options.kills}", f"--seed {options.seed}"]
    if options.nodes > 1:
        parts[:0] = [f"--nodes {options.nodes}"]
        parts.append(f"--kills-per-check {options.kills_per_check}")
        parts.append(f"--wipe-chance {options.wipe_chance:g}")
        parts.append(f"--event-log-keep {options.event_log_keep}")
    parts += [
        f"--{name}"
        for name in ("power-loss", "torn-tails", "broken-fsync", "cheap-argon2")
        if getattr(options, name.replace("-", "_"))
    ]
    if options.writers != 16:
        parts.append(f"--writers {options.writers}")
    if options.snapshot_interval != 1.0:
        parts.append(f"--snapshot-interval {options.snapshot_interval:g}")
    return "python -m tests.crash " + " ".join(parts)


def leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions themselves, out of the nurseries' groups they came up through."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


def kinds(counts: Counter[str]) -> str:
    return f" ({', '.join(f'{n} {kind}' for kind, n in counts.most_common())})" if counts else ""


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="morelia-crash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    harness: Harness | NodesHarness
    try:
        harness = NodesHarness(options, workdir) if options.nodes > 1 else Harness(options, workdir)
    except CheckFailed as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 2
    tally = harness.run.tally
    harness.say(f"{command_line(options)}\nworkdir {workdir}")
    started = time.perf_counter()
    aborted: str | None = None
    try:
        trio.run(harness.main)
    except* (ServerFailed, CheckFailed, NatsServerFailed) as group:
        aborted = "; ".join(str(exc) for exc in leaves(group))
    except* trio.TooSlowError as group:
        aborted = f"a wait timed out: {leaves(group)[0]!r}"
    finally:
        harness.kill_now()
    elapsed = time.perf_counter() - started
    failed = bool(tally.lost or tally.phantom or tally.unexpected or tally.diverged or aborted)
    summary = {
        **{k: v for k, v in asdict(tally).items() if isinstance(v, int)},
        "lost": len(tally.lost),
        "phantom": len(tally.phantom),
        "unexpected": len(tally.unexpected),
        "diverged": len(tally.diverged),
        "aborted": aborted,
        "seconds": round(elapsed, 2),
        "seed": options.seed,
        "passed": not failed,
        "lost_kinds": dict(tally.lost_kinds),
        "phantom_kinds": dict(tally.phantom_kinds),
        "lost_details": tally.lost,
        "phantom_details": tally.phantom,
        "unexpected_details": tally.unexpected,
        "diverged_details": tally.diverged,
    }
    print(
        f"\n{command_line(options)}\n"
        f"kills:           {tally.kills}\n"
        f"acked changes:   {tally.acked}, checked after a restart: {tally.acked_checked}\n"
        f"item checks:     {tally.checked} acknowledged items judged over all restarts\n"
        f"in flight:       {tally.in_flight} at the kills "
        f"(then found: {tally.applied} wholly applied, {tally.not_applied} wholly absent)\n"
        f"lost:            {len(tally.lost)}{kinds(tally.lost_kinds)}\n"
        f"phantom:         {len(tally.phantom)}{kinds(tally.phantom_kinds)}\n"
        f"unexpected:      {len(tally.unexpected)}\n"
        + (
            f"diverged:        {len(tally.diverged)} differences between nodes\n"
            f"restarts:        {tally.wiped} from an empty data directory, "
            f"{tally.from_local} from their own snapshot; "
            f"{tally.from_stream} starts from the stream's snapshot\n"
            if options.nodes > 1
            else f"torn tails cut:  {tally.torn_tails}\n"
        )
        + (
            f"power loss:      {tally.bytes_dropped} journal bytes dropped\n"
            if options.power_loss
            else ""
        )
        + f"time:            {elapsed:.1f} s",
        flush=True,
    )
    for title, items in (
        ("LOST", tally.lost),
        ("PHANTOM", tally.phantom),
        ("UNEXPECTED", tally.unexpected),
        ("DIVERGED", tally.diverged),
    ):
        for item in items[:20]:
            print(f"{title}: {item}")
        if len(items) > 20:
            print(f"{title}: ... and {len(items) - 20} more")
    if aborted:
        print(f"ABORTED: {aborted}")
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    if failed or options.keep or options.workdir is not None:
        print(f"{'FAIL' if failed else 'PASS'} (data and server logs kept in {workdir})")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        print("PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

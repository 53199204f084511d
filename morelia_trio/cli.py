"""The command line: ``morelia-trio serve``, ``morelia-trio data info DIR`` and
``morelia-trio chat URL``."""

from __future__ import annotations

import argparse
import datetime
import gc
import logging
import math
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import msgspec
import msgspec.inspect
import trio

from . import __version__, chat
from .config import AbuseLimits, Config, Limits, Rate, Timeouts
from .journal import DataDamaged, StorageFailed
from .lock import DirectoryInUse
from .recovery import recover
from .server import serve

S = TypeVar("S", bound=msgspec.Struct)

# Young objects that CPython's cycle collector lets pile up before it looks at them.
GC_YOUNG_LIMIT = 50_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="morelia-trio", description="A MoreliaTalk server.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    defaults = Config()
    run = commands.add_parser("serve", help="serve MoreliaTalk over WebSocket at /ws")
    run.add_argument("--host", default=defaults.host, help="address to listen on (%(default)s)")
    run.add_argument(
        "--port",
        type=int,
        default=defaults.port,
        help="port to listen on; 0 picks a free one (%(default)s)",
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=defaults.data_dir,
        help="where snapshots and the journal live (%(default)s)",
    )
    run.add_argument(
        "--snapshot-interval",
        type=float,
        default=defaults.snapshot_interval,
        help="seconds between snapshots; 'inf' for only on shutdown (%(default)s)",
    )
    run.add_argument(
        "--fsync",
        choices=["always", "batch", "off"],
        default=defaults.fsync,
        help="journal durability: always = on disk before the reply (default); "
        "batch = synced every --fsync-batch-ms; off = tests only",
    )
    run.add_argument(
        "--fsync-batch-ms",
        type=float,
        default=defaults.fsync_batch_ms,
        help="with --fsync batch: the most a power loss can lose (%(default)s)",
    )
    run.add_argument(
        "--no-limits",
        action="store_true",
        help="switch every abuse limit off (benchmarks and tests only; sizes and timeouts hold)",
    )
    run.add_argument(
        "--autobahn-echo",
        action="store_true",
        help="also serve /echo, which sends every frame back over the same WebSocket stack, "
        "limits and timeouts as /ws (for WebSocket conformance tests: make autobahn)",
    )
    _add_struct_options(run, "sizes", defaults.limits)
    _add_struct_options(run, "abuse limits", AbuseLimits())
    _add_struct_options(run, "timeouts (seconds)", defaults.timeouts, prefix="timeout-")
    run.add_argument(
        "--log-level",
        default=defaults.log_level,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="(%(default)s)",
    )

    data = commands.add_parser("data", help="inspect a data directory")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    info = data_commands.add_parser("info", help="what a data directory holds, and any damage")
    info.add_argument("directory", type=Path)

    chat = commands.add_parser("chat", help="a terminal chat with a MoreliaTalk server")
    chat.add_argument("url", help="such as ws://127.0.0.1:8000/ws")
    chat.add_argument(
        "--poll", type=float, default=1.0, help="seconds between asking for news (%(default)s)"
    )
    return parser


def _add_struct_options(
    parser: argparse.ArgumentParser, title: str, defaults: msgspec.Struct, prefix: str = ""
) -> None:
    """One option per field of a config struct, with the help its field carries."""
    group = parser.add_argument_group(title)
    for field in msgspec.inspect.type_info(type(defaults)).fields:  # type: ignore[attr-defined]
        value = getattr(defaults, field.name)
        described = field.type.extra_json_schema or {}
        option = "--" + prefix + field.name.replace("_", "-")
        group.add_argument(
            option,
            dest=f"{prefix}{field.name}".replace("-", "_"),
            type=Rate.parse if isinstance(value, Rate) else type(value),
            default=value,
            metavar="BURST/PER_MINUTE" if isinstance(value, Rate) else None,
            help=f"{described.get('description', '')} ({value})",
        )


def _struct_from(args: argparse.Namespace, defaults: S, prefix: str = "") -> S:
    changes = {
        name: getattr(args, f"{prefix}{name}".replace("-", "_"))
        for name in defaults.__struct_fields__
    }
    return msgspec.structs.replace(defaults, **changes)


def config_from(args: argparse.Namespace) -> Config:
    """The Config that ``serve``'s parsed options describe."""
    return Config(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        snapshot_interval=args.snapshot_interval,
        fsync=args.fsync,
        fsync_batch_ms=args.fsync_batch_ms,
        limits=_struct_from(args, Limits()),
        abuse=None if args.no_limits else _struct_from(args, AbuseLimits()),
        timeouts=_struct_from(args, Timeouts(), prefix="timeout-"),
        log_level=args.log_level,
        autobahn_echo=args.autobahn_echo,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "data":
        return data_info(args.directory)
    if args.command == "chat":
        return chat.main(args.url, args.poll)
    if args.snapshot_interval <= 0 or math.isnan(args.snapshot_interval):
        print("morelia-trio: --snapshot-interval must be positive", file=sys.stderr)
        return 2
    config = config_from(args)
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        trio.run(serve_until_signalled, config)
    except BaseException as exc:
        failure = describe_failure(exc)
        if failure is None:
            raise  # a bug: its traceback is the most useful thing to print
        print(f"morelia-trio: {failure}", file=sys.stderr)
        return 1
    return 0


def describe_failure(exc: BaseException) -> str | None:
    """One line saying why the server could not start or had to stop; None for a bug.

    Trio reports failures as (nested) exception groups, and one cause often brings others
    with it (a journal that cannot be written also fails the request that waited for it):
    the operator hears the cause alone, without a group's summary or a traceback.
    """
    leaves = list(_leaves(exc))
    for kind, prefix in _CAUSES:
        for leaf in leaves:
            if isinstance(leaf, kind):
                return f"{prefix}{_said(leaf)}"
    return None


_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (DirectoryInUse, "cannot start: "),
    (DataDamaged, "cannot start: "),
    (StorageFailed, "stopped: "),
    (OSError, "cannot serve: "),  # e.g. the port is taken, or the data directory unusable
    (KeyboardInterrupt, "interrupted"),  # a second Ctrl-C during shutdown
)


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _said(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return ""
    if isinstance(exc, OSError) and exc.strerror:  # not "[Errno 13] Permission denied: '…'"
        return exc.strerror if exc.filename is None else f"{exc.filename}: {exc.strerror}"
    return str(exc)


async def serve_until_signalled(config: Config) -> None:
    """Serve until SIGTERM or Ctrl-C, then stop cleanly (serve writes a final snapshot)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve, config)
            settle_gc()
            async for signum in signals:
                logging.getLogger(__name__).info("%s: stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def settle_gc() -> None:
    """Keep the cycle collector from rescanning what lives for the whole process.

    A running server frees nearly all its garbage by reference counting. What set CPython's
    collector off was the 700-object default: the few objects each request in flight holds
    (some ten per connection) crossed it every few dozen messages, so they were collected
    while alive, promoted, and rescanned with all of the imported code in full collections:
    8 us of every message's 90 at 100 connections, and more at 1,000. With a higher limit the
    requests in flight never reach it, and freezing what exists once the state is loaded
    (code, and the state's own lists) keeps that out of the collections that do happen.
    """
    gc.set_threshold(GC_YOUNG_LIMIT)
    gc.freeze()


def data_info(directory: Path) -> int:
    if not directory.is_dir():
        print(f"{directory}: not a directory", file=sys.stderr)
        return 1
    try:
        state, report = recover(directory, repair=False)
    except DataDamaged as exc:
        print(f"damage: {exc}")
        return 1
    print(f"directory:        {directory}")
    if report.snapshot_seq is None or report.snapshot_time is None:
        print("snapshot:         none")
    else:
        taken = datetime.datetime.fromtimestamp(report.snapshot_time, datetime.UTC)
        print(
            f"snapshot:         record {report.snapshot_seq}, taken {taken:%Y-%m-%d %H:%M:%S} UTC"
        )
    print(f"journal files:    {', '.join(report.journal_files) or 'none'}")
    print(f"journal records:  {report.journal_records} ({report.replayed} after the snapshot)")
    print(f"last record:      {state.seq}")
    print(f"users:            {len(state.users)}")
    print(f"sessions:         {len(state.sessions)}")
    print(f"flows:            {len(state.flows)}")
    print(f"messages:         {len(state.messages)}")
    for torn in report.torn:
        print(f"torn tail:        {torn} (cut off on the next start)")
    print(f"damage:           {'none' if not report.torn else 'a torn tail only'}")
    return 0

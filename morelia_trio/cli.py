"""The command line: ``morelia-trio serve``, ``morelia-trio data info DIR``,
``morelia-trio chat URL`` and ``morelia-trio admin ...`` (``admin_cli.py``)."""

from __future__ import annotations

import argparse
import datetime
import gc
import logging
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import msgspec
import msgspec.inspect
import trio

from . import __version__, admin_cli, chat, logs
from .cluster.address import EventLogMismatch
from .config import AbuseLimits, Config, Rate
from .core.journal_format import DataDamaged
from .persistence.lock import DirectoryInUse
from .persistence.port import StorageFailed
from .persistence.recovery import recover
from .server import Running, serve
from .settings import (
    CONFIG_ENV,
    SettingError,
    from_args,
    from_environ,
    from_file,
    resolve,
    to_toml,
)
from .tls import CertificateError

# Young objects that CPython's cycle collector lets pile up before it looks at them.
GC_YOUNG_LIMIT = 50_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="morelia-trio", description="A MoreliaTalk server.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    defaults = Config()
    # No option has a default of its own: absent ones are absent from the parsed arguments,
    # so that a file or a MORELIA_* variable may set them (see settings.py).
    run = commands.add_parser(
        "serve",
        help="serve MoreliaTalk over WebSocket at /ws",
        argument_default=argparse.SUPPRESS,
        epilog="Every option can also be set in the --config file or by a variable: "
        "MORELIA_ and the option's name in capitals with - as _ (MORELIA_TIMEOUT_IDLE=30). "
        "Options beat variables, which beat the file.",
    )
    run.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"a TOML file of settings (also {CONFIG_ENV})",
    )
    run.add_argument(
        "--print-config",
        action="store_true",
        default=False,
        help="print the settings in force, as a file --config reads, and exit",
    )
    run.add_argument("--host", help=f"address to listen on ({defaults.host})")
    run.add_argument(
        "--port", type=int, help=f"port to listen on; 0 picks a free one ({defaults.port})"
    )
    run.add_argument(
        "--reuse-port",
        action="store_true",
        help="share the port with other morelia-trio serve processes started with "
        "--reuse-port, each with its own --data-dir: the kernel spreads the connections "
        "among them (SO_REUSEPORT)",
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        help=f"where snapshots and the journal live ({defaults.data_dir})",
    )
    run.add_argument(
        "--snapshot-interval",
        type=float,
        help="seconds between snapshots; 'inf' for only on shutdown "
        f"({defaults.snapshot_interval})",
    )
    run.add_argument(
        "--fsync",
        choices=["always", "batch", "off"],
        help="journal durability: always = on disk before the reply (default); "
        "batch = synced every --fsync-batch-ms; off = tests only",
    )
    run.add_argument(
        "--fsync-batch-ms",
        type=float,
        help=f"with --fsync batch: the most a power loss can lose ({defaults.fsync_batch_ms})",
    )
    run.add_argument(
        "--certfile",
        type=Path,
        metavar="PATH",
        help="serve wss:// and https:// with this PEM certificate chain (SIGHUP reloads it)",
    )
    run.add_argument(
        "--keyfile",
        type=Path,
        metavar="PATH",
        help="the certificate's private key, PEM (default: in the --certfile)",
    )
    run.add_argument(
        "--event-log",
        metavar="URL",
        help="share one state with other servers through NATS JetStream: "
        "nats://HOST:PORT[,HOST:PORT...]/STREAM, or tls://... (none: the local journal)",
    )
    run.add_argument(
        "--event-log-replicas",
        type=int,
        metavar="N",
        help=f"replicas of the stream when this server creates it ({defaults.event_log_replicas})",
    )
    run.add_argument(
        "--event-log-credentials",
        type=Path,
        metavar="PATH",
        help="a NATS credentials file (.creds) to connect with",
    )
    run.add_argument(
        "--event-log-ca",
        type=Path,
        metavar="PATH",
        help="the CA certificate (PEM) of the NATS servers, for TLS",
    )
    run.add_argument(
        "--event-log-timeout",
        type=float,
        metavar="SECONDS",
        help="how long a change may wait for the event log (while it elects a new leader), "
        f"then 503 ({defaults.event_log_timeout})",
    )
    run.add_argument(
        "--event-log-keep",
        type=int,
        metavar="RECORDS",
        help="records the stream holds past its newest snapshot before one is stored there "
        f"and they are purged ({defaults.event_log_keep})",
    )
    run.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="ADDRESS",
        help="an address or network (10.0.0.0/8) of a reverse proxy whose X-Forwarded-For "
        "names the client; repeatable (none)",
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
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help=f"({defaults.log_level})",
    )
    run.add_argument(
        "--log-format",
        choices=["text", "json"],
        help=f"json: one JSON object a line, for log collectors ({defaults.log_format})",
    )
    run.add_argument(
        "--metrics-host",
        help="with --metrics-port: the address to serve /metrics on (default: --host)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics on this port alone, not on the WebSocket's "
        "(default: the WebSocket's port; 0 picks a free one)",
    )

    data = commands.add_parser("data", help="inspect a data directory")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    info = data_commands.add_parser("info", help="what a data directory holds, and any damage")
    info.add_argument("directory", type=Path)

    chatting = commands.add_parser("chat", help="a terminal chat with a MoreliaTalk server")
    chatting.add_argument("url", help="such as ws://127.0.0.1:8000/ws")
    chatting.add_argument(
        "--poll",
        type=float,
        default=1.0,
        help="seconds between polls, if the server has no live updates (%(default)s)",
    )
    admin_cli.add_parser(commands)
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
            metavar="BURST/PER_MINUTE" if isinstance(value, Rate) else None,
            help=f"{described.get('description', '')} ({value})",
        )


def config_from(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
    """The Config that ``serve``'s options, the environment and the --config file describe.

    Raises SettingError, naming the key, variable or option, if one of them is wrong.
    """
    environ = {} if environ is None else environ
    layers = []
    config_file = args.config if args.config is not None else environ.get(CONFIG_ENV)
    if config_file is not None:
        layers.append(from_file(Path(config_file), Config))
    layers.append(from_environ(environ, Config))
    layers.append(from_args(args, Config))
    return resolve(Config, *layers)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "data":
        return data_info(args.directory)
    if args.command == "chat":
        return chat.main(args.url, args.poll)
    if args.command == "admin":
        return admin_cli.main(args)
    try:
        config = config_from(args, os.environ)
    except SettingError as exc:
        print(f"morelia-trio: {exc}", file=sys.stderr)
        return 2  # as argparse's own errors
    if args.print_config:
        print(to_toml(config), end="")
        return 0
    logs.configure(config.log_level, config.log_format)
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
    (CertificateError, "cannot start: "),
    (DirectoryInUse, "cannot start: "),
    (DataDamaged, "cannot start: "),
    (EventLogMismatch, "cannot start: "),
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
    """Serve until SIGTERM or Ctrl-C, then stop cleanly (serve writes a final snapshot).

    SIGHUP reloads the TLS certificate, for new connections.
    """
    log = logging.getLogger(__name__)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(serve, config)
            settle_gc()
            async for signum in signals:
                if signum == signal.SIGHUP:
                    if running.tls is None:
                        log.info("SIGHUP: no TLS certificate to reload")
                    else:
                        running.tls.reload()
                    continue
                log.info("%s: stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def settle_gc() -> None:
    """Keep the cycle collector from rescanning what lives for the whole process.

    A running server frees nearly all its garbage by reference counting. What set CPython's
    collector off was the 700-object default: the few objects each request in flight holds
    (some ten per connection) crossed it every few dozen messages, so they were collected
    while alive, promoted, and rescanned with all of the imported code in full collections,
    a share of every message's cost that grows with the connections. With a higher limit the
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

"""serve(): the whole server in one nursery, for the command line and for tests alike."""

from __future__ import annotations

import logging
import math
import time
from functools import partial
from pathlib import Path

import msgspec
import trio

from . import core, snapshots
from .auth import Passwords
from .config import Config, usable_cores
from .connection import WS_PATH, serve_connection
from .errors import ServiceUnavailable
from .guard import Guard
from .handlers import Context
from .journal import Journal
from .listener import Listener
from .lock import DirectoryLock
from .recovery import recover, remove_covered_journals
from .store import Store, run_store
from .watchdog import Watchdog

log = logging.getLogger(__name__)


class Running(msgspec.Struct, frozen=True):
    """What ``nursery.start(serve, config)`` returns once the server accepts connections."""

    host: str
    port: int
    store: Store
    context: Context  # what every connection shares: tests may look inside (hash counts)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def http_url(self) -> str:
        """Where the plain HTTP endpoints (``/healthz``, ``/readyz``) are, on the same port."""
        return f"http://{self.host}:{self.port}/"


async def serve(
    config: Config, *, task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve MoreliaTalk until cancelled, then write a final snapshot.

    Supports ``running = await nursery.start(serve, config)``.

    Raises:
        DataDamaged: the data directory holds damage that recovery must not guess about.
        StorageFailed: the journal could not be written or synced for a reason other than
            a full disk (the server stopped acknowledging).
        DirectoryInUse: another server, in this process or another, holds the data directory.
        OSError: the data directory cannot be used, or the address is taken.
    """
    directory = config.data_dir
    directory.mkdir(parents=True, exist_ok=True)
    lock = DirectoryLock(directory)  # before anything is read: one server per directory
    try:
        await _serve_locked(config, task_status)
    finally:
        lock.release()


async def _serve_locked(config: Config, task_status: trio.TaskStatus[Running]) -> None:
    directory = config.data_dir
    state, report = await trio.to_thread.run_sync(recover, directory)
    log.info(
        "Loaded %s: snapshot at record %s, %d journal records replayed",
        directory,
        report.snapshot_seq,
        report.replayed,
    )
    journal = Journal(directory, state.seq + 1, config.fsync, config.fsync_batch_ms / 1000)
    abuse = config.abuse
    if abuse is None:
        log.warning("Abuse limits are off (--no-limits): for benchmarks and tests only")
    workers = usable_cores() if config.hash_workers is None else config.hash_workers
    passwords = Passwords(config.argon2, workers, abuse.hash_queue if abuse else None)
    orderly = True
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            store: Store = await nursery.start(run_store, state, journal)
            await store.call(core.bootstrap, time.time())
            if math.isfinite(config.snapshot_interval):
                nursery.start_soon(snapshot_forever, store, directory, config.snapshot_interval)
            ctx = Context(
                store=store,
                passwords=passwords,
                limits=config.limits,
                guard=Guard(abuse),
                timeouts=config.timeouts,
            )
            watchdog = Watchdog(config.timeouts)
            nursery.start_soon(watchdog.run)
            # Before listening: a worker's start (spawn, imports: about 0.3 s of CPU) would
            # otherwise slow the first requests (first history page 12.4 ms, not 2.7).
            await passwords.start_workers()
            try:
                websocket = partial(
                    serve_connection, ctx=ctx, watchdog=watchdog, echo=config.autobahn_echo
                )
                listener = Listener(ctx, websocket, max_message_size=config.limits.max_frame_bytes)
                port = await nursery.start(listener.serve, config.host, config.port)
            except OSError as exc:  # say which address: "Address already in use" alone does not
                where = f"{config.host} port {config.port}: {exc.strerror or exc}"
                raise OSError(exc.errno, where) from exc
            running = Running(config.host, port, store, ctx)
            if config.autobahn_echo:
                log.warning("Echoing frames at /echo (--autobahn-echo): conformance tests only")
            log.info("Serving MoreliaTalk on %s", running.url)
            log.info("HTTP endpoints (/healthz, /readyz) on %s", running.http_url)
            task_status.started(running)
    except BaseException as exc:
        orderly = _is_shutdown(exc)
        raise
    finally:
        # Every task has exited, so nobody else touches `state`. After a crash or a disk
        # failure the journal already holds everything acknowledged: leave the files be.
        # So too if the state holds records the journal could not write (a full disk) and
        # the owner had no turn to rebuild it since: the next start replays the journal.
        if orderly and journal.failure is None and state.seq != journal.appended:
            log.warning("No final snapshot: the journal could not store the last changes")
        elif orderly and journal.failure is None:
            with trio.CancelScope(shield=True):
                try:
                    await write_snapshot(core.capture(state), directory)
                except OSError as exc:  # a full disk: the journal still holds every change
                    log.error("Final snapshot at record %d failed: %s", state.seq, exc)
                else:
                    log.info("Final snapshot written at record %d", state.seq)


def _is_shutdown(exc: BaseException) -> bool:
    """Cancellation or Ctrl-C is an orderly stop; anything else is a crash."""
    stops = (trio.Cancelled, KeyboardInterrupt, SystemExit)
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(stops)[1] is None
    return isinstance(exc, stops)


async def write_snapshot(capture: core.Capture, directory: Path) -> None:
    """Encode and write a snapshot off the trio thread, then drop the journals it covers."""

    def write() -> None:
        data = snapshots.encode(capture, time.time())
        snapshots.write_atomic(directory / snapshots.SNAPSHOT_NAME, data)
        remove_covered_journals(directory, capture.seq)

    await trio.to_thread.run_sync(write)


async def snapshot_forever(store: Store, directory: Path, interval: float) -> None:
    """Snapshot every ``interval`` seconds while anything has changed."""
    last = store.journal.appended
    while True:
        await trio.sleep(interval)
        if store.journal.appended == last:
            continue
        try:
            capture = await store.capture()
        except ServiceUnavailable:  # held behind records a full disk refused: try later
            continue
        try:
            async with store.journal.files_lock:
                await write_snapshot(capture, directory)
        except OSError as exc:
            # The journal still holds every change: a failed snapshot loses nothing, so keep
            # serving (a full disk also degrades the journal: changes wait for room).
            log.error("Snapshot at record %d failed: %s", capture.seq, exc)
            continue
        last = capture.seq
        log.debug("Snapshot written at record %d", last)

"""Start, run and stop one server of those sharing a stream (``serve --event-log``).

Start: connect, check that the data directory belongs to this stream, load its own
snapshot, or the stream's newest when the records after its own were purged, then read the
stream to its end before serving. Run: the owner (``node``), plus a snapshot now and then:
in the data directory for a quick restart, and in the stream's bucket once enough records
follow the last one there, after which those records are purged (the stream stays
bounded). Stop: a last snapshot in the data directory.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import trio

from ..config import Config
from ..core.snapshot_format import Captured
from ..core.state import State, capture
from ..persistence.recovery import recover
from ..persistence.snapshots import orderly_stop, snapshot_forever
from ..store import Store
from .address import EventLogMismatch, parse_event_log
from .bridge import AsyncioThread
from .directory import check_identity, restored, write_local_snapshot
from .node import SharedLog, run_shared_store
from .stream import Listener, SharedStream

log = logging.getLogger(__name__)

SNAPSHOT_TRIES: Final = 3
START_WITHIN: Final = 5.0  # seconds to reach the log at start-up, then the server gives up


class EventLogUnreachable(OSError):
    """The shared log could not be reached at start-up (one line for the operator)."""


@asynccontextmanager
async def shared_store(config: Config) -> AsyncIterator[Store]:
    """The owner of this server's copy of the shared state, caught up, until the block ends.

    Raises:
        EventLogUnreachable: no connection to the log at start-up.
        EventLogMismatch: the data directory and the stream make no consistent state.
    """
    assert config.event_log is not None
    address = parse_event_log(config.event_log)
    directory = config.data_dir
    bridge = AsyncioThread("event-log")
    bridge.start()
    stream = SharedStream(
        address,
        bridge,
        Listener(),
        replicas=config.event_log_replicas,
        credentials=None
        if config.event_log_credentials is None
        else str(config.event_log_credentials),
        ca_file=None if config.event_log_ca is None else str(config.event_log_ca),
        name=f"morelia-trio {directory}",
    )
    try:
        try:
            with trio.fail_after(START_WITHIN):
                created = await stream.open()
        except Exception as exc:
            why = stream.last_error or f"{type(exc).__name__}: {exc}"
            raise EventLogUnreachable(
                f"cannot use the event log {address.redacted}: {why}"
            ) from None
        check_identity(directory, address.stream, created)
        try:
            with trio.fail_after(START_WITHIN):
                first, last = await stream.last_seq()
        except trio.TooSlowError:
            raise EventLogUnreachable(
                f"cannot use the event log {address.redacted}: the stream does not answer"
            ) from None
        state = await _starting_state(stream, directory, first, last)
        shared = SharedLog(state)
        async with trio.open_nursery() as nursery:
            try:
                store, node = await nursery.start(
                    run_shared_store, state, stream, shared, config.event_log_timeout
                )
            except Exception as exc:  # the consumer could not be set up
                raise EventLogUnreachable(
                    f"cannot follow the event log {address.redacted}: {type(exc).__name__}"
                ) from None
            orderly = True
            await store.call(caught_up)
            log.info("Serving the stream %s from record %d", address.redacted, state.seq)
            if math.isfinite(config.snapshot_interval):
                keeper = SharedSnapshots(shared, stream, directory, config.event_log_keep)
                nursery.start_soon(
                    snapshot_forever, store.capture, keeper, config.snapshot_interval
                )
            try:
                yield store
            except BaseException as exc:
                orderly = orderly_stop(exc)
                raise
            finally:
                nursery.cancel_scope.cancel()
                if orderly:  # (after a bug, the state may be half changed: keep the files)
                    with trio.CancelScope(shield=True):
                        await _final_snapshot(node.state, directory)
    finally:
        with trio.CancelScope(shield=True):
            try:
                with trio.move_on_after(2):
                    await stream.close()
            except Exception as exc:
                log.debug("Closing the event log: %s", exc)
            await trio.to_thread.run_sync(bridge.close)


def caught_up(state: State) -> int:
    """A read: answered once this server has applied every record stored before it."""
    return state.seq


async def _starting_state(stream: SharedStream, directory: Path, first: int, last: int) -> State:
    state, _ = await trio.to_thread.run_sync(recover, directory)
    if state.seq > last:
        raise EventLogMismatch(
            f"{directory} holds record {state.seq}, but the event log ends at record {last}: "
            "the log lost records (start this server from an empty data directory)"
        )
    for _ in range(SNAPSHOT_TRIES):
        if not last or state.seq + 1 >= first:
            return state
        # Purged past this state: take the stream's snapshot. Another server may keep a
        # newer one and purge further while this one downloads: then look again.
        newest = await stream.newest_snapshot()
        if newest is not None and newest[0] >= state.seq:
            seq, data = newest
            where = Path(f"{stream.address.snapshots}/{seq}")  # names it in an error
            state = await trio.to_thread.run_sync(restored, data, where)
            log.info("Starting from the event log's snapshot at record %d", seq)
        first, last = await stream.last_seq()
    raise EventLogMismatch(
        f"the event log starts at record {first} and holds no snapshot that covers "
        "the records before it"
    )


class SharedSnapshots:
    """What ``snapshot_forever`` keeps for a server sharing a stream: each snapshot in the
    data directory, and, once ``every`` records follow the last one kept in the stream's
    bucket, the same bytes there too, after which the records they cover are purged."""

    def __init__(
        self, shared: SharedLog, stream: SharedStream, directory: Path, every: int
    ) -> None:
        self.shared = shared
        self.stream = stream
        self.directory = directory
        self.every = every
        self.kept = shared.appended  # the bucket's newest that this server knows of

    @property
    def appended(self) -> int:
        return self.shared.appended

    async def keep(self, capture: Captured) -> None:
        started = time.perf_counter()
        data = await write_local_snapshot(capture, self.directory)
        self.shared.observer.snapshot_written(time.perf_counter() - started, len(data))
        if capture.seq - self.kept < self.every:
            return
        try:
            purged = await self.stream.keep_snapshot(capture.seq, data)
        except Exception as exc:  # the stream keeps its records: try again later
            log.error("Snapshot at record %d not kept in the event log: %s", capture.seq, exc)
            return
        self.kept = capture.seq
        log.info("Event log snapshot at record %d; %d records purged", capture.seq, purged)


async def _final_snapshot(state: State, directory: Path) -> None:
    try:
        data = await write_local_snapshot(capture(state), directory)
    except OSError as exc:
        log.error("Final snapshot at record %d failed: %s", state.seq, exc)
    else:
        log.info("Final snapshot written at record %d (%d bytes)", state.seq, len(data))

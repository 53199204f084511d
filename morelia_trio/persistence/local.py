"""The event log on local files: the journal writer, plus snapshots and replay from the
data directory. The first implementation of ``port.EventLog``.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

import trio

from ..config import FsyncMode
from ..core.snapshot_format import Captured
from ..core.state import State, capture
from .journal_writer import Journal
from .port import StorageFailed
from .recovery import recover
from .snapshots import write_snapshot

log = logging.getLogger(__name__)


class LocalFiles(Journal):
    """The journal of a data directory (the owner's appends go straight to it, no
    indirection on the hot path), with the snapshots and the replay of that directory."""

    async def keep(self, capture: Captured) -> None:
        async with self.files_lock:  # a rebuild never reads a file list being pruned
            started = time.perf_counter()
            size = await write_snapshot(capture, self.directory)
            self.observer.snapshot_written(time.perf_counter() - started, size)

    async def replay(self) -> State:
        directory = self.directory
        try:
            async with self.files_lock:
                fresh, _ = await trio.to_thread.run_sync(partial(recover, directory, repair=False))
        except Exception as exc:
            raise StorageFailed(f"the state could not be rebuilt from {directory}: {exc}") from exc
        return fresh


async def open_local(
    directory: Path, fsync: FsyncMode, batch_interval: float
) -> tuple[State, LocalFiles]:
    """Recover the state from ``directory`` and open its journal after the last record.

    Raises:
        DataDamaged: the data directory holds damage that recovery must not guess about.
    """
    state, report = await trio.to_thread.run_sync(recover, directory)
    log.info(
        "Loaded %s: snapshot at record %s, %d journal records replayed",
        directory,
        report.snapshot_seq,
        report.replayed,
    )
    return state, LocalFiles(directory, state.seq + 1, fsync, batch_interval)


async def final_snapshot(event_log: LocalFiles, state: State, orderly: bool) -> None:
    """At shutdown, once every task has exited (nobody else touches ``state``): snapshot it.

    After a crash or a disk failure the journal already holds everything acknowledged:
    leave the files be. So too if the state holds records the journal could not write (a
    full disk) and the owner had no turn to rebuild it since: the next start replays them.
    """
    if not orderly or event_log.failure is not None:
        return
    if state.seq != event_log.appended:
        log.warning("No final snapshot: the journal could not store the last changes")
        return
    with trio.CancelScope(shield=True):
        try:
            await write_snapshot(capture(state), event_log.directory)
        except OSError as exc:  # a full disk: the journal still holds every change
            log.error("Final snapshot at record %d failed: %s", state.seq, exc)
        else:
            log.info("Final snapshot written at record %d", state.seq)

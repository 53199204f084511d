"""The journal writer: every event, appended and made durable before anyone hears of it.

The records and files are ``core.journal_format``'s; this is the trio task that writes them,
many callers sharing one fsync (group commit). A snapshot covers every record up to its
``seq``; the files it covers are deleted after it is safely written.

A file the journal moved on from ends with an end-of-file marker, so a missing newest file is
noticed: the file before it names it. The marker is written only once the next file's
name is on disk (and the records before it are synced), so no crash can leave a marker
naming a file that never existed; files written before markers existed simply have none.
At a snapshot's capture the journal moves on to ``journal-<seq+1>.log`` and the capture is
answered only after that, so a snapshot on disk is always followed by its journal file.

A full disk (ENOSPC, or EDQUOT: a quota spent) degrades the journal, it does not stop it: the
bytes of a batch that did not fit are cut off the file, so it ends with a whole record; the
callers of those records hear 503; changes are refused until one, let through as a probe at
most once a second, is stored. Any other failure (EIO, a failed fsync: after one the page
cache can no longer be trusted) stops the server.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import outcome
import trio

from ..config import FsyncMode
from ..core.events import AnyEvent
from ..core.journal_format import (
    encode_event,
    encode_record,
)
from .journal_file import JournalFile, OutOfRoom, Rotate
from .port import Gauge, StorageFailed, StorageObserver, Unobserved, Waker, refused

log = logging.getLogger(__name__)

PROBE_INTERVAL: Final = 1.0  # seconds between changes let through to try a degraded journal


class Journal:
    """Appends events and makes them durable, many callers sharing one fsync (group commit).

    The state owner calls ``append`` (sync, never blocks); the writer task ``run`` does the
    disk work in a worker thread; callers ``wait_durable`` before they acknowledge anything.

    While ``degraded`` (the disk is full) ``append`` refuses every change but the probe the
    owner takes with ``take_probe``; a record that cannot be written rolls ``appended`` back
    to ``durable``, and the owner rebuilds its state from the files when its ``seq`` is then
    ahead of ``appended``.
    """

    def __init__(
        self,
        directory: Path,
        next_seq: int,
        mode: FsyncMode = "always",
        batch_interval: float = 0.05,
    ) -> None:
        self.directory = directory
        self.mode = mode
        self.batch_interval = batch_interval
        self.appended = next_seq - 1  # the last sequence number handed out
        self.durable = next_seq - 1  # the last one on disk, as the mode promises
        self.failure: OSError | None = None  # fatal: the server stops
        self.degraded: OSError | None = None  # the disk is full: changes wait for room
        # Held by whoever reads the data directory whole or deletes files from it, so a
        # rebuild never reads a file list that a snapshot's clean-up is pruning.
        self.files_lock = trio.Lock()
        self._next_probe = float("-inf")
        self._pending: list[bytes | Rotate] = [Rotate(next_seq)]
        self._has_work = trio.Event()
        self._waiting: collections.deque[tuple[int, Waker, outcome.Outcome[Any]]] = (
            collections.deque()
        )  # answers held until their record is durable, in sequence order
        self._rotated: list[tuple[Waker, outcome.Outcome[Any]]] = []  # answered once moved on
        self._file = JournalFile(directory, next_seq)
        self._unsynced = False  # batch mode: written but not yet synced
        self._last_sync = float("-inf")
        self.batches = 0  # statistics: how many writes (and fsyncs) served the records
        self.observer: StorageObserver = Unobserved()  # the metrics, once the server sets them

    # --- the owner's side: sync, never blocks ---

    def append(self, event: AnyEvent, *, probe: bool = False) -> int:
        """Queue one event for the disk and return its sequence number.

        Raises:
            ServiceUnavailable: the journal failed, or is degraded and this is no ``probe``.
        """
        if self.failure is not None or (self.degraded is not None and not probe):
            raise refused()
        payload = encode_event(event)  # first: an event it cannot encode leaves no gap
        self.appended += 1
        self._pending.append(encode_record(self.appended, payload))
        self._has_work.set()
        return self.appended

    def gauges(self) -> Iterable[Gauge]:
        return ()  # the journal's writes are timed as they happen (``observer``)

    def take_probe(self) -> bool:
        """While degraded: may one change try the disk now? (At most one a second.)"""
        if self.degraded is None or self.failure is not None:
            return False
        now = trio.current_time()
        if now < self._next_probe:
            return False
        self._next_probe = now + PROBE_INTERVAL
        return True

    async def stored(self, seq: int) -> bool:
        """Wait until record ``seq`` is written (whatever the mode); False if it was not."""
        if seq <= self.durable:
            return True
        done = trio.Event()
        heard: list[bool] = []

        def hear(result: outcome.Outcome[Any]) -> None:
            heard.append(isinstance(result, outcome.Value))
            done.set()

        self._waiting.append((seq, hear, outcome.Value(None)))
        await done.wait()
        return heard[0]

    def rotate(self, answer: Waker, result: outcome.Outcome[Any]) -> None:
        """Start a new file with the next record (a snapshot covers everything before it);
        give ``result`` to ``answer`` once the new file is on disk and everything before it
        synced, so a snapshot written after that is always followed by its journal file."""
        if self.failure is not None or self.degraded is not None:
            answer(outcome.Error(refused()))
            return
        self._pending.append(Rotate(self.appended + 1))
        self._rotated.append((answer, result))
        self._has_work.set()

    def deliver(self, answer: Waker, result: outcome.Outcome[Any], seq: int) -> None:
        """Give ``result`` to ``answer`` once record ``seq`` is as durable as the mode promises.

        With fsync "always" that is on disk; with "batch", written to the file (a crash of
        the process loses nothing acknowledged; a power loss, up to one batch interval);
        "off" acknowledges at once (tests and benchmarks only).
        """
        if self.mode == "off" or seq <= self.durable:
            answer(result)
        elif self.failure is not None:
            answer(outcome.Error(refused()))
        else:
            self._waiting.append((seq, answer, result))

    # --- the writer task ---

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write queued records until cancelled; raise StorageFailed on a fatal disk error."""
        task_status.started()
        try:
            while True:
                if self._unsynced:  # batch mode: sync at most batch_interval after a write
                    with trio.move_on_at(self._last_sync + self.batch_interval):
                        await self._has_work.wait()
                else:
                    await self._has_work.wait()
                await self.flush()
                if self.mode == "off":  # it promises nothing: one write per interval at most
                    await trio.sleep(self.batch_interval)
        finally:
            try:
                if self.failure is None:
                    # Stopping: what the state holds must be in the journal, synced, before
                    # a final snapshot can say the journal reaches it.
                    with trio.CancelScope(shield=True):
                        await self._finish()
            finally:
                self._file.close()

    async def _finish(self) -> None:
        """Write and sync what is still queued (the server is stopping).

        Raises:
            StorageFailed: a write failed other than for room, or a sync failed.
        """
        items, self._pending = self._pending, []
        if not any(isinstance(item, bytes) for item in items):
            items = []  # no change since the start: no new file either
        if not items and self._file.fd is None:
            return
        try:
            await trio.to_thread.run_sync(self._file.write, items, self.durable + 1, True)
        except OutOfRoom as full:  # what did not fit was never acknowledged
            self._degrade(full, trio.current_time())
            return
        except OSError as exc:
            self.failure = exc
            raise StorageFailed(
                f"the journal {self._file.path} could not be written: {exc.strerror or exc}"
            ) from exc
        self.durable = self.appended

    async def flush(self) -> None:
        """Write (and, as the mode says, sync) everything queued so far.

        Raises:
            StorageFailed: a write failed other than for room, or a sync failed.
        """
        items, self._pending = self._pending, []
        rotated, self._rotated = self._rotated, []
        self._has_work = trio.Event()
        now = trio.current_time()
        sync = self.mode == "always" or (
            self.mode == "batch" and now >= self._last_sync + self.batch_interval
        )
        first, last = self.durable + 1, self.appended
        started = time.perf_counter()
        try:
            if self.mode == "off" and not any(isinstance(item, Rotate) for item in items):
                # Into the page cache, on the trio thread: a thread hop per batch cost more
                # than the write. Only "off" may: with memory short, a write can block.
                self._file.write(items, self.durable + 1, sync=False)
            else:
                await trio.to_thread.run_sync(self._file.write, items, self.durable + 1, sync)
        except OutOfRoom as full:
            self._degrade(full, now)
            for answer, _ in rotated:  # no snapshot this time: its journal may not follow it
                answer(outcome.Error(refused()))
            return
        except OSError as exc:
            self.failure = exc
            self._settle(self.durable)
            for answer, _ in rotated:
                answer(outcome.Error(refused()))
            raise StorageFailed(
                f"the journal {self._file.path} could not be written: {exc.strerror or exc}"
            ) from exc
        if sync:
            self._last_sync = now
            self._unsynced = False
        elif items:
            self._unsynced = self.mode == "batch"
        self.batches += 1
        self.observer.journal_written(last - first + 1, time.perf_counter() - started, sync)
        self.durable = last
        if self.degraded is not None and last >= first:
            self.degraded = None
            log.warning("Journal %s has room again: changes are accepted", self._file.path)
        self._settle(last)
        for answer, result in rotated:
            answer(result)

    def _degrade(self, full: OutOfRoom, now: float) -> None:
        """After a write found no room: forget every record after ``full.kept``."""
        if self.degraded is None:
            log.error(
                "Journal %s: %s; changes are refused until it can be written again",
                full.path,
                full.error.strerror or full.error,
            )
        self.degraded = full.error
        self._next_probe = now + PROBE_INTERVAL
        self.durable = self.appended = full.kept
        # Records queued meanwhile follow the lost ones; a rotation queued meanwhile would
        # name its file after a number that is handed out again. The first file must exist.
        self._pending = [] if self._file.fd is not None else [Rotate(full.kept + 1)]
        self._has_work = trio.Event()
        self._unsynced = False  # cutting the file synced it (or the failed rotation did)
        self._last_sync = now
        self._settle(full.kept)

    def _settle(self, last: int) -> None:
        """Waker every caller whose record is at most ``last``; refuse those never written."""
        waiting = self._waiting
        while waiting and waiting[0][0] <= last:
            _, answer, result = waiting.popleft()
            answer(result)
        # Those left wait for records still queued, unless the records are gone for good.
        if waiting and (self.failure is not None or waiting[0][0] > self.appended):
            while waiting:
                _, answer, _ = waiting.popleft()
                answer(outcome.Error(refused()))

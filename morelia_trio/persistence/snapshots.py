"""Snapshots on local files: read, write (then drop the journal files they cover), schedule.

The format is ``core.snapshot_format``'s. A missing file is a fresh start; anything else
that is not a valid snapshot stops start-up with a message naming the file, never a silent
empty start.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import trio

from ..core.errors import ServiceUnavailable
from ..core.journal_format import journal_files
from ..core.snapshot_format import SNAPSHOT_NAME, Captured, Stored, decode, encode
from .files import write_atomic

log = logging.getLogger(__name__)


def read(path: Path) -> Stored | None:
    """Read a snapshot file; None if there is none.

    Raises:
        DataDamaged: the file is not a whole, valid snapshot of a format this server knows.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode(data, path)


async def write_snapshot(capture: Captured, directory: Path) -> int:
    """Encode and write a snapshot off the trio thread, then drop the journals it covers.

    Returns its size in bytes.
    """

    def write() -> int:
        data = encode(capture, time.time())
        write_atomic(directory / SNAPSHOT_NAME, data)
        remove_covered_journals(directory, capture.seq)
        return len(data)

    return await trio.to_thread.run_sync(write)


def remove_covered_journals(directory: Path, seq: int) -> None:
    """Delete journal files that hold only records a snapshot at ``seq`` covers."""
    files = journal_files(directory)
    for (first_seq, path), following in itertools.pairwise(files):
        if following[0] <= seq + 1 and first_seq <= seq:
            path.unlink(missing_ok=True)


class Keeper(Protocol):
    """Where snapshots go: the local files, or a server sharing a stream (``cluster``)."""

    @property
    def appended(self) -> int:
        """The last record the state holds (or will, once durable)."""
        ...

    async def keep(self, capture: Captured) -> None:
        """Store a snapshot of ``capture``.

        Raises:
            OSError: it could not be stored (every change is still in the log).
        """
        ...


def orderly_stop(exc: BaseException) -> bool:
    """Cancellation or Ctrl-C is an orderly stop, after which a final snapshot is safe;
    anything else is a crash (or a bug, which may have left the state half changed)."""
    stops = (trio.Cancelled, KeyboardInterrupt, SystemExit)
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(stops)[1] is None
    return isinstance(exc, stops)


async def snapshot_forever(
    capture: Callable[[], Awaitable[Captured]], event_log: Keeper, interval: float
) -> None:
    """Snapshot every ``interval`` seconds while anything has changed."""
    last = event_log.appended
    while True:
        await trio.sleep(interval)
        if event_log.appended == last:
            continue
        try:
            captured = await capture()
        except ServiceUnavailable:  # held behind records a full disk refused: try later
            continue
        try:
            await event_log.keep(captured)
        except OSError as exc:
            # The journal still holds every change: a failed snapshot loses nothing, so keep
            # serving (a full disk also degrades the journal: changes wait for room).
            log.error("Snapshot at record %d failed: %s", captured.seq, exc)
            continue
        last = captured.seq
        log.debug("Snapshot written at record %d", last)

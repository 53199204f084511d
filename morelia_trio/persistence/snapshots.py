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

import trio

from ..core.errors import ServiceUnavailable
from ..core.journal_format import journal_files
from ..core.snapshot_format import SNAPSHOT_NAME, Captured, Stored, decode, encode
from .files import write_atomic
from .port import EventLog

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


async def snapshot_forever(
    capture: Callable[[], Awaitable[Captured]], event_log: EventLog, interval: float
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

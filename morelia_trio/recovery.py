"""Start-up: load the newest snapshot, replay the journal after it, report what was found.

Recovery never guesses: a torn last record (the process died mid-write) is cut off with a
warning naming file and offset; any other damage raises DataDamaged with file and offset.
"""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import msgspec

from . import core, snapshots
from .journal import HEADER, DataDamaged, decode_event, journal_files, scan

log = logging.getLogger(__name__)


class Report(msgspec.Struct, kw_only=True):
    directory: str
    snapshot_seq: int | None = None
    snapshot_time: float | None = None
    journal_files: list[str] = []
    journal_records: int = 0
    replayed: int = 0
    torn: list[str] = []  # "file at offset N: why", one per cut tail


def recover(directory: Path, *, repair: bool = True) -> tuple[core.State, Report]:
    """Rebuild the state from ``directory``.

    Args:
        directory: the data directory; it need not exist (a fresh start).
        repair: cut a torn tail off the last journal file (False: only report it).

    Raises:
        DataDamaged: a snapshot or journal is damaged where no crash could explain it.
    """
    report = Report(directory=str(directory))
    snapshot = snapshots.read(directory / snapshots.SNAPSHOT_NAME)
    if snapshot is None:
        state = core.State()
    else:
        state = core.from_snapshot(snapshot)
        report.snapshot_seq, report.snapshot_time = snapshot.seq, snapshot.time
    files = journal_files(directory) if directory.exists() else []
    previous: int | None = None  # the journal's records are consecutive, across files too
    for index, (first_seq, path) in enumerate(files):
        report.journal_files.append(path.name)
        data = path.read_bytes()
        found = scan(data, path)
        is_last = index == len(files) - 1
        if found.torn is not None:
            if not is_last:  # only the newest file can have been cut short by a crash
                raise DataDamaged(path, found.end, found.torn)
            report.torn.append(f"{path.name} at offset {found.end}: {found.torn}")
            if repair:
                log.warning(
                    "Journal %s: cutting a torn tail at byte offset %d (%s)",
                    path,
                    found.end,
                    found.torn,
                )
                _truncate(path, found.end)
        report.journal_records += len(found.records)
        if found.records and found.records[0][0] != first_seq:
            raise DataDamaged(
                path, 0, f"first record is {found.records[0][0]}, the file name says {first_seq}"
            )
        offset = 0
        for seq, payload in found.records:
            if previous is not None and seq != previous + 1:
                why = "records are missing" if seq > previous else "the sequence goes back"
                raise DataDamaged(path, offset, f"record {seq} follows record {previous}: {why}")
            previous = seq
            if seq > state.seq:
                if seq != state.seq + 1:
                    raise DataDamaged(
                        path,
                        offset,
                        f"record {seq} follows record {state.seq}: records are missing",
                    )
                try:
                    event = decode_event(payload)
                except msgspec.DecodeError:
                    raise DataDamaged(
                        path, offset, f"record {seq} is not an event this server knows"
                    ) from None
                core.apply(state, event)
                state.seq = seq
                report.replayed += 1
            offset += HEADER.size + len(payload)
    return state, report


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_covered_journals(directory: Path, seq: int) -> None:
    """Delete journal files that hold only records a snapshot at ``seq`` covers."""
    files = journal_files(directory)
    for (first_seq, path), following in itertools.pairwise(files):
        if following[0] <= seq + 1 and first_seq <= seq:
            path.unlink(missing_ok=True)

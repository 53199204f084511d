"""Start-up: load the newest snapshot, replay the journal after it, report what was found.

Recovery never guesses: a torn last record (the process died mid-write) is cut off with a
warning naming file and offset; any other damage raises DataDamaged with file and offset.

Besides damaged bytes, it refuses a journal with a hole in it, which is what a deleted or
lost file leaves. Every record after the snapshot must be in the journal files, and they
must follow one another without a gap or an overlap: a file starts at the record after the
one where the file before it ends (its last record, or what its end-of-file marker says),
or the snapshot covers what lies between. Also damage:

- the newest file ends with an end-of-file marker: the file it names is missing;
- the journal ends before the snapshot's record, when the snapshot was written by a server
  that makes the journal reach it first (every snapshot since end-of-file markers): the
  file that followed the snapshot is missing. Older snapshots are not held to this.

Left alone: gaps the snapshot covers (files it covers are deleted oldest first, and a
crash can stop that halfway), and a torn end-of-file marker on an older file (a power
loss while it was written): the records before it are whole.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from ..core.journal_format import (
    HEADER,
    DataDamaged,
    Scan,
    decode_event,
    encode_end,
    journal_files,
    journal_name,
    scan,
)
from ..core.snapshot_format import SNAPSHOT_NAME
from ..core.state import State, apply, restore
from . import snapshots
from .files import truncate

log = logging.getLogger(__name__)


class Report(msgspec.Struct, kw_only=True):
    directory: str
    snapshot_seq: int | None = None
    snapshot_time: float | None = None
    journal_files: list[str] = []
    journal_records: int = 0
    replayed: int = 0
    torn: list[str] = []  # "file at offset N: why", one per cut tail


def recover(directory: Path, *, repair: bool = True) -> tuple[State, Report]:
    """Rebuild the state from ``directory``.

    Args:
        directory: the data directory; it need not exist (a fresh start).
        repair: cut a torn tail off the last journal file (False: only report it).

    Raises:
        DataDamaged: a snapshot or journal is damaged where no crash could explain it.
    """
    report = Report(directory=str(directory))
    snapshot = snapshots.read(directory / SNAPSHOT_NAME)
    if snapshot is None:
        state = State()
    else:
        state = restore(snapshot)
        report.snapshot_seq, report.snapshot_time = snapshot.seq, snapshot.time
    files = journal_files(directory) if directory.exists() else []
    covered = state.seq  # every record up to here is in the snapshot or a file read so far
    last_end: int | None = None  # where the files read so far end
    for index, (first_seq, path) in enumerate(files):
        report.journal_files.append(path.name)
        data = path.read_bytes()
        found = scan(data, path)
        is_last = index == len(files) - 1
        if found.torn is not None:
            # Only the newest file can have been cut short by a crash, or the end-of-file
            # marker of the file before it (written last, after the newest file existed).
            if not is_last and not _torn_end_marker(data, found, files[index + 1][0]):
                raise DataDamaged(path, found.end, found.torn)
            report.torn.append(f"{path.name} at offset {found.end}: {found.torn}")
            if repair:
                log.warning(
                    "Journal %s: cutting a torn tail at byte offset %d (%s)",
                    path,
                    found.end,
                    found.torn,
                )
                truncate(path, found.end)
        report.journal_records += len(found.records)
        if found.records and found.records[0][0] != first_seq:
            raise DataDamaged(
                path, 0, f"first record is {found.records[0][0]}, the file name says {first_seq}"
            )
        if last_end is not None and first_seq <= last_end:
            raise DataDamaged(
                path,
                0,
                f"the file starts at record {first_seq}, but the journal before it reaches "
                f"record {last_end}: the sequence goes back",
            )
        if first_seq > covered + 1:
            raise DataDamaged(path, 0, _missing(covered + 1, first_seq - 1))
        previous: int | None = None  # inside a file the records are consecutive
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
                apply(state, event)
                state.seq = seq
                report.replayed += 1
            offset += HEADER.size + len(payload)
        last_end = previous if previous is not None else first_seq - 1
        covered = max(covered, last_end)
        if found.follows is not None:
            if found.follows <= last_end:
                raise DataDamaged(
                    path,
                    found.end,
                    f"the end-of-file marker names record {found.follows} next, "
                    f"after record {last_end}: the sequence goes back",
                )
            if found.follows > covered + 1:
                raise DataDamaged(path, found.end, _missing(covered + 1, found.follows - 1))
            if is_last:
                raise DataDamaged(
                    directory / journal_name(found.follows),
                    None,
                    f"missing: {path.name} ends saying this file follows it",
                )
            last_end = found.follows - 1
            covered = max(covered, last_end)
    if (
        snapshot is not None
        and snapshot.journal_reaches_seq
        and (last_end is None or last_end < snapshot.seq)
    ):
        ends = "there is no journal file" if last_end is None else f"the journal at {last_end}"
        raise DataDamaged(
            directory / journal_name(snapshot.seq + 1),
            None,
            f"missing: the snapshot ends at record {snapshot.seq}, {ends}",
        )
    return state, report


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"record {first} is missing: no journal file holds it"
    return f"records {first} to {last} are missing: no journal file holds them"


def _torn_end_marker(data: bytes, found: Scan, next_first: int) -> bool:
    """Whether the torn tail of a file can be its end-of-file marker, partly written."""
    tail = data[found.end :]
    marker = encode_end(next_first)
    return (
        bool(found.records)
        and found.records[-1][0] == next_first - 1
        and len(tail) <= len(marker)
        and all(byte in (0, expected) for byte, expected in zip(tail, marker, strict=False))
    )

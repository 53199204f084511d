"""The journal's files on disk: whole records appended, the move to a next file, end markers.

The journal writer hands it batches of records; it runs in a worker thread (with fsync
"off", on the trio thread) and knows nothing of the callers waiting for them.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Final

import msgspec

from ..core.journal_format import encode_end, journal_files, journal_name
from .files import fsync_directory

NO_ROOM: Final = frozenset({errno.ENOSPC, errno.EDQUOT})  # a write may succeed once room is made


class OutOfRoom(Exception):
    """A write found the disk full; the journal was cut back to end with record ``kept``."""

    def __init__(self, error: OSError, path: Path, kept: int) -> None:
        super().__init__(f"{path}: {error.strerror or error}")
        self.error = error
        self.path = path
        self.kept = kept  # every record up to this one is in the file (and synced)


class Rotate(msgspec.Struct, frozen=True):
    first_seq: int


class JournalFile:
    """The journal file being appended to, and the move to the next one."""

    def __init__(self, directory: Path, next_seq: int) -> None:
        self.directory = directory
        self.fd: int | None = None
        self.first_seq = 0  # of the open file
        self.path = directory / journal_name(next_seq)  # the file being appended to
        self.size = 0  # bytes of whole records in it

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def write(self, items: list[bytes | Rotate], first: int, sync: bool) -> None:
        """Write ``items`` (records, the first of them numbered ``first``, and moves to new
        files), then sync if asked.

        Raises:
            OutOfRoom: no room; the file was cut back to its last whole record and synced.
            OSError: anything else.
        """
        chunk: list[bytes] = []
        for item in items:
            if isinstance(item, Rotate):
                self._append_chunk(chunk, first)
                chunk = []
                self._open(item.first_seq)
                first = item.first_seq
            else:
                chunk.append(item)
        self._append_chunk(chunk, first)
        if sync and self.fd is not None:
            os.fsync(self.fd)

    def _append_chunk(self, chunk: list[bytes], first: int) -> None:
        if not chunk:
            return
        data = b"".join(chunk)
        try:
            self._write_all(data)
        except OSError as exc:
            if exc.errno not in NO_ROOM:
                raise
            # Whatever part of the chunk got in goes again, so the file ends with a whole
            # record; synced, or a power loss could bring back records their callers were
            # told are not stored.
            assert self.fd is not None
            os.ftruncate(self.fd, self.size)
            os.fsync(self.fd)
            raise OutOfRoom(exc, self.path, first - 1) from exc
        self.size += len(data)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            assert self.fd is not None
            written = os.write(self.fd, view)  # a short write is retried, never dropped
            view = view[written:]

    def _open(self, first_seq: int) -> None:
        """Move on to ``journal_name(first_seq)``; mark the file left behind as ended."""
        if self.fd is not None and first_seq == self.first_seq:
            return  # nothing was appended since the last move: stay
        left, self.fd = self.fd, None
        if left is None:
            left = self._open_newest_before(first_seq)
        try:
            if left is not None:
                os.fsync(left)  # its records first: the new file must not outlive them
            path = self.directory / journal_name(first_seq)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                if exc.errno not in NO_ROOM:
                    raise
                # The file left behind goes on; reopened (and marked) when room is made.
                raise OutOfRoom(exc, path, first_seq - 1) from exc
            self.fd, self.path, self.size = fd, path, os.fstat(fd).st_size
            self.first_seq = first_seq
            fsync_directory(self.directory)  # the new name itself must survive a crash
            if left is not None:  # only now: a marker must never name a file not on disk
                self._mark_end(left, first_seq)
        finally:
            if left is not None:
                os.close(left)

    def _mark_end(self, left: int, next_seq: int) -> None:
        try:
            os.write(left, encode_end(next_seq))
            os.fsync(left)
        except OSError as exc:
            # Without room the file simply goes unmarked, as files written before markers
            # existed are (a part of a marker reads as a torn tail): only the check that
            # its successor is there is lost.
            if exc.errno not in NO_ROOM:
                raise

    def _open_newest_before(self, first_seq: int) -> int | None:
        """At start-up: the newest file a previous run wrote, if the journal moves on from it."""
        files = journal_files(self.directory)
        if not files or files[-1][0] >= first_seq:
            return None  # a fresh journal, or it goes on in the newest file
        return os.open(files[-1][1], os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

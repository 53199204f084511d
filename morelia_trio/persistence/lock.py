"""The data directory's lock: one server per directory, held for as long as it serves.

Two servers on one directory would each append to the journal and each write snapshots over
the other's, and acknowledged changes would vanish. So a server takes an exclusive
``flock`` on ``DIR/lock`` before it reads anything there. The kernel drops that lock when
the process ends, however it ends, so a crash never leaves a stale lock behind (a PID file
would). ``flock`` belongs to the open file, not to the process: a second server in the
same process is refused too, and a descriptor opened ``O_CLOEXEC`` is never inherited by
the hashing workers, so none of them can keep the lock alive after the server is gone.
The holder writes its PID into the file, only to say who holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Final

LOCK_NAME: Final = "lock"


class DirectoryInUse(Exception):
    """Another server (in this process or another) holds the data directory."""

    def __init__(self, directory: Path, holder: int | None) -> None:
        who = f"process {holder}" if holder is not None else "another process"
        super().__init__(f"{directory} is in use by {who} (another server holds {LOCK_NAME})")
        self.directory = directory
        self.holder = holder


class DirectoryLock:
    """An exclusive hold on a data directory; ``release`` (or ending the process) lets go."""

    def __init__(self, directory: Path) -> None:
        """Lock ``directory`` at once or raise.

        Raises:
            DirectoryInUse: another server holds it.
            OSError: the lock file cannot be created or opened (say, permission denied).
        """
        path = directory / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise DirectoryInUse(directory, holder) from None
            raise
        try:  # who holds it, for the message a second server prints
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            os.close(fd)
            raise
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def _read_holder(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None

"""The real server, with ``os.fsync`` watched (or deliberately broken), for the crash test.

    python -m tests.crash.server_wrapper serve --port 0 --data-dir D --snapshot-interval 1

The arguments go to ``morelia_trio.cli.main`` unchanged. Hooks are chosen by environment:

``MORELIA_CRASH_FSYNC_LOG=PATH``
    After each completed fsync of a regular file, append ``<path>\\t<size>\\t<inode>\\n`` to
    PATH with a single ``os.write``: it is in the kernel before the fsync returns to the
    server, so a SIGKILL cannot lose it. The size is the smaller of the sizes seen just
    before and just after the fsync, so it never claims a byte the fsync may not have covered.
``MORELIA_CRASH_BROKEN_FSYNC=1``
    ``os.fsync`` does nothing and records nothing: a deliberately broken build, which the
    crash test must catch when it simulates a power loss.
``MORELIA_CRASH_CHEAP_ARGON2=1``
    argon2's cheapest cost (as ``morelia_trio.testing`` uses), for runs that register a lot.
``MORELIA_CRASH_PARENT=PID``
    SIGKILL itself as soon as its parent is no longer PID: a server never outlives the harness
    (say, when a test timeout kills the harness).
"""

# No "from __future__ import annotations": msgspec resolves the annotations of the Config
# made inside install_cheap_argon2 in this module's globals, where Argon2Params is not.
import os
import signal
import stat
import sys
import threading
import time
from typing import Final

FSYNC_LOG_ENV: Final = "MORELIA_CRASH_FSYNC_LOG"
BROKEN_FSYNC_ENV: Final = "MORELIA_CRASH_BROKEN_FSYNC"
CHEAP_ARGON2_ENV: Final = "MORELIA_CRASH_CHEAP_ARGON2"
PARENT_ENV: Final = "MORELIA_CRASH_PARENT"


def _fd_of(fd: object) -> int:
    if isinstance(fd, int):
        return fd
    fileno = getattr(fd, "fileno", None)
    if fileno is None:
        raise TypeError(f"fsync needs a file descriptor, not {fd!r}")
    number: int = fileno()
    return number


def install_hooks() -> None:
    """Replace ``os.fsync`` as the environment asks (see the module docstring)."""
    real_fsync = os.fsync
    if os.environ.get(BROKEN_FSYNC_ENV) == "1":

        def broken_fsync(fd: object) -> None:
            _fd_of(fd)  # still refuse what the real one refuses, but write nothing to disk

        os.fsync = broken_fsync
        return
    log_path = os.environ.get(FSYNC_LOG_ENV)
    if not log_path:
        return
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def recorded_fsync(fd: object) -> None:
        number = _fd_of(fd)
        before = os.fstat(number)
        real_fsync(number)
        if not stat.S_ISREG(before.st_mode):
            return  # a directory: the harness only cuts journal files
        after = os.fstat(number)
        path = os.readlink(f"/proc/self/fd/{number}")
        size = min(before.st_size, after.st_size)
        os.write(log_fd, f"{path}\t{size}\t{after.st_ino}\n".encode())

    os.fsync = recorded_fsync


def install_cheap_argon2() -> None:
    from morelia_trio import cli
    from morelia_trio.config import Argon2Params, Config

    class CheapConfig(Config, frozen=True, kw_only=True):
        # the same as morelia_trio.testing.CHEAP_ARGON2 (which would import pytest)
        argon2: Argon2Params = Argon2Params(time_cost=1, memory_cost=8, parallelism=1)

    vars(cli)["Config"] = CheapConfig  # cli.main builds its Config by this name


def die_with_parent() -> None:
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    install_hooks()
    if os.environ.get(CHEAP_ARGON2_ENV) == "1":
        install_cheap_argon2()
    # Read by now, and the server refuses MORELIA_ variables that are not its settings.
    for name in (FSYNC_LOG_ENV, BROKEN_FSYNC_ENV, CHEAP_ARGON2_ENV, PARENT_ENV):
        os.environ.pop(name, None)
    from morelia_trio import cli

    return cli.main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())

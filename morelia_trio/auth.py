"""Passwords and tokens: argon2id hashes computed in worker processes, random tokens."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import secrets
import signal

import argon2
import trio
import trio_parallel

from .config import Argon2Params
from .core.errors import ServiceUnavailable

TOKEN_BYTES = 24  # 192 bits
# glibc's mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


class Passwords:
    """argon2id hashing and verification in worker processes, a bounded number at a time.

    Hashing costs tens of milliseconds and tens of MiB by design, so it runs in processes of
    its own (trio-parallel's, shared by every server in the process) at the lowest CPU
    priority. Threads of the server's own process, even at that priority, let a login storm
    raise the chat p99 several times over: a hashing thread takes the GIL back at the
    start and end of every hash, and argon2 maps and unmaps its 64 MiB in the server's own
    address space. The figures, with threads and with worker processes, are in
    bench/RESULTS.md.
    """

    def __init__(self, params: Argon2Params, workers: int, queue: int | None = None) -> None:
        self.params = params
        self.limiter = trio.CapacityLimiter(workers)  # hashes at once
        self.queue = queue  # how many may wait for a worker; None: any number
        self.computed = 0  # statistics: hashes computed or verified
        self.refused = 0  # statistics: checks refused for a full queue (the metrics)

    async def start_workers(self) -> None:
        """Start every worker now, before there is anything to serve.

        A worker's first CPU (spawning, importing Python) runs at normal priority: started
        later, it would compete with the requests being served, or with the logins that made
        it start. Workers already running (trio-parallel's are shared) are reused.
        """
        async with trio.open_nursery() as nursery:
            # All start together: none finds another's worker idle, so each starts its own.
            for _ in range(int(self.limiter.total_tokens)):
                nursery.start_soon(
                    functools.partial(trio_parallel.run_sync, _settle_worker, limiter=self.limiter)
                )

    @property
    def waiting(self) -> int:
        """Hashes waiting for a free worker."""
        return self.limiter.statistics().tasks_waiting

    async def hash(self, password: str) -> str:
        self._admit()
        self.computed += 1
        # Not cancellable once begun: a worker cannot be stopped halfway through a hash.
        hashed: str = await trio_parallel.run_sync(
            hash_password, self.params, password, limiter=self.limiter
        )
        return hashed

    async def verify(self, password_hash: str, password: str) -> bool:
        self._admit()
        self.computed += 1
        matches: bool = await trio_parallel.run_sync(
            verify_password, password_hash, password, limiter=self.limiter
        )
        return matches

    def _admit(self) -> None:
        """Refuse at once rather than queue without bound behind busy workers."""
        if self.queue is not None and self.waiting >= self.queue:
            self.refused += 1
            raise ServiceUnavailable("The server is busy checking passwords; try again soon.")


# --- in the worker processes ------------------------------------------------------------------


def hash_password(params: Argon2Params, password: str) -> str:
    _settle_worker()
    return _hasher(params).hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    _settle_worker()
    try:  # the hash names its own cost: any hasher verifies it
        return _hasher(Argon2Params()).verify(password_hash, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


@functools.cache
def _hasher(params: Argon2Params) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        type=argon2.Type.ID,
    )


@functools.cache
def _settle_worker() -> None:
    """Once per worker process: yield the CPU to everything else, ignore SIGTERM, and keep
    argon2's memory from one hash to the next.

    On Linux, SCHED_IDLE: a worker runs only on a core nothing else wants, and a waking event
    loop takes the core back at once (nice 19 alone still let hashes delay it by milliseconds).
    SIGTERM: a service manager signals the whole group, but the server ends its workers itself
    as it exits (trio-parallel ignores SIGINT for the same reason).
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, 0, 19)
    with contextlib.suppress(AttributeError, OSError):  # 0: this process
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _keep_hash_memory()


def _keep_hash_memory() -> None:
    """Let a worker reuse argon2's memory from one hash to the next.

    libargon2 allocates its 64 MiB afresh for every hash (and wipes it before freeing it).
    That is above glibc's mmap threshold, so glibc maps it and unmaps it after: every hash
    faulted all its pages in again, in kernel time a good part of the hashing's own.
    Served from the heap and never trimmed, the pages stay: a worker holds 64 MiB between
    hashes, and a hash faults none. Without glibc's mallopt: nothing to do.
    """
    try:
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    except OSError:
        return
    if mallopt is not None:
        mallopt(_M_MMAP_MAX, 0)
        mallopt(_M_TRIM_THRESHOLD, 2**30)

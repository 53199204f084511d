"""Passwords and tokens: argon2id hashes computed off the trio thread, random tokens."""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import threading
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

import argon2
import outcome
import trio

from .config import Argon2Params
from .errors import ServiceUnavailable

TOKEN_BYTES = 24  # 192 bits
T = TypeVar("T")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


class Passwords:
    """argon2id hashing and verification on their own threads, a bounded number at a time.

    Hashing costs tens of milliseconds and tens of MiB by design. On the trio thread it would
    stall every connection; on threads of equal priority it would still take the CPU from the
    event loop whenever they share a core (a login storm would stall every chat). So hashes
    run on threads of their own at the lowest CPU priority, one per core by default.
    """

    def __init__(self, params: Argon2Params, threads: int, queue: int | None = None) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )
        self.threads = HashingThreads(threads)
        self.queue = queue  # how many may wait for a thread; None: any number
        self.computed = 0  # statistics: hashes computed or verified

    async def hash(self, password: str) -> str:
        self._admit()
        self.computed += 1
        return await self.threads.run(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        self._admit()
        self.computed += 1
        return await self.threads.run(self._verify, password_hash, password)

    def close(self) -> None:
        self.threads.close()

    def _admit(self) -> None:
        """Refuse at once rather than queue without bound behind busy hashing threads."""
        if self.queue is not None and self.threads.waiting >= self.queue:
            raise ServiceUnavailable("The server is busy checking passwords; try again soon.")

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            return False


_Work: TypeAlias = tuple[
    Callable[..., Any], tuple[Any, ...], Callable[[outcome.Outcome[Any]], None]
]


class HashingThreads:
    """A few threads, started on first use, that run one call at a time at low priority."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.pending = 0  # calls handed over and not yet answered
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._started = False

    @property
    def waiting(self) -> int:
        """Calls waiting for a free thread."""
        return max(0, self.pending - self.count)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on one of the threads; not cancellable once handed over."""
        if not self._started:
            self._started = True
            for number in range(self.count):
                threading.Thread(
                    target=self._serve, name=f"morelia-hashing-{number}", daemon=True
                ).start()
        token = trio.lowlevel.current_trio_token()
        task = trio.lowlevel.current_task()

        def answer(result: outcome.Outcome[Any]) -> None:  # on a hashing thread
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._answered, task, result)

        self.pending += 1
        self._work.put((fn, args, answer))
        result: T = await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
        return result

    def _answered(self, task: trio.lowlevel.Task, result: outcome.Outcome[Any]) -> None:
        self.pending -= 1
        trio.lowlevel.reschedule(task, result)

    def close(self) -> None:
        """Let the threads end once the calls already handed over are done."""
        if self._started:
            for _ in range(self.count):
                self._work.put(None)

    def _serve(self) -> None:
        _lowest_priority()
        while (work := self._work.get()) is not None:
            fn, args, answer = work
            answer(outcome.capture(fn, *args))


def _lowest_priority() -> None:
    """Make the calling thread (and threads it starts: argon2's lanes) yield to all others.

    On Linux, SCHED_IDLE: it runs only on a core nothing else wants, and a waking event loop
    takes the core back at once (nice 19 alone still let hashes delay it by milliseconds).
    """
    with contextlib.suppress(AttributeError, OSError):  # Linux: a thread id is a "process"
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    with contextlib.suppress(AttributeError, OSError):  # 0: the calling thread
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

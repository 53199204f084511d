"""Passwords and tokens: argon2id hashes computed off the trio thread, random tokens."""

from __future__ import annotations

import secrets

import argon2
import trio

from .config import Argon2Params
from .errors import ServiceUnavailable

TOKEN_BYTES = 24  # 192 bits


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


class Passwords:
    """argon2id hashing and verification in worker threads, a bounded number at a time.

    Hashing costs tens of milliseconds and tens of MiB by design: on the trio thread it would
    stall every connection, and trio's default thread limit (40) would exhaust memory.
    """

    def __init__(self, params: Argon2Params, threads: int, queue: int | None = None) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )
        self.limiter = trio.CapacityLimiter(threads)
        self.queue = queue  # how many may wait for a thread; None: any number
        self.computed = 0  # statistics: hashes computed or verified

    async def hash(self, password: str) -> str:
        self._admit()
        self.computed += 1
        return await trio.to_thread.run_sync(self._hasher.hash, password, limiter=self.limiter)

    async def verify(self, password_hash: str, password: str) -> bool:
        self._admit()
        self.computed += 1
        return await trio.to_thread.run_sync(
            self._verify, password_hash, password, limiter=self.limiter
        )

    def _admit(self) -> None:
        """Refuse at once rather than queue without bound behind busy hashing threads."""
        if (
            self.queue is not None
            and self.limiter.available_tokens == 0
            and self.limiter.statistics().tasks_waiting >= self.queue
        ):
            raise ServiceUnavailable("The server is busy checking passwords; try again soon.")

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            return False

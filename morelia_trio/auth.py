"""Passwords and tokens: argon2id hashes computed off the trio thread, random tokens."""

from __future__ import annotations

import secrets

import argon2
import trio

from .config import Argon2Params

TOKEN_BYTES = 24  # 192 bits


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


class Passwords:
    """argon2id hashing and verification in worker threads, a bounded number at a time.

    Hashing costs tens of milliseconds and tens of MiB by design: on the trio thread it would
    stall every connection, and trio's default thread limit (40) would exhaust memory.
    """

    def __init__(self, params: Argon2Params, threads: int) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )
        self.limiter = trio.CapacityLimiter(threads)
        self.computed = 0  # statistics: hashes computed or verified

    async def hash(self, password: str) -> str:
        self.computed += 1
        return await trio.to_thread.run_sync(self._hasher.hash, password, limiter=self.limiter)

    async def verify(self, password_hash: str, password: str) -> bool:
        self.computed += 1
        return await trio.to_thread.run_sync(
            self._verify, password_hash, password, limiter=self.limiter
        )

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            return False

"""Token buckets keyed by address, account or user. Pure: the caller passes the time.

Memory stays bounded whatever clients do: a bucket that has refilled holds no information
and is forgotten, and past ``max_keys`` the least recently used buckets are forgotten too
(forgetting only ever errs towards letting a request through).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from ..config import Rate

K = TypeVar("K")


class Buckets(Generic[K]):
    def __init__(self, rate: Rate, max_keys: int = 100_000) -> None:
        self.burst = float(rate.burst)
        self.per_second = rate.per_minute / 60.0
        self.max_keys = max_keys
        self._buckets: dict[K, tuple[float, float]] = {}  # key -> (tokens, when), LRU order

    def __len__(self) -> int:
        return len(self._buckets)

    def tokens(self, key: K, now: float) -> float:
        """How many requests ``key`` may make right now."""
        found = self._buckets.get(key)
        if found is None:
            return self.burst
        tokens, when = found
        return min(self.burst, tokens + (now - when) * self.per_second)

    def allows(self, key: K, now: float) -> bool:
        """Whether ``key`` may make one more request, without taking it."""
        return self.tokens(key, now) >= 1.0

    def take(self, key: K, now: float) -> bool:
        """Take one request's token if there is one; say whether there was."""
        tokens = self.tokens(key, now)
        if tokens < 1.0:
            return False
        self._store(key, tokens - 1.0, now)
        return True

    def charge(self, key: K, now: float) -> None:
        """Take one token even if none is left (a failure that already happened)."""
        self._store(key, max(0.0, self.tokens(key, now) - 1.0), now)

    def spend(self, key: K, now: float, most_owed: float) -> float:
        """Take one token, on credit if none is left; return the balance after it.

        A balance below zero is what ``key`` owes: it was refused, and keeps owing until the
        rate pays its debt back. It owes ``most_owed`` at most, so that its wait is bounded.
        """
        left = max(-most_owed, self.tokens(key, now) - 1.0)
        self._store(key, left, now)
        return left

    def _store(self, key: K, tokens: float, now: float) -> None:
        self._buckets.pop(key, None)  # re-inserted last: the dict stays in LRU order
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._forget(now)

    def _forget(self, now: float) -> None:
        full = [key for key in self._buckets if self.tokens(key, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        excess = len(self._buckets) - self.max_keys * 3 // 4
        for key in list(self._buckets)[: max(0, excess)]:
            del self._buckets[key]


class Bucket:
    """One token bucket, for one connection's frames."""

    __slots__ = ("burst", "per_second", "tokens", "when")

    def __init__(self, rate: Rate, now: float) -> None:
        self.burst = self.tokens = float(rate.burst)
        self.per_second = rate.per_minute / 60.0
        self.when = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.when) * self.per_second)
        self.when = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

"""The server's abuse limits, shared by every connection (see ``config.AbuseLimits``).

Each check raises the error the client hears, before any costly work is done: a login is
refused before its password is hashed. With the limits off (``--no-limits``) every check
passes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .config import AbuseLimits
from .core.errors import TooManyRequests
from .core.ratelimit import Bucket, Buckets


class Guard:
    def __init__(
        self, limits: AbuseLimits | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.connections: Counter[str] = Counter()  # open connections per address
        # Refusals by the AbuseLimits field that made them: read by the metrics at a scrape.
        self.refusals: Counter[str] = Counter()
        if limits is not None:
            self._logins = Buckets[str](limits.logins_per_address)
            self._failures_here = Buckets[tuple[int, str]](
                limits.login_failures_per_account_and_address
            )
            self._failures = Buckets[int](limits.login_failures_per_account)
            self._registrations = Buckets[str](limits.registrations_per_address)
            self._messages = Buckets[int](limits.messages_per_user)
            self._flows = Buckets[int](limits.flows_per_user)
            self._address_frames = Buckets[str](limits.frames_per_address)
        # Each open connection's way to be closed for its address's flood, by address.
        self._ousters: dict[str, set[Callable[[], None]]] = {}
        # Checked by the state owner, on every message: plain attributes, not properties.
        self.storage_quota = None if limits is None else limits.storage_quota_bytes
        self.max_owned_flows = None if limits is None else limits.max_owned_flows

    # --- connections ---------------------------------------------------------------------

    def admit(self, address: str) -> tuple[int, str] | None:
        """Count a new connection in, or say (HTTP status, why) it is refused."""
        limits = self.limits
        if limits is not None:
            if self.connections[address] >= limits.connections_per_address:
                self.refusals["connections_per_address"] += 1
                return 429, "Too many connections from this address.\n"
            if self.connections.total() >= limits.max_connections:
                self.refusals["max_connections"] += 1
                return 503, "The server is full; try again later.\n"
        self.connections[address] += 1
        return None

    def release(self, address: str) -> None:
        self.connections[address] -= 1
        if self.connections[address] <= 0:
            del self.connections[address]

    def frame_bucket(self) -> Bucket | None:
        """A new connection's allowance of frames."""
        if self.limits is None:
            return None
        return Bucket(self.limits.frames_per_connection, self.clock())

    @contextmanager
    def watch_for_floods(self, address: str, oust: Callable[[], None]) -> Iterator[None]:
        """While the block runs, ``oust()`` is called if ``address`` keeps flooding."""
        ousters = self._ousters.setdefault(address, set())
        ousters.add(oust)
        try:
            yield
        finally:
            ousters.discard(oust)
            if not ousters:
                del self._ousters[address]

    def address_frame(self, address: str) -> bool:
        """Charge one frame to ``address``'s budget; say whether it may be answered.

        Frames beyond the budget are refused (429) and owed until the rate pays them back.
        Not "refused in a row", as on one connection: connections that share the flood
        between them are each let through often enough never to be refused many times in a
        row. An address that owes ``flood_strikes`` frames has kept flooding: every one of
        its connections is ousted (closed with 1008), this one included.
        """
        limits = self.limits
        if limits is None:
            return True
        strikes = limits.flood_strikes
        left = self._address_frames.spend(address, self.clock(), most_owed=strikes)
        if left < 0:
            self.refusals["frames_per_address"] += 1
        if left <= -strikes:
            for oust in list(self._ousters.get(address, ())):
                oust()
        return left >= 0

    # --- requests --------------------------------------------------------------------------

    def login_attempt(self, address: str) -> None:
        if self.limits is not None and not self._logins.take(address, self.clock()):
            self.refusals["logins_per_address"] += 1
            raise TooManyRequests("Too many login attempts from this address; wait a minute.")

    def account_may_try(self, user_id: int, address: str) -> None:
        """Wrong passwords are counted per account and address, so that one guesser locks
        only itself out, and per account, so that many guessers together get few guesses."""
        if self.limits is None:
            return
        now = self.clock()
        if not self._failures_here.allows((user_id, address), now):
            self.refusals["login_failures_per_account_and_address"] += 1
            raise TooManyRequests(
                "Too many wrong passwords for this account from this address; wait a minute."
            )
        if not self._failures.allows(user_id, now):
            self.refusals["login_failures_per_account"] += 1
            raise TooManyRequests("Too many wrong passwords for this account; try again later.")

    def wrong_password(self, user_id: int, address: str) -> None:
        if self.limits is not None:
            now = self.clock()
            self._failures_here.charge((user_id, address), now)
            self._failures.charge(user_id, now)

    def registration(self, address: str) -> None:
        if self.limits is not None and not self._registrations.take(address, self.clock()):
            self.refusals["registrations_per_address"] += 1
            raise TooManyRequests("Too many registrations from this address; wait a minute.")

    def may_post(self, user_id: int | None) -> None:
        """Checked before a message is sent or edited; charged only once it was (``posted``),
        so nobody can use up another user's allowance with requests that fail."""
        if self.limits is not None:
            self._may(self._messages, user_id, "messages_per_user", "Too many messages; slow down.")

    def posted(self, user_id: int | None) -> None:
        if self.limits is not None and user_id is not None:
            self._messages.charge(user_id, self.clock())

    def may_add_flow(self, user_id: int | None) -> None:
        """Checked before a flow is created, charged only once it was (``added_flow``)."""
        if self.limits is not None:
            why = "Too many new flows; wait a while before creating another."
            self._may(self._flows, user_id, "flows_per_user", why)

    def added_flow(self, user_id: int | None) -> None:
        if self.limits is not None and user_id is not None:
            self._flows.charge(user_id, self.clock())

    def _may(self, allowance: Buckets[int], user_id: int | None, limit: str, why: str) -> None:
        """Refuse (and count it) if ``user_id`` has spent ``allowance``; anonymous requests
        pass, as they fail their authentication next."""
        if user_id is not None and not allowance.allows(user_id, self.clock()):
            self.refusals[limit] += 1
            raise TooManyRequests(why)

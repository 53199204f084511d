"""One task that times every peer, so that timing a frame costs two attribute writes.

A connection times its peer, never its own answer: reading a frame and sending a reply are
timed, answering is not. With one trio cancel scope per connection that meant moving its
deadline twice per frame (to infinity while answering, back for the send), and each move goes
through trio's deadline heap, a cost per frame that showed in the server's work per message.

Here a connection only writes when its peer is next due, and the watchdog looks at every
connection once a tick and cancels the scope of any whose peer is late. A timeout so fires up
to a tick late; the tick is a tenth of the shortest peer timeout (at most 1 s).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from .config import Timeouts

MIN_TICK = 0.01  # seconds: a floor, so tiny test timeouts do not make the watchdog spin


class PeerTimer:
    """One connection's timer: its scope is cancelled once ``due`` (trio time) has passed."""

    __slots__ = ("due", "scope")

    def __init__(self) -> None:
        self.due = math.inf
        self.scope = trio.CancelScope()

    def restart(self) -> trio.CancelScope:
        """A fresh scope, not yet due (a cancelled scope cannot be used again)."""
        self.due = math.inf
        self.scope = trio.CancelScope()
        return self.scope

    def expire_in(self, seconds: float) -> None:
        self.due = trio.current_time() + seconds

    def stop(self) -> None:
        self.due = math.inf


class Watchdog:
    def __init__(self, timeouts: Timeouts) -> None:
        shortest = min(timeouts.ping_interval, timeouts.idle, timeouts.send)
        self.tick = min(1.0, max(MIN_TICK, shortest / 10))
        self._timers: set[PeerTimer] = set()

    @contextmanager
    def timer(self) -> Iterator[PeerTimer]:
        """A timer watched until the block ends."""
        timer = PeerTimer()
        self._timers.add(timer)
        try:
            yield timer
        finally:
            self._timers.discard(timer)

    def cancel_late(self, now: float) -> None:
        for timer in self._timers:
            if timer.due <= now:
                timer.scope.cancel()
                timer.due = math.inf  # once is enough; the connection restarts its timer

    async def run(self) -> None:
        while True:
            await trio.sleep(self.tick)
            self.cancel_late(trio.current_time())

"""The watchdog's rule, without a network: only a peer that is due is cut off.

(Async only because cancelling a trio cancel scope needs a running trio.)
"""

from __future__ import annotations

import math

from morelia_trio.config import Timeouts
from morelia_trio.watchdog import MIN_TICK, Watchdog


async def test_only_timers_that_are_due_are_cancelled_and_only_while_watched() -> None:
    watchdog = Watchdog(Timeouts())
    with watchdog.timer() as late, watchdog.timer() as early, watchdog.timer() as answering:
        late.due, early.due = 10.0, 12.0
        answering.stop()  # answering: not timed at all
        watchdog.cancel_late(11.0)
        cancelled = [t.scope.cancel_called for t in (late, early, answering)]
        assert cancelled == [True, False, False]
        assert late.due == math.inf  # cancelled once, not again on every tick
        assert not late.restart().cancel_called  # a fresh scope for the next frame
    watchdog.cancel_late(math.inf)  # the blocks have ended: nothing is watched any more
    assert not early.scope.cancel_called


def test_the_tick_is_a_tenth_of_the_shortest_peer_timeout_between_bounds() -> None:
    assert Watchdog(Timeouts()).tick == 1.0  # 20 s timeouts: at most 1 s
    assert Watchdog(Timeouts(send=0.5)).tick == 0.05
    assert Watchdog(Timeouts(idle=0.001)).tick == MIN_TICK

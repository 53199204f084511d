"""A server sharing a stream stops while records still arrive from the stream's thread."""

from __future__ import annotations

import trio

from morelia_trio.cluster.node import SharedLog, run_shared_store
from morelia_trio.cluster.stream import Listener, Outgoing, Record
from morelia_trio.core.state import State


class QuietStream:
    """What the owner needs of a stream, holding nothing: records come only when a test says."""

    def __init__(self) -> None:
        self.listener = Listener()

    async def follow(self, start: int) -> None:
        return None

    def publish(self, batch: list[Outgoing]) -> None:
        return None

    async def last_seq(self) -> tuple[int, int]:
        return 0, 0


async def test_records_arriving_after_the_owner_stopped_are_let_go(deadline: None) -> None:
    state, stream = State(), QuietStream()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_shared_store, state, stream, SharedLog(state), 5.0)
        nursery.cancel_scope.cancel()  # as SIGTERM stops the server
    # The stream's thread hands over a batch it read before it was closed: the owner is
    # gone, and the batch must not raise into trio's own task (which ends the process).
    stream.listener.records([Record(1, 0.0, b"")])
    stream.listener.refused(1, "too late")

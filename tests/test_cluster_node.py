"""The owner of a server sharing a stream, against a stream the test plays (no NATS):
what it answers when records are late or the log goes away."""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio

from morelia_trio.cluster.node import SharedLog, run_shared_store
from morelia_trio.cluster.stream import Listener, Outgoing, Record
from morelia_trio.core import commands, queries
from morelia_trio.core.errors import ServiceUnavailable
from morelia_trio.core.state import State, hash_token
from morelia_trio.store import Store

PATIENCE = 0.5


class PlayedStream:
    """Holds what is appended; delivers it, or not, and says where it ends, as told."""

    def __init__(self) -> None:
        self.listener = Listener()
        self.appended: list[Outgoing] = []
        self.end = 0  # what last_seq answers
        self.answers = trio.Event()  # last_seq waits for it to be set

    async def follow(self, start: int) -> None:
        return None

    def publish(self, batch: list[Outgoing]) -> None:
        self.appended.extend(batch)

    async def last_seq(self) -> tuple[int, int]:
        await self.answers.wait()
        return 1, self.end

    def deliver(self, seq: int, outgoing: Outgoing, stored_at: float) -> None:
        self.listener.records([Record(seq, stored_at, outgoing.data)])


async def started(nursery: trio.Nursery, stream: PlayedStream) -> tuple[Store, SharedLog]:
    state = State()
    shared = SharedLog(state)
    store, _ = await nursery.start(run_shared_store, state, stream, shared, PATIENCE)
    return store, shared


def register(now: float) -> tuple[Any, ...]:
    return ("ann", "hash", None, None, hash_token("t"), now)


async def test_reads_go_on_from_the_state_when_the_records_never_come(deadline: None) -> None:
    """The stream said it ends at record 5, then the log went away before bringing them."""
    stream = PlayedStream()
    stream.end = 5
    stream.answers.set()
    async with trio.open_nursery() as nursery:
        store, _ = await started(nursery, stream)
        with trio.move_on_after(PATIENCE / 2):
            await store.call(queries.find_login, "ann")
            pytest.fail("answered before the state reached the stream's end")
        stream.listener.connection(False)
        with pytest.raises(Exception, match=r"user\.login"), trio.fail_after(5):
            await store.call(queries.find_login, "ann")  # from this state: no such user
        nursery.cancel_scope.cancel()


async def test_a_change_past_its_deadline_waits_for_the_log_to_tell_whether_it_was_stored(
    deadline: None,
) -> None:
    """Stored before its deadline, but the connection broke before it came back: no 503
    until the stream is read again, and then the change's own answer."""
    stream = PlayedStream()
    stream.answers.set()
    async with trio.open_nursery() as nursery:
        store, _ = await started(nursery, stream)
        answers: list[object] = []
        answered = trio.Event()

        async def change() -> None:
            answers.append(await store.call(commands.register_user, *register(time.time())))
            answered.set()

        nursery.start_soon(change)
        await trio.sleep(0.1)  # checked and appended
        stored_at = time.time()
        stream.listener.connection(False)
        stream.answers = trio.Event()  # nothing answers while the log is away
        await trio.sleep(PATIENCE + 2)  # its deadline, and the clocks' margin, pass
        assert answers == []  # no 503: nobody knows yet whether it was stored
        [sent] = stream.appended
        stream.deliver(1, sent, stored_at=stored_at)  # in time
        stream.end = 1
        stream.listener.connection(True)
        stream.answers.set()
        with trio.fail_after(5):
            await answered.wait()
        assert type(answers[0]).__name__ == "UserRegistered"
        nursery.cancel_scope.cancel()


async def test_a_change_the_stream_never_got_is_refused_once_read_to_its_end(
    deadline: None,
) -> None:
    stream = PlayedStream()
    stream.answers.set()
    async with trio.open_nursery() as nursery:
        store, _ = await started(nursery, stream)
        started_at = time.monotonic()
        with pytest.raises(ServiceUnavailable), trio.fail_after(5):
            await store.call(commands.register_user, *register(time.time()))
        assert time.monotonic() - started_at >= PATIENCE  # not before its deadline
        # Stored late after all (a retry, say): every server refuses it.
        [sent] = stream.appended
        stream.deliver(1, sent, stored_at=time.time())
        stream.end = 1
        with pytest.raises(Exception, match=r"user\.login"), trio.fail_after(5):
            await store.call(queries.find_login, "ann")
        nursery.cancel_scope.cancel()

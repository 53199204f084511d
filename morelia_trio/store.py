"""The state owner: one task holds the state; every other task asks it through a channel.

A core function that returns an Event is a command: the owner appends the event to the
journal and applies it, in one turn. Anything else is a query. Either way the caller does not
hear the answer until the journal holds everything the answer could have seen, so no reply
ever reveals or acknowledges a change that a crash could still take back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec
import outcome
import trio

from . import core
from .errors import MoreliaError
from .journal import Journal
from .models import Event

T = TypeVar("T")


class _Reply(Generic[T]):
    """One-shot slot: the owner fills it once, never blocking; the caller awaits it."""

    __slots__ = ("_done", "_result", "seq")

    def __init__(self) -> None:
        self._done = trio.Event()
        self._result: outcome.Outcome[T] | None = None
        self.seq = 0  # the journal position the answer may depend on

    def resolve(self, result: outcome.Outcome[T], seq: int) -> None:
        self._result = result
        self.seq = seq
        self._done.set()

    async def wait(self) -> outcome.Outcome[T]:
        await self._done.wait()
        assert self._result is not None
        return self._result


class _Job(msgspec.Struct, Generic[T]):
    fn: Callable[..., T]
    args: tuple[object, ...]
    reply: _Reply[T]
    rotate: bool = False  # a snapshot capture: the journal starts a new file after it


class Statistics(msgspec.Struct, frozen=True):
    commands: int
    queries: int
    seq: int
    journal_batches: int


class Store:
    """The callers' handle on the state owner."""

    def __init__(self, send: trio.MemorySendChannel[_Job[object]], journal: Journal) -> None:
        self._send = send
        self.journal = journal
        self.commands = 0
        self.queries = 0

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(state, *args)`` in the owner and return its result once it is durable.

        Raises:
            MoreliaError: whatever ``fn`` raised for the client to hear.
        """
        return await self._run(_Job(fn, args, _Reply()))

    async def capture(self) -> core.Capture:
        """A consistent view of the whole state; the journal starts a new file after it."""
        return await self._run(_Job(core.capture, (), _Reply(), rotate=True))

    async def _run(self, job: _Job[T]) -> T:
        await self._send.send(job)  # type: ignore[arg-type]  # the owner is generic over T
        result = await job.reply.wait()
        await self.journal.wait_durable(job.reply.seq)
        return result.unwrap()

    def statistics(self) -> Statistics:
        return Statistics(self.commands, self.queries, self.journal.appended, self.journal.batches)


async def run_store(
    state: core.State,
    journal: Journal,
    *,
    task_status: trio.TaskStatus[Store] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Own ``state`` until cancelled. Awaits nothing but its channel: each job is atomic."""
    send, receive = trio.open_memory_channel[_Job[object]](0)
    store = Store(send, journal)
    task_status.started(store)
    async with receive:
        async for job in receive:
            try:
                result = job.fn(state, *job.args)
            except MoreliaError as exc:  # the client's problem: nothing was changed
                # (an error may reveal a change too, such as a login just taken)
                job.reply.resolve(outcome.Error(exc), journal.appended)
                continue
            if isinstance(result, Event):
                try:
                    seq = journal.append(result)  # type: ignore[arg-type]  # an AnyEvent
                except MoreliaError as exc:  # the journal has failed: change nothing
                    job.reply.resolve(outcome.Error(exc), 0)
                    continue
                core.apply(state, result)  # type: ignore[arg-type]
                state.seq = seq
                store.commands += 1
            else:
                store.queries += 1
            if job.rotate:
                journal.rotate()
            job.reply.resolve(outcome.Value(result), journal.appended)

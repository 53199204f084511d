"""The state owner: one task holds the state; every other task asks it through a channel.

A core function that returns an Event is a command: the owner appends the event to the
journal and applies it, in one turn. Anything else is a query. Either way the caller does not
hear the answer until the journal holds everything the answer could have seen, so no reply
ever reveals or acknowledges a change that a crash could still take back.

This is the hot path of every request, so it is built from trio's lowest-level parts: a
caller parks once and is woken once, with its answer, when that answer is durable; the owner
takes every job waiting in the channel each time it wakes.

A full disk: the owner applies an event as soon as it is appended, so when the journal cuts
records it could not write, the state holds changes the disk does not. Before its next job
the owner rebuilds the state from the data directory, as a restart would: correct for every
field the state has or will have, with no undo per event. While the journal is degraded, a
change let through as a probe is stored first and applied only once it is on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar, TypeVarTuple, cast

import msgspec
import outcome
import trio

from .core.errors import MoreliaError
from .core.events import AnyEvent, Event
from .core.snapshot_format import Captured
from .core.state import State, apply, capture
from .live import Publisher
from .persistence.port import EventLog, LogHealth, StorageFailed, refused

log = logging.getLogger(__name__)

T = TypeVar("T")
Args = TypeVarTuple("Args")

QUEUE = 1024  # jobs waiting for the owner; beyond it, callers wait to hand theirs over


class Job(Generic[T]):
    """One request to the owner, and the task waiting for its answer."""

    __slots__ = ("abandoned", "args", "fn", "rotate", "task")

    def __init__(self, fn: Callable[..., T], args: tuple[object, ...], rotate: bool) -> None:
        self.fn = fn
        self.args = args
        self.rotate = rotate  # a snapshot capture: the journal starts a new file after it
        self.task = trio.lowlevel.current_task()
        self.abandoned = False  # the caller was cancelled: nobody is waiting any more

    def answer(self, result: outcome.Outcome[T]) -> None:
        """Wake the caller with its answer (the journal calls this once it is durable)."""
        if not self.abandoned:
            trio.lowlevel.reschedule(self.task, result)

    def abandon(self, _: object) -> trio.lowlevel.Abort:
        # The owner may still carry the job out, but nobody will acknowledge it.
        self.abandoned = True
        return trio.lowlevel.Abort.SUCCEEDED


class Statistics(msgspec.Struct, frozen=True):
    commands: int
    queries: int
    seq: int
    journal_batches: int


class Store:
    """The callers' handle on the state owner."""

    def __init__(self, send: trio.MemorySendChannel[Job[Any]], event_log: LogHealth) -> None:
        self._send = send
        self.event_log = event_log
        self.publisher = Publisher()  # live updates: the owner tells it of each change
        self.commands = 0
        self.queries = 0

    async def call(self, fn: Callable[[State, *Args], T], *args: *Args) -> T:
        """Run ``fn(state, *args)`` in the owner and return its result once it is durable.

        Typed so that mypy checks ``args`` against ``fn``'s parameters after the state.

        Raises:
            MoreliaError: whatever ``fn`` raised for the client to hear.
        """
        return await self._run(Job(fn, args, rotate=False))

    async def capture(self) -> Captured:
        """A consistent view of the whole state; the journal starts a new file after it."""
        return await self._run(Job(capture, (), rotate=True))

    async def _run(self, job: Job[T]) -> T:
        # Every call of every request comes through here: one park, one wake-up, no more.
        try:
            self._send.send_nowait(job)
        except trio.WouldBlock:  # the owner is behind: wait for room (and yield)
            await self._send.send(job)
        result: T = await trio.lowlevel.wait_task_rescheduled(job.abandon)
        return result  # a checkpoint whichever way the job went in

    def queued(self) -> int:
        """Jobs waiting for the owner (the metrics' owner queue depth)."""
        channel = self._send.statistics()
        return channel.current_buffer_used + channel.tasks_waiting_send

    def statistics(self) -> Statistics:
        return Statistics(
            self.commands, self.queries, self.event_log.appended, self.event_log.batches
        )


async def run_store(
    state: State,
    event_log: EventLog,
    *,
    task_status: trio.TaskStatus[Store] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Own ``state`` until cancelled. Each job is atomic: the owner awaits nothing but its
    channel, save after a full disk (a rebuild, a probe's write), when the others wait."""
    send, receive = trio.open_memory_channel[Job[Any]](QUEUE)
    store = Store(send, event_log)
    task_status.started(store)
    async with receive:
        while True:
            job = await receive.receive()
            while True:  # everything that queued up while the owner slept, in one turn
                if state.seq != event_log.appended:  # the journal lost records: see the top
                    await _rebuild(state, event_log)
                probe = _carry_out(job, state, event_log, store)
                if probe is not None:
                    await _store_then_apply(job, probe, state, event_log, store)
                try:
                    job = receive.receive_nowait()
                except trio.WouldBlock:
                    break


def _carry_out(job: Job[Any], state: State, event_log: EventLog, store: Store) -> AnyEvent | None:
    """Carry out one job; return its event instead if it is a probe of a degraded journal."""
    try:
        result = job.fn(state, *job.args)
    except MoreliaError as exc:  # the client's problem: nothing was changed
        # (an error may reveal a change too, such as a login just taken)
        event_log.deliver(job.answer, outcome.Error(exc), event_log.appended)
        return None
    except Exception as exc:  # a bug in deciding: nothing was changed, so serve on (a 500)
        job.answer(outcome.Error(exc))
        return None
    if isinstance(result, Event):
        event = cast("AnyEvent", result)  # every Event subclass is one of AnyEvent
        if event_log.take_probe():
            return event
        try:
            seq = event_log.append(event)
        # The journal refuses changes (a MoreliaError, the client hears 503), or a bug made
        # an event it cannot encode (a 500): either way nothing was changed, so serve on.
        except Exception as exc:
            job.answer(outcome.Error(exc))
            return None
        apply(state, event)
        state.seq = seq
        store.commands += 1
        if store.publisher.count:  # nobody subscribed: nothing to pick, nothing to render
            _announce(store.publisher, state, event, seq, event_log)
    else:
        store.queries += 1
    if job.rotate:  # a snapshot's capture: answered once the journal has moved on
        event_log.rotate(job.answer, outcome.Value(result))
    else:
        event_log.deliver(job.answer, outcome.Value(result), event_log.appended)
    return None


async def _store_then_apply(
    job: Job[Any], event: AnyEvent, state: State, event_log: EventLog, store: Store
) -> None:
    """Try a degraded journal with one change: applied only once it is stored, so a disk
    still full leaves nothing to undo. Every other job waits meanwhile."""
    try:
        seq = event_log.append(event, probe=True)
    except Exception as exc:  # as in _carry_out
        job.answer(outcome.Error(exc))
        return
    if not await event_log.stored(seq):
        job.answer(outcome.Error(refused()))
        return
    apply(state, event)
    state.seq = seq
    store.commands += 1
    if store.publisher.count:
        _announce(store.publisher, state, event, seq, event_log)
    job.answer(outcome.Value(event))


def _announce(
    publisher: Publisher, state: State, event: AnyEvent, seq: int, event_log: EventLog
) -> None:
    """Have the subscribers hear of ``event`` once the log has made it durable (CONTRACT
    §8.2): the same wait as a reply's, so no update tells of a change a crash could undo."""
    try:
        change = publisher.changed(state, event, seq)
    except Exception:  # a bug in live updates must not stop the owner: the change stands
        log.exception("Bug while picking the live update of record %d", seq)
        return
    if change is not None:
        event_log.deliver(publisher.publish, outcome.Value(change), seq)


async def _rebuild(state: State, event_log: EventLog) -> None:
    """Make ``state`` what the journal's files hold, in place (the server holds it too)."""
    fresh = await event_log.replay()
    if fresh.seq != event_log.appended:
        raise StorageFailed(f"the event log ends at record {fresh.seq}, not {event_log.appended}")
    vars(state).clear()
    vars(state).update(vars(fresh))
    log.debug("State rebuilt at record %d", fresh.seq)

"""One server of several sharing a stream: the state owner when commands are the log.

Every server holds the whole state and applies the stream's records, in stream order, with
the same code: a record is a command (``core.shared_commands``), decided against the state
it meets there. So decisions are taken in one order, the stream's, identical everywhere: of
two servers registering one login at once, the command stored first wins on every server and
the other gets 409 on every server. Nothing is applied before the stream has stored it (with
replicas, its quorum), so a reply never acknowledges what a crash could take back.

A change: the owner checks it against its state first (cheap, and keeps refused requests
out of the stream), appends the command, and answers the caller when the record comes back
and is decided. A read: the owner asks the stream where it ends, and answers once it has
applied that far, so every read sees every change acknowledged before it began, through any
server (linearizable reads; a batch of reads shares one question). A change refused at the
first check is checked again in the same way before the client hears the error.

A change the stream may or may not have stored (a lost connection, a timeout) carries a
deadline: a record stored after it is refused by every server. Past the deadline the owner
reads the stream to its end; if the record is not there, it never will be, and the caller
hears 503 (while the log is away nobody knows: the caller waits for it). Nothing
half-happens.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import outcome
import trio

from ..core import shared_commands
from ..core.errors import MoreliaError
from ..core.events import Event
from ..core.state import State, apply, capture
from ..live import Publisher
from ..persistence.port import Gauge, StorageFailed, StorageObserver, Unobserved, refused
from ..store import QUEUE, Job, Store
from .directory import restored
from .stream import Listener, Outgoing, Record, SharedStream

log = logging.getLogger(__name__)

CLOCK_MARGIN: Final = 1.0  # how far the servers' and the stream's clocks may disagree
EXPIRY_CHECK: Final = 0.25
RECONNECT_GRACE: Final = 1.5  # seconds without the log before changes are refused at once


class LogAway(OSError):
    """The shared log cannot be reached: changes are refused, reads served from the state."""

    def __init__(self) -> None:
        super().__init__(errno.ENOTCONN, "the event log cannot be reached")

    def __str__(self) -> str:
        return str(self.strerror)


Action = Callable[[bool], None]  # run once caught up; the argument: did the barrier work


class SharedLog:
    """What the rest of the server reads of the log (``Store.event_log``): statistics and
    health, as ``persistence.port.EventLog`` names them."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.batches = 0  # crossings to the stream with records to append
        self.failure: OSError | None = None
        self.connected = True
        self.lost_at = 0.0  # when the connection was lost (time.monotonic())
        self.lost = trio.Event()  # set while the connection is lost
        self.node: Node | None = None
        self.observer: StorageObserver = Unobserved()

    @property
    def appended(self) -> int:
        return self.state.seq

    def gauges(self) -> Iterable[Gauge]:
        node = self.node
        yield ("morelia_event_log_connected", "1 while connected to the event log", self.connected)
        yield ("morelia_event_log_record", "The last record of the stream applied", self.state.seq)
        if node is not None:
            yield (
                "morelia_event_log_changes_waiting",
                "Changes appended to the stream and not yet read back",
                len(node.pending),
            )
            yield (
                "morelia_event_log_reads_waiting",
                "Reads (and second checks) waiting to catch up with the stream's end",
                len(node.reads) + sum(len(actions) for _, _, actions in node.caught_up),
            )

    @property
    def away(self) -> bool:
        """Lost for longer than a reconnection takes: changes are refused at once."""
        return not self.connected and time.monotonic() - self.lost_at > RECONNECT_GRACE

    @property
    def degraded(self) -> OSError | None:
        return LogAway() if self.away else None


class Node:
    """The owner's side: applies records, answers callers, asks the stream for barriers."""

    def __init__(
        self, state: State, stream: SharedStream, store: Store, shared: SharedLog, patience: float
    ) -> None:
        self.state = state
        # Seconds a change may wait for the stream (an election of a new leader takes
        # seconds): then every server refuses it. A read waits as long, then is served
        # from this state.
        self.patience = patience
        self.stream = stream
        self.store = store
        self.shared = shared
        self.name = secrets.token_hex(8)  # this run's: a restarted server has no pending calls
        self.numbers = 0
        # By number: the caller, and when (time.monotonic()) its deadline has surely passed.
        self.pending: dict[int, tuple[Job[Any], float]] = {}
        self.expiring: set[int] = set()  # past it: a barrier will tell whether it was stored
        self.unknown: set[int] = set()  # past it, and the log away: asked again later
        self.outbox: list[Outgoing] = []
        self.incoming: collections.deque[Record] = collections.deque()
        self.refusals: list[tuple[int, str]] = []
        self.reads: list[Action] = []  # waiting for the next barrier
        # (where the stream ended, when that was asked, the actions waiting for it)
        self.caught_up: collections.deque[tuple[int | None, float, list[Action]]] = (
            collections.deque()
        )
        self.reads_waiting = trio.Event()
        self.wake: Callable[[], None] = lambda: None
        self.gap = False

    # -- called by the stream (on the trio thread) ----------------------------------------

    def records(self, batch: list[Record]) -> None:
        self.incoming.extend(batch)
        self.wake()

    def refused(self, number: int, reason: str) -> None:
        self.refusals.append((number, reason))
        self.wake()

    def connection(self, connected: bool) -> None:
        shared = self.shared
        if not connected and shared.connected:
            shared.lost_at = time.monotonic()
            shared.lost.set()
        elif connected and not shared.connected:
            shared.lost = trio.Event()
        shared.connected = connected

    # -- the owner's turn ---------------------------------------------------------------

    def take(self, job: Job[Any]) -> None:
        """A caller's job: a capture, a change, or a read."""
        if job.rotate:  # everything in the state is stored already
            job.answer(outcome.Value(capture(self.state)))
            return
        if not shared_commands.is_replicated(job.fn):
            self.after_barrier(lambda _: self.answer_here(job))
            return
        if self.check_then_append(job, first=True):
            self.after_barrier(lambda _: self.check_again(job))

    def check_then_append(self, job: Job[Any], *, first: bool) -> bool:
        """Check a change against this state; append it if it passes. True: refused on a
        first check, to be checked again once the state has caught up."""
        try:
            result = job.fn(self.state, *job.args)
        except MoreliaError as exc:
            if first:
                return True
            job.answer(outcome.Error(exc))
            return False
        except Exception as exc:  # a bug in deciding: nothing changed (a 500)
            job.answer(outcome.Error(exc))
            return False
        if not isinstance(result, Event):  # nothing to do (a bootstrap done already)
            job.answer(outcome.Value(result))
            return False
        if self.shared.away:
            job.answer(outcome.Error(refused()))
            return False
        self.numbers += 1
        number = self.numbers
        deadline = time.time() + self.patience
        try:
            data = shared_commands.encode(self.name, number, deadline, job.fn, job.args)
        except Exception as exc:  # a bug made arguments it cannot encode (a 500)
            job.answer(outcome.Error(exc))
            return False
        self.pending[number] = (job, time.monotonic() + self.patience + CLOCK_MARGIN)
        self.outbox.append(Outgoing(number, f"{self.name}.{number}", data, deadline))
        return False

    def check_again(self, job: Job[Any]) -> None:
        self.check_then_append(job, first=False)

    def answer_here(self, job: Job[Any]) -> None:
        try:
            result = job.fn(self.state, *job.args)
        except Exception as exc:
            job.answer(outcome.Error(exc))
            return
        if isinstance(result, Event):  # a change by a function no record may name: a bug
            log.error("%s changes the state but is no shared command", job.fn.__qualname__)
            job.answer(outcome.Error(TypeError(f"{job.fn.__qualname__} is no shared command")))
            return
        self.store.queries += 1
        job.answer(outcome.Value(result))

    def after_barrier(self, action: Action) -> None:
        self.reads.append(action)
        self.reads_waiting.set()

    def apply_incoming(self) -> None:
        """Decide and apply every record that arrived, in order."""
        state, incoming = self.state, self.incoming
        while incoming:
            record = incoming[0]
            if record.seq <= state.seq:  # delivered again (a consumer restarted)
                incoming.popleft()
                continue
            if record.seq != state.seq + 1:
                self.gap = True  # purged before this server read them: see load_snapshot
                return
            incoming.popleft()
            self.decide(record)
        self.release_reads()

    def decide(self, record: Record) -> None:
        state = self.state
        try:
            command, fn, args = shared_commands.decode(record.data)
        except shared_commands.UnknownCommand as exc:
            # Every server refuses it alike, so the states stay one; say so once.
            log.error("Record %d is no command this server knows (%s)", record.seq, exc)
            state.seq = record.seq
            return
        result: outcome.Outcome[Any]
        event = None
        if record.stored_at > command.deadline:
            result = outcome.Error(refused())
        else:
            try:
                decided = fn(state, *args)  # before seq moves on: bootstrap looks at it
            except MoreliaError as exc:
                result = outcome.Error(exc)
            except Exception as exc:  # the same bug on every server: nothing changed
                log.exception("Bug while deciding record %d", record.seq)
                result = outcome.Error(exc)
            else:
                result = outcome.Value(decided)
                if isinstance(decided, Event):
                    event = decided
                    apply(state, event)  # type: ignore[arg-type]
                    self.store.commands += 1
        state.seq = record.seq
        publisher = self.store.publisher
        if event is not None and publisher.count:
            self.announce(publisher, event, record.seq)
        if command.origin == self.name:
            waiting = self.pending.pop(command.number, None)
            if waiting is not None:
                self.expiring.discard(command.number)
                waiting[0].answer(result)

    def announce(self, publisher: Publisher, event: Any, seq: int) -> None:
        try:
            change = publisher.changed(self.state, event, seq)
        except Exception:  # a bug in live updates must not stop the owner
            log.exception("Bug while picking the live update of record %d", seq)
            return
        if change is not None:
            publisher.publish(outcome.Value(change))

    def release_reads(self) -> None:
        """Run what waited for the state to reach the stream's end, in order. An end the
        records never bring this far (the log went away meanwhile, or waited out
        ``patience``) lets its reads go on from this state."""
        caught_up, seq, now = self.caught_up, self.state.seq, time.monotonic()
        while caught_up:
            reached, asked, actions = caught_up[0]
            if reached is None:
                ok = False
            elif reached <= seq:
                ok = True
            elif self.shared.away or now - asked > self.patience:
                ok = False
            else:
                break
            caught_up.popleft()
            for action in actions:
                action(ok)

    def settle(self) -> None:
        """End of a turn: refusals answered, deadlines watched, the outbox sent."""
        for number, reason in self.refusals:
            waiting = self.pending.pop(number, None)
            if waiting is not None:
                log.warning("A change was not stored: %s", reason)
                waiting[0].answer(outcome.Error(refused()))
        self.refusals.clear()
        now = time.monotonic()
        for number, (_, expired) in self.pending.items():
            if expired > now:
                break  # numbered in deadline order
            if number not in self.expiring:
                self.expiring.add(number)
                self.after_barrier(lambda ok, number=number: self.expire(number, ok))  # type: ignore[misc]
        if self.outbox:
            self.shared.batches += 1
            self.stream.publish(self.outbox)
            self.outbox = []

    def expire(self, number: int, read_to_the_end: bool) -> None:
        """After a change's deadline the stream was read to its end: not there, never there.
        Without that read (the log is away) nobody knows: the caller waits for the log."""
        waiting = self.pending.get(number)
        if waiting is None:  # decided meanwhile
            self.expiring.discard(number)
        elif read_to_the_end:
            del self.pending[number]
            self.expiring.discard(number)
            waiting[0].answer(outcome.Error(refused()))
        else:
            self.unknown.add(number)

    async def load_snapshot(self) -> None:
        """The stream was purged past this state: start again from its newest snapshot.
        Every other job waits meanwhile; a failure to get it is tried again."""
        try:
            newest = await self.stream.newest_snapshot()
        except Exception as exc:  # the log is flaky now: try again soon
            log.warning("Could not read the event log's snapshot: %s", exc)
            await trio.sleep(EXPIRY_CHECK)
            return
        first = self.incoming[0].seq if self.incoming else None
        if newest is None or (first is not None and newest[0] + 1 < first):
            raise StorageFailed(
                f"the event log lacks records {self.state.seq + 1} to {first} "
                "and holds no snapshot that covers them"
            )
        seq, data = newest
        where = Path(f"{self.stream.address.snapshots}/{seq}")
        fresh = await trio.to_thread.run_sync(restored, data, where)
        vars(self.state).clear()
        vars(self.state).update(vars(fresh))
        self.gap = False
        log.info("Loaded the event log's snapshot at record %d", seq)

    # -- the tasks ------------------------------------------------------------------------

    async def run_barriers(self) -> None:
        """Ask where the stream ends for each batch of reads; hand the answer to the owner."""
        while True:
            await self.reads_waiting.wait()
            self.reads_waiting = trio.Event()
            actions, self.reads = self.reads, []
            asked = time.monotonic()
            reached = await self.stream_end()
            self.caught_up.append((reached, asked, actions))
            self.wake()

    async def stream_end(self) -> int | None:
        """Where the stream ends now; None once the log is away or after ``patience``
        (reads are then served from this state)."""
        reached: int | None = None
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                nonlocal reached
                try:
                    with trio.fail_after(self.patience):
                        reached = (await self.stream.last_seq())[1]
                except Exception as exc:
                    log.debug("No barrier: %s", exc)
                nursery.cancel_scope.cancel()

            async def give_up_once_away() -> None:
                shared = self.shared
                await shared.lost.wait()
                await trio.sleep(max(0.0, shared.lost_at + RECONNECT_GRACE - time.monotonic()))
                if shared.away:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(ask)
            nursery.start_soon(give_up_once_away)
        return reached

    async def watch_deadlines(self) -> None:
        """Wake the owner now and then while anything waits on a clock."""
        while True:
            await trio.sleep(EXPIRY_CHECK)
            self.expiring -= self.unknown  # asked again, a barrier a turn
            self.unknown.clear()
            if self.pending or self.caught_up:
                self.wake()


async def run_shared_store(
    state: State,
    stream: SharedStream,
    shared: SharedLog,
    patience: float,
    *,
    task_status: trio.TaskStatus[tuple[Store, Node]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Own ``state`` as one server of those sharing ``stream``, until cancelled."""
    send, receive = trio.open_memory_channel[Job[Any]](QUEUE)
    store = Store(send, shared)
    node = Node(state, stream, store, shared, patience)
    shared.node = node
    wake_up = Job(_nothing, (), rotate=False)

    def wake() -> None:
        # WouldBlock: the owner has jobs waiting, and sees the records too. Closed: the
        # owner has stopped, and the stream may still deliver a record or two.
        with contextlib.suppress(
            trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError
        ):
            send.send_nowait(wake_up)

    node.wake = wake
    stream.listener = Listener(node.records, node.refused, node.connection)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node.run_barriers)
        nursery.start_soon(node.watch_deadlines)
        await stream.follow(state.seq + 1)
        task_status.started((store, node))
        async with receive:
            while True:
                job = await receive.receive()
                while True:
                    node.apply_incoming()
                    if node.gap:
                        await node.load_snapshot()
                        node.apply_incoming()
                    if job is not wake_up:
                        node.take(job)
                    try:
                        job = receive.receive_nowait()
                    except trio.WouldBlock:
                        break
                node.settle()


def _nothing(state: State) -> None:
    return None

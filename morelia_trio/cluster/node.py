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
hears 503. Nothing half-happens.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import json
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import outcome
import trio

from ..core import shared_commands
from ..core.errors import MoreliaError
from ..core.events import Event
from ..core.snapshot_format import Captured, decode, encode
from ..core.state import State, apply, capture, restore
from ..live import Publisher
from ..persistence.files import write_atomic
from ..persistence.port import StorageFailed, StorageObserver, Unobserved, refused
from ..store import QUEUE, Job, Store
from .stream import Listener, Outgoing, Record, SharedStream

log = logging.getLogger(__name__)

COMMAND_TTL: Final = 5.0  # seconds a command has to be stored; later, every server refuses it
CLOCK_MARGIN: Final = 1.0  # how far the servers' and the stream's clocks may disagree
EXPIRY_CHECK: Final = 0.25
BARRIER_TIMEOUT: Final = 2.0  # a stream without a leader: reads wait this long, then go on
IDENTITY_NAME: Final = "event-log.json"  # which stream a data directory's snapshot belongs to
LOCAL_SNAPSHOT: Final = "snapshot.msgpack"


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
        self.observer: StorageObserver = Unobserved()

    @property
    def appended(self) -> int:
        return self.state.seq

    @property
    def degraded(self) -> OSError | None:
        return None if self.connected else LogAway()


class Node:
    """The owner's side: applies records, answers callers, asks the stream for barriers."""

    def __init__(self, state: State, stream: SharedStream, store: Store, shared: SharedLog):
        self.state = state
        self.stream = stream
        self.store = store
        self.shared = shared
        self.name = secrets.token_hex(8)  # this run's: a restarted server has no pending calls
        self.numbers = 0
        self.pending: dict[int, tuple[Job[Any], float]] = {}  # by number: the caller, deadline
        self.expiring: set[int] = set()
        self.outbox: list[Outgoing] = []
        self.incoming: collections.deque[Record] = collections.deque()
        self.refusals: list[tuple[int, str]] = []
        self.reads: list[Action] = []  # waiting for the next barrier
        self.caught_up: collections.deque[tuple[int | None, list[Action]]] = collections.deque()
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
        self.shared.connected = connected

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
        if not self.shared.connected:
            job.answer(outcome.Error(refused()))
            return False
        self.numbers += 1
        number = self.numbers
        deadline = time.time() + COMMAND_TTL
        try:
            data = shared_commands.encode(self.name, number, deadline, job.fn, job.args)
        except Exception as exc:  # a bug made arguments it cannot encode (a 500)
            job.answer(outcome.Error(exc))
            return False
        self.pending[number] = (job, deadline)
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
        if record.stored_at > command.deadline:
            result = outcome.Error(refused())
        else:
            try:
                decided = fn(state, *args)
            except MoreliaError as exc:
                result = outcome.Error(exc)
            except Exception as exc:  # the same bug on every server: nothing changed
                log.exception("Bug while deciding record %d", record.seq)
                result = outcome.Error(exc)
            else:
                result = outcome.Value(decided)
                if isinstance(decided, Event):
                    apply(state, decided)  # type: ignore[arg-type]
                    self.store.commands += 1
                    state.seq = record.seq
                    publisher = self.store.publisher
                    if publisher.count:
                        self.announce(publisher, decided, record.seq)
        state.seq = record.seq
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
        caught_up, seq = self.caught_up, self.state.seq
        while caught_up and (caught_up[0][0] is None or caught_up[0][0] <= seq):
            reached, actions = caught_up.popleft()
            for action in actions:
                action(reached is not None)

    def settle(self) -> None:
        """End of a turn: refusals answered, deadlines watched, the outbox sent."""
        for number, reason in self.refusals:
            waiting = self.pending.pop(number, None)
            if waiting is not None:
                log.warning("A change was not stored: %s", reason)
                waiting[0].answer(outcome.Error(refused()))
        self.refusals.clear()
        now = time.time()
        for number, (_, deadline) in self.pending.items():
            if deadline + CLOCK_MARGIN > now:
                break  # numbered in deadline order
            if number not in self.expiring:
                self.expiring.add(number)
                self.after_barrier(lambda _, number=number: self.expire(number))  # type: ignore[misc]
        if self.outbox:
            self.shared.batches += 1
            self.stream.publish(self.outbox)
            self.outbox = []

    def expire(self, number: int) -> None:
        """Read to the stream's end after a change's deadline: not there, never there."""
        self.expiring.discard(number)
        waiting = self.pending.pop(number, None)
        if waiting is not None:
            waiting[0].answer(outcome.Error(refused()))

    async def load_snapshot(self) -> None:
        """The stream was purged past this state: start again from its newest snapshot."""
        newest = await self.stream.newest_snapshot()
        first = self.incoming[0].seq if self.incoming else None
        if newest is None or (first is not None and newest[0] + 1 < first):
            raise StorageFailed(
                f"the event log lacks records {self.state.seq + 1} to {first} "
                "and holds no snapshot that covers them"
            )
        seq, data = newest
        fresh = restore(decode(data, Path(f"{self.stream.address.snapshots}/{seq}")))
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
            reached: int | None = None  # the log is away: reads are served from this state
            if self.shared.connected:
                try:
                    with trio.fail_after(BARRIER_TIMEOUT):
                        reached = (await self.stream.last_seq())[1]
                except Exception as exc:
                    log.debug("No barrier: %s", exc)
            self.caught_up.append((reached, actions))
            self.wake()

    async def watch_deadlines(self) -> None:
        while True:
            await trio.sleep(EXPIRY_CHECK)
            if self.pending:
                self.wake()


async def run_shared_store(
    state: State,
    stream: SharedStream,
    shared: SharedLog,
    *,
    task_status: trio.TaskStatus[tuple[Store, Node]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Own ``state`` as one server of those sharing ``stream``, until cancelled."""
    send, receive = trio.open_memory_channel[Job[Any]](QUEUE)
    store = Store(send, shared)
    node = Node(state, stream, store, shared)
    wake_up = Job(_nothing, (), rotate=False)

    def wake() -> None:
        # WouldBlock: the owner has jobs, it sees the records too. BrokenResourceError: the
        # owner has stopped (the server is stopping) and the stream's thread still hands
        # over what it read; raised here, in trio's own task, it would end the process.
        with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
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


def check_identity(directory: Path, stream: str, created: float) -> None:
    """A data directory serves one stream: refuse one whose snapshot is of another.

    Raises:
        StorageFailed: the directory holds the state of another stream (or of a local
            journal), which this stream's records must not be applied to.
    """
    path = directory / IDENTITY_NAME
    try:
        known = json.loads(path.read_text())
    except FileNotFoundError:
        journals = [p.name for p in directory.iterdir() if p.name.startswith("journal-")]
        if journals or (directory / LOCAL_SNAPSHOT).exists():
            raise StorageFailed(
                f"{directory} holds a server's own journal or snapshot: a server sharing "
                f"the stream {stream} starts from an empty data directory"
            ) from None
        write_atomic(path, json.dumps({"stream": stream, "created": created}).encode())
        return
    if known.get("stream") != stream or known.get("created") != created:
        raise StorageFailed(
            f"{directory} holds the state of another stream than {stream} (or of the same "
            "name, created again): start this server from an empty data directory"
        )


async def write_local_snapshot(captured: Captured, directory: Path) -> int:
    """A snapshot in the data directory (no journal follows it: the stream does)."""

    def write() -> int:
        data = encode(captured, time.time(), journal_follows=False)
        write_atomic(directory / LOCAL_SNAPSHOT, data)
        return len(data)

    return await trio.to_thread.run_sync(write)

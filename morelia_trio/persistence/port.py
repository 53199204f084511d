"""The event log port: what the state owner needs of storage, and nothing more.

The owner decides and applies events; an EventLog makes them durable, in order, and tells
the owner when a caller may hear its answer. The local files (``local.LocalFiles``) are the
implementation. Several servers sharing a stream (``cluster/``) log commands instead, which
every server decides in stream order: an event decided against one server's state could
meet another server's record first, and this owner, which applies before the log answers,
would have to undo it. They share ``LogHealth`` and the ``Store`` handle with this owner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeAlias

import outcome
import trio

from ..core.errors import ServiceUnavailable
from ..core.events import AnyEvent
from ..core.snapshot_format import Captured
from ..core.state import State

# A metric read when scraped: its name, what it says, its value now.
Gauge: TypeAlias = tuple[str, str, float]

# Wakes a waiting caller with its result: called once, from the trio thread.
Waker: TypeAlias = Callable[[outcome.Outcome[Any]], None]


class StorageFailed(Exception):
    """The log can no longer keep its promise (a write or a sync failed): the server stops."""


def refused() -> ServiceUnavailable:
    """What a caller hears when the log cannot take a change (degraded, or failed)."""
    return ServiceUnavailable("The server cannot store changes right now.")


class StorageObserver(Protocol):
    """Told what storage did and how long it took, for the metrics (``metrics.Metrics``)."""

    def journal_written(self, records: int, seconds: float, synced: bool) -> None:
        """A batch of ``records`` was written (and ``synced``) in ``seconds``."""

    def snapshot_written(self, seconds: float, size: int) -> None:
        """A snapshot of ``size`` bytes was encoded and written in ``seconds``."""


class Unobserved:
    """The observer until the server sets one: told everything, keeps nothing."""

    def journal_written(self, records: int, seconds: float, synced: bool) -> None:
        pass

    def snapshot_written(self, seconds: float, size: int) -> None:
        pass


class LogHealth(Protocol):
    """What the rest of the server reads of a log: its statistics and its health."""

    observer: StorageObserver  # the metrics hear of its writes

    @property
    def appended(self) -> int:
        """The last sequence number handed out (and not taken back by a degradation)."""
        ...

    @property
    def batches(self) -> int:
        """Statistics: how many writes (local files: fsyncs) served the records so far."""
        ...

    @property
    def failure(self) -> OSError | None:
        """Why the log failed for good, or None while it serves."""
        ...

    @property
    def degraded(self) -> OSError | None:
        """Why the log refuses changes for now (a full disk), or None while it takes them."""
        ...

    def gauges(self) -> Iterable[Gauge]:
        """What the metrics show of this log beyond the journal's writes, read when scraped."""
        ...


class EventLog(LogHealth, Protocol):
    """Events in sequence-number order, durable before anyone hears of them.

    Promises every implementation keeps:

    - **Order.** ``append`` hands out consecutive sequence numbers; replay applies events in
      exactly that order, and a result is delivered only after every record before it is
      durable too (answers are released in sequence order).
    - **Durability before the answer.** ``deliver`` and ``rotate`` give a caller its result
      only once the records it could have seen are as durable as the log's mode promises
      (local files: fsynced, or written for "batch"; a replicated log: acknowledged by it).
    - **Failure.** A fatal error ends ``run`` with StorageFailed: the server stops, every
      waiting caller hears 503 (``refused``), and nothing unacknowledged is reported stored.
    - **Degraded.** When the log cannot store changes for now (a full disk; a log that lost
      its quorum) it refuses appends with 503 but serves on, letting one change through as a
      probe now and then (``take_probe``). Records it could not store are dropped, and
      ``appended`` goes back to the last stored one; the owner then rebuilds its state with
      ``replay``, since it applied events the log does not hold.
    """

    def append(self, event: AnyEvent, *, probe: bool = False) -> int:
        """Queue ``event`` after every event appended before it; return its sequence number.

        Sync and never blocks: the owner calls it in its turn, and many appends share one
        write (group commit). The event is not durable yet: see ``deliver``.

        Raises:
            ServiceUnavailable: the log failed, or is degraded and this is no ``probe``.
        """
        ...

    def deliver(self, answer: Waker, result: outcome.Outcome[Any], seq: int) -> None:
        """Give ``result`` to ``answer`` once record ``seq`` (and all before it) is durable;
        ``answer`` hears 503 instead if that record is lost to a degradation or a failure."""
        ...

    def take_probe(self) -> bool:
        """While degraded: may one change try the log now? (At most one a second.)"""
        ...

    async def stored(self, seq: int) -> bool:
        """Wait until record ``seq`` is stored; False if it never will be. Only a probe
        waits on this: the owner applies it once it is stored, so it leaves nothing to undo."""
        ...

    def rotate(self, answer: Waker, result: outcome.Outcome[Any]) -> None:
        """Mark the point of a capture: ``result`` (a capture) reaches ``answer`` once every
        record before the mark is durable, so a snapshot of it is always followed by the
        records after it. Refused with 503 while degraded or failed."""
        ...

    async def keep(self, capture: Captured) -> None:
        """Store a snapshot of ``capture``; the records it covers may then be dropped.

        Raises:
            OSError: the snapshot could not be stored (the log still holds every change).
        """
        ...

    async def replay(self) -> State:
        """The state the log holds: the newest snapshot with every record after it applied.

        Raises:
            StorageFailed: the stored data cannot be read back.
        """
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The log's own task, started before the owner and cancelled after it: does the
        writing; on cancellation makes everything appended durable, then returns.

        Raises:
            StorageFailed: a fatal error; the server must stop acknowledging.
        """
        ...

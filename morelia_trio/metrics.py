"""The server's Prometheus metrics: what they are, their registry, and the hooks that feed them.

One ``Metrics`` per server, with a registry of its own (never prometheus-client's global
one: tests run several servers in one process), served as text at ``GET /metrics``.

Cost on the hot path: a request costs ``replied``, two dictionary lookups, a bisection and
three additions on plain Python numbers, which a collector turns into prometheus-client's
counter and histogram families when scraped. prometheus-client's own Counter and Histogram
take a lock and make several calls for each update, ten times the cost, and the server has
no threads to guard against: everything here runs on the trio thread. Label values come from
a fixed set (the known request types, ``other`` and ``errors``; the server's own reply
codes), never from what a client sent. Everything else is read only when scraped: open
connections, the owner's queue, the hashing queue and the refusals of the abuse limits
(plain counters in ``Guard`` and ``Passwords``). Storage tells its observer
(``persistence.port.StorageObserver``) of each journal write and snapshot, rarely enough
for prometheus-client's own histograms.
"""

from __future__ import annotations

import itertools
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final

import msgspec.inspect
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .config import AbuseLimits
from .core.parsers import PARSERS
from .core.protocol import ERRORS_TYPE

if TYPE_CHECKING:
    from .auth import Passwords
    from .guard import Guard
    from .live import Publisher
    from .persistence.port import LogHealth
    from .store import Store

OTHER: Final = "other"  # a request type the server does not know: never the client's string
# Requests with no usable type of their own (not JSON, no "type"): the reply type "errors".
ERRORS: Final = "errors"

# Seconds. Most replies take well under a millisecond; logins take tens (argon2id).
REPLY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
SYNC_BUCKETS: Final = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SNAPSHOT_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# The limits whose refusals are counted (AbuseLimits' fields that refuse, by their names).
REFUSING_LIMITS: Final = tuple(
    field.name
    for field in msgspec.inspect.type_info(AbuseLimits).fields  # type: ignore[attr-defined]
    if field.name not in {"max_owned_flows", "storage_quota_bytes", "flood_strikes"}
)


class Metrics:
    """Every metric of one server; ``watch`` connects those read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        # Replies by reply type, then by code; a type the server does not know is "other".
        self.replies: dict[str, dict[int, int]] = {kind: {} for kind in PARSERS}
        self.replies[ERRORS_TYPE] = {}
        self.other_replies: dict[int, int] = {}
        # How many replies took at most each of REPLY_BUCKETS, not cumulative (the last:
        # longer than them all), and their sum.
        self.reply_buckets = [0] * (len(REPLY_BUCKETS) + 1)
        self.reply_seconds = 0.0
        registry.register(_Replies(self))
        self.journal_write_seconds = Histogram(
            "morelia_journal_write_seconds",
            "Time to write one batch of journal records, and fsync it when the mode says so",
            ["synced"],
            buckets=SYNC_BUCKETS,
            registry=registry,
        )
        self.journal_batch_records = Histogram(
            "morelia_journal_batch_records",
            "Records written together in one journal write (group commit)",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.snapshot_seconds = Histogram(
            "morelia_snapshot_seconds",
            "Time to encode and write a snapshot (in a thread; the owner's capture not included)",
            buckets=SNAPSHOT_BUCKETS,
            registry=registry,
        )
        self.snapshot_bytes = Gauge(
            "morelia_snapshot_bytes", "Size of the last snapshot written", registry=registry
        )
        self._synced = self.journal_write_seconds.labels("true")
        self._unsynced = self.journal_write_seconds.labels("false")

    def watch(self, guard: Guard, store: Store, passwords: Passwords) -> None:
        """Read these at every scrape: open connections, queues, refusals."""
        gauges: tuple[tuple[str, str, Callable[[], float]], ...] = (
            (
                "morelia_connections_open",
                "Open connections, WebSocket and plain HTTP, from accept to close",
                guard.connections.total,
            ),
            ("morelia_owner_queue", "Jobs waiting for the state owner", store.queued),
            (
                "morelia_password_hashes_waiting",
                "Password hashes and checks waiting for a hashing worker",
                lambda: passwords.waiting,
            ),
            (
                "morelia_password_hashes_running",
                "Password hashes and checks under way in the hashing workers",
                lambda: passwords.limiter.borrowed_tokens,
            ),
        )
        for name, described, read in gauges:
            Gauge(name, described, registry=self.registry).set_function(read)
        self.registry.register(_Refusals(guard, passwords))
        self.registry.register(_Live(store.publisher))
        self.registry.register(_Log(store.event_log))

    def replied(self, reply_type: str, code: int, started: float) -> None:
        """Count a reply (``started``: its request's ``time.perf_counter()``)."""
        codes = self.replies.get(reply_type, self.other_replies)
        codes[code] = codes.get(code, 0) + 1
        seconds = time.perf_counter() - started
        self.reply_buckets[bisect_left(REPLY_BUCKETS, seconds)] += 1
        self.reply_seconds += seconds

    def journal_written(self, records: int, seconds: float, synced: bool) -> None:
        if records > 0:  # a flush that only moved on to a new file wrote no record
            (self._synced if synced else self._unsynced).observe(seconds)
            self.journal_batch_records.observe(records)

    def snapshot_written(self, seconds: float, size: int) -> None:
        self.snapshot_seconds.observe(seconds)
        self.snapshot_bytes.set(size)

    def exposition(self) -> bytes:
        """Every metric, in Prometheus' text format."""
        return generate_latest(self.registry)


class _Replies(Collector):
    """morelia_requests_total and morelia_reply_seconds, from the counts ``replied`` keeps."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        metrics = self.metrics
        requests = CounterMetricFamily(
            "morelia_requests",
            "Requests answered, by request type (known, other or errors) and reply code",
            labels=["type", "code"],
        )
        labelled = [
            (ERRORS if kind == ERRORS_TYPE else kind, codes)
            for kind, codes in metrics.replies.items()
        ]
        for kind, codes in [*labelled, (OTHER, metrics.other_replies)]:
            for code, count in sorted(codes.items()):
                requests.add_metric([kind, str(code)], count)
        yield requests
        bounds = [*map(floatToGoString, REPLY_BUCKETS), "+Inf"]
        yield HistogramMetricFamily(
            "morelia_reply_seconds",
            "Time to answer a request: decode, carry out, render (sending not included)",
            buckets=list(zip(bounds, itertools.accumulate(metrics.reply_buckets), strict=True)),
            sum_value=metrics.reply_seconds,
        )


class _Refusals(Collector):
    """morelia_rate_limit_refusals_total by limit, from the counts Guard and Passwords keep."""

    def __init__(self, guard: Guard, passwords: Passwords) -> None:
        self.guard, self.passwords = guard, passwords

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "morelia_rate_limit_refusals",
            "Requests and connections refused by an abuse limit, by the limit's setting",
            labels=["limit"],
        )
        for limit, count in self._counts():
            family.add_metric([limit], count)
        yield family

    def _counts(self) -> Iterator[tuple[str, int]]:
        refusals = self.guard.refusals
        for limit in REFUSING_LIMITS:
            yield limit, self.passwords.refused if limit == "hash_queue" else refusals[limit]


class _Log(Collector):
    """What the event log shows of itself (a shared log: its connection, what waits on it)."""

    def __init__(self, log: LogHealth) -> None:
        self.log = log

    def collect(self) -> Iterable[Metric]:
        for name, described, value in self.log.gauges():
            yield GaugeMetricFamily(name, described, value)


class _Live(Collector):
    """Live updates: subscribers, updates handed out, resyncs, backlogs, from the Publisher."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def collect(self) -> Iterable[Metric]:
        publisher = self.publisher
        total, largest = publisher.backlog()
        yield GaugeMetricFamily(
            "morelia_subscribers", "Connections subscribed to live updates", publisher.count
        )
        yield CounterMetricFamily(
            "morelia_updates",
            "Update frames handed to subscribers (one per subscriber per change)",
            publisher.handed,
        )
        yield CounterMetricFamily(
            "morelia_resyncs",
            "Resyncs owed to subscribers whose backlog overflowed or whose catch-up was cut short",
            publisher.resyncs,
        )
        yield GaugeMetricFamily(
            "morelia_update_backlog",
            "Update frames handed to subscribers and not sent yet, in all",
            total,
        )
        yield GaugeMetricFamily(
            "morelia_update_backlog_largest",
            "Update frames waiting for the one subscriber with the most",
            largest,
        )

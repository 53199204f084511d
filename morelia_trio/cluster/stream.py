"""The JetStream side of a shared log: one stream of commands, a bucket of snapshots.

Everything here runs on the asyncio thread (``bridge.AsyncioThread``) through nats-py, the
official client; ``SharedStream``'s methods are called from trio and cross over once each.
Records reach trio in batches: the consumer's callback queues them, and the first of a
batch asks trio to drain the queue (one crossing however many arrive meanwhile).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Final

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    ObjectStoreConfig,
    StorageType,
    StreamConfig,
)
from nats.js.object_store import ObjectStore

from .address import EventLogAddress
from .bridge import AsyncioThread

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT: Final = 2.0  # one try; a record is tried again (same id) until its deadline
RETRY_PAUSE: Final = 0.1
DUPLICATE_WINDOW: Final = 120.0  # JetStream's default: a retry inside it is stored once
API_TIMEOUT: Final = 5.0
MAX_QUEUED: Final = 10_000  # records read but not yet taken by trio
FOLLOW_WITHIN: Final = 30.0  # seconds to set up the consumer at start-up, then give up
HEARTBEAT: Final = 0.5  # an ordered consumer lost with its server is noticed within 1 s
DOWNLOAD_CHECK: Final = 1.0  # seconds between checks that a snapshot downloading is still kept


class Record:
    """One record as a server reads it back: its place, its time in the stream, its bytes."""

    __slots__ = ("data", "seq", "stored_at")

    def __init__(self, seq: int, stored_at: float, data: bytes) -> None:
        self.seq = seq
        self.stored_at = stored_at  # seconds since the epoch, by the stream's leader
        self.data = data


class Outgoing:
    """A record to append: its id (a retry inside the duplicate window is stored once)."""

    __slots__ = ("data", "deadline", "msg_id", "number")

    def __init__(self, number: int, msg_id: str, data: bytes, deadline: float) -> None:
        self.number = number
        self.msg_id = msg_id
        self.data = data
        self.deadline = deadline


def _nobody(*_: object) -> None:
    return None


class Listener:
    """What the stream tells trio (each called on the trio thread); by default, nobody."""

    def __init__(
        self,
        records: Callable[[list[Record]], None] = _nobody,
        refused: Callable[[int, str], None] = _nobody,
        connection: Callable[[bool], None] = _nobody,
    ) -> None:
        self.records = records  # new records, in stream order
        self.refused = refused  # a record the stream surely did not store, and why
        self.connection = connection  # connected to NATS, or not


class SharedStream:
    """A connection to the stream that ``address`` names, on ``bridge``'s loop."""

    def __init__(
        self,
        address: EventLogAddress,
        bridge: AsyncioThread,
        listener: Listener,
        *,
        replicas: int,
        credentials: str | None,
        ca_file: str | None,
        name: str,
    ) -> None:
        self.address = address
        self.bridge = bridge
        self.listener = listener
        self.replicas = replicas
        self.credentials = credentials
        self.ca_file = ca_file
        self.name = name
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._bucket: ObjectStore | None = None
        self._queue: collections.deque[Record] = collections.deque()
        self._drain_asked = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.last_error = ""  # the connection's last error: why a start-up failed

    # -- from trio ---------------------------------------------------------------------

    async def open(self) -> float:
        """Connect, create the stream and its bucket if need be; the stream's creation time
        (which tells this stream from another of the same name, created again)."""
        return await self.bridge.run(self._open)

    async def close(self) -> None:
        await self.bridge.run(self._close)

    def publish(self, batch: list[Outgoing]) -> None:
        self.bridge.post(self._publish_batch, batch)

    async def last_seq(self) -> tuple[int, int]:
        """The stream's first and last sequence numbers now (a read's barrier)."""
        return await self.bridge.run(self._bounds)

    async def follow(self, start: int) -> None:
        """Deliver every record from ``start`` on to the listener, in order, until closed."""
        await self.bridge.run(lambda: self._follow(start))

    async def newest_snapshot(self) -> tuple[int, bytes] | None:
        return await self.bridge.run(self._newest_snapshot)

    async def keep_snapshot(self, seq: int, data: bytes) -> int:
        """Store the snapshot at ``seq`` and purge the records it covers; the older
        snapshots it replaces are deleted. Returns how many records were purged."""
        return await self.bridge.run(lambda: self._keep_snapshot(seq, data))

    # -- on the asyncio thread -----------------------------------------------------------

    async def _open(self) -> float:
        tls = None
        if self.address.scheme == "tls" or self.ca_file is not None:
            tls = ssl.create_default_context(cafile=self.ca_file)
        self._nc = await nats.connect(
            list(self.address.servers),
            name=self.name,
            tls=tls,
            user_credentials=self.credentials,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=3,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
            error_cb=self._error,
        )
        self._js = self._nc.jetstream(timeout=API_TIMEOUT)
        self._room = asyncio.Event()  # set by trio once it took a full queue
        stream = self.address.stream
        try:
            info = await self._js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            info = await self._js.add_stream(
                StreamConfig(
                    name=stream,
                    subjects=[self.address.subject],
                    storage=StorageType.FILE,
                    num_replicas=self.replicas,
                    duplicate_window=DUPLICATE_WINDOW,
                )
            )
            log.info("Created the stream %s (%d replicas)", stream, self.replicas)
        if info.config.subjects != [self.address.subject]:
            raise ValueError(f"the stream {stream} holds other subjects than a server's")
        try:
            self._bucket = await self._js.object_store(self.address.snapshots)
        except nats.js.errors.BucketNotFoundError:
            self._bucket = await self._js.create_object_store(
                self.address.snapshots,
                ObjectStoreConfig(storage=StorageType.FILE, replicas=self.replicas),
            )
        created = info.created
        return created.timestamp() if created is not None else 0.0

    async def _close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        if self._nc is not None:
            await self._nc.close()

    async def _disconnected(self) -> None:
        if self._closing:
            return
        log.warning("Lost the connection to the event log")
        self.bridge.to_trio(self.listener.connection, False)

    async def _reconnected(self) -> None:
        log.warning("Connected to the event log again")
        self.bridge.to_trio(self.listener.connection, True)

    async def _error(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.debug("Event log connection: %s", self.last_error)

    def _publish_batch(self, batch: list[Outgoing]) -> None:
        for outgoing in batch:
            task = asyncio.get_running_loop().create_task(self._publish(outgoing))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _publish(self, outgoing: Outgoing) -> None:
        """Try until stored or past the deadline (a new stream leader may take a while)."""
        assert self._js is not None and self._nc is not None
        headers = {"Nats-Msg-Id": outgoing.msg_id}
        sent = False  # once a try may have reached the stream, only the deadline decides
        while True:
            if not self._nc.is_connected:  # nats-py would hold it and send it on reconnecting
                reason = "no connection"
                if time.time() + RETRY_PAUSE > outgoing.deadline:
                    if not sent:
                        self.bridge.to_trio(self.listener.refused, outgoing.number, reason)
                    return
                await asyncio.sleep(RETRY_PAUSE)
                continue
            try:
                await self._js.publish(
                    self.address.subject,
                    outgoing.data,
                    timeout=PUBLISH_TIMEOUT,
                    headers=headers,
                )
                return
            except (nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError):
                reason = "the stream has no leader"  # nobody took it: surely not stored
            except nats.js.errors.APIError as exc:
                reason = f"the stream refused it: {exc.description}"
            except (TimeoutError, nats.errors.Error) as exc:  # it may have left: who knows
                sent, reason = True, f"no answer: {type(exc).__name__}"
            if time.time() + RETRY_PAUSE > outgoing.deadline:
                if not sent:  # no try reached it: refused now, not at the deadline
                    self.bridge.to_trio(self.listener.refused, outgoing.number, reason)
                return  # stored late if ever: every server refuses it then
            await asyncio.sleep(RETRY_PAUSE)

    async def _bounds(self) -> tuple[int, int]:
        assert self._js is not None
        while True:  # while a new stream leader is elected, ask again (trio times it)
            try:
                info = await self._js.stream_info(self.address.stream)
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError):
                await asyncio.sleep(RETRY_PAUSE)
                continue
            return info.state.first_seq, info.state.last_seq

    async def _follow(self, start: int) -> None:
        assert self._js is not None
        give_up = time.monotonic() + FOLLOW_WITHIN
        while True:  # a stream just created may still be electing its leader
            try:
                await self._js.subscribe(
                    self.address.subject,
                    cb=self._received,
                    ordered_consumer=True,
                    idle_heartbeat=HEARTBEAT,  # two missed: the consumer is made again
                    config=ConsumerConfig(
                        deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
                    ),
                    pending_msgs_limit=1_000_000,
                    pending_bytes_limit=1 << 30,
                )
                return
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError):
                if time.monotonic() > give_up:
                    raise
                await asyncio.sleep(RETRY_PAUSE)

    async def _received(self, msg: Msg) -> None:
        # nats-py awaits this before the next record: while trio is behind (a long
        # catch-up), wait, so that the stream's flow control holds the rest back.
        while len(self._queue) >= MAX_QUEUED:
            self._room.clear()
            if len(self._queue) < MAX_QUEUED:  # trio took them as the room was cleared
                break
            await self._room.wait()
        metadata = msg.metadata
        self._queue.append(
            Record(metadata.sequence.stream, metadata.timestamp.timestamp(), msg.data)
        )
        if not self._drain_asked:
            self._drain_asked = True
            self.bridge.to_trio(self._drain)

    def _drain(self) -> None:  # on the trio thread
        self._drain_asked = False  # before taking: a record queued from now asks again
        queue = self._queue
        batch = [queue.popleft() for _ in range(len(queue))]
        if batch and not self._room.is_set():  # the consumer waits for room
            self.bridge.post(self._room.set)
        if batch:
            self.listener.records(batch)

    async def _newest_snapshot(self) -> tuple[int, bytes] | None:
        assert self._bucket is not None
        while True:
            names = await self._snapshot_names()
            if not names:
                return None
            newest = max(names)
            try:
                data = await self._download(newest)
            except nats.js.errors.ObjectNotFoundError:
                continue  # another server kept a newer one meanwhile and deleted this one
            return int(newest), data

    async def _download(self, name: str) -> bytes:
        """A snapshot's bytes; ObjectNotFoundError once another server deleted it.

        The bucket's ``get`` waits for the object's chunks with no end: deleted while it
        waits, they never come. So whether the object is still there is asked now and then.
        """
        assert self._bucket is not None
        getting = asyncio.ensure_future(self._bucket.get(name))
        try:
            while True:
                done, _ = await asyncio.wait({getting}, timeout=DOWNLOAD_CHECK)
                if done:
                    data = getting.result().data
                    assert data is not None
                    return data
                await self._bucket.get_info(name)  # raises ObjectNotFoundError once deleted
        finally:
            getting.cancel()

    async def _snapshot_names(self) -> list[str]:
        assert self._bucket is not None
        try:
            entries = await self._bucket.list(ignore_deletes=True)
        except nats.js.errors.NotFoundError:  # an empty bucket
            return []
        return [entry.name for entry in entries if entry.name and entry.name.isdigit()]

    async def _keep_snapshot(self, seq: int, data: bytes) -> int:
        assert self._bucket is not None and self._js is not None
        await self._bucket.put(f"{seq:020d}", data)
        for name in await self._snapshot_names():
            if int(name) < seq:
                # Another server, keeping a snapshot at the same time, may delete it first.
                with contextlib.suppress(nats.js.errors.ObjectNotFoundError):
                    await self._bucket.delete(name)
        before = (await self._js.stream_info(self.address.stream)).state.first_seq
        await self._js.purge_stream(self.address.stream, seq=seq + 1)
        after = (await self._js.stream_info(self.address.stream)).state.first_seq
        return max(0, after - before)

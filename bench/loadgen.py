"""The load generator: picows on asyncio, in its own process, driven by a JSON spec.

    .venv/bin/python -m bench.loadgen < spec.json > result.json

Every frame it sends is encoded before the measured window (or, for the few that carry a
time, joined from pre-encoded pieces), and the hot paths are picows callbacks, not
coroutines: one core of it drives several times what a trio server answers on the other.
The suite starts one of these per scenario; the spec names the server's pid so that its CPU
time is read over exactly the measured window.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import itertools
import math
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import TypeAlias

import msgspec
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from .procstat import cpu_seconds, disk_flushes, rss_kib

Result: TypeAlias = dict[str, float | int | str | None]
OK_MARK = b'"code":20'  # 200 or 201, as every success reply in either dialect carries
PARTIAL = 206  # a page of a longer answer: the client asks again from its last time
TIME_MARK = "@@TIME@@"  # replaced by a number in frames that carry a time
SLOW_HANDSHAKE = 30.0  # seconds: the fan-out's 1,000 connections at once


class Spec(msgspec.Struct, tag_field="kind", kw_only=True):
    url: str
    server_pid: int
    connect_concurrency: int = 200
    check_replies: bool = True  # count replies without a success code (the ceiling echoes)
    # Round trips and the fixed load only: more servers of one service, connection k going
    # to the k-th of [url, *more_urls] in turn; and more processes whose CPU time the window
    # reads beside the server's (name -> pid: a nats-server, a second server).
    more_urls: list[str] = []
    watched: dict[str, int] = {}


class RoundTrips(Spec, tag="round_trips"):
    """Closed loop: each connection sends, waits for the reply, sends again."""

    frames: list[str]  # one per connection
    warmup: float
    duration: float


class OpenLoop(Spec, tag="open_loop"):
    """Sends on a schedule, whether or not replies came; latency from the scheduled time."""

    frames: list[str]
    rate: float  # frames a second over all connections
    warmup: float
    duration: float


class Mixed(Spec, tag="mixed"):
    """Pollers ask get_update every poll_interval; senders send at sender_rate each."""

    poll_frames: list[str]  # with TIME_MARK where data.time goes
    send_frames: list[str]  # with TIME_MARK inside the text: the send time, in ns
    poll_interval: float
    sender_rate: float
    warmup: float
    duration: float


class Storm(Spec, tag="storm"):
    """Open-loop chat; after a baseline window, every login frame at once on its own connection."""

    chat_frames: list[str]
    chat_rate: float
    login_frames: list[str]
    warmup: float
    baseline: float
    storm_timeout: float = 180.0
    disk: str | None = None  # the data directory's disk: its flush times are reported


class Idle(Spec, tag="idle"):
    """Open one connection per frame, send it and take the reply, then leave it idle."""

    frames: list[str]
    settle: float


class History(Spec, tag="history"):
    """Per flow: the first page a few times, then every page, in the list dialect."""

    flows: dict[str, str]  # label -> all_messages frame with TIME_MARK where data.time goes
    repeats: int


class FanOut(Spec, tag="fan_out"):
    """Subscribers on connections of their own, one sender into their group.

    Each subscriber sends its subscribe frame and takes the reply (none for the ceiling: an
    empty frame); the first ``stalled`` of them then stop reading. The sender sends at
    ``rate`` a second, or with no rate as fast as every reading subscriber keeps up, at most
    ``in_flight`` messages ahead of the slowest. A subscriber's k-th frame is the k-th send's
    update; its latency counts from the send's reply (``latency_ms``), and from the send
    itself (``from_send_ms``: the server may hand updates out before the reply is sent).
    """

    subscribe_frames: list[str]
    send_frame: str
    rate: float | None
    warmup: float
    duration: float
    in_flight: int = 4
    stalled: int = 0


class Hold(Spec, tag="hold"):
    """Subscribe on one connection per frame, say "ready" on a line, then read and hold them
    for ``seconds`` (subscribers idle beside another scenario)."""

    subscribe_frames: list[str]
    seconds: float


AnySpec: TypeAlias = RoundTrips | OpenLoop | Mixed | Storm | Idle | History | FanOut | Hold


# --- replies the generator reads ------------------------------------------------------------


class _Message(msgspec.Struct):
    uuid: str
    time: int
    text: str | None = None


class _Data(msgspec.Struct):
    message: list[_Message] | None = None


class _Errors(msgspec.Struct):
    code: int


class _Reply(msgspec.Struct):
    errors: _Errors
    data: _Data | None = None


_reply_decoder = msgspec.json.Decoder(_Reply)


# --- connections -----------------------------------------------------------------------------


class Conn(WSListener):
    """One WebSocket; each text frame received goes to ``on_reply``."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: WSTransport | None = None
        self.on_reply: Callable[[Conn, bytes], None] = _ignore
        self.waiter: asyncio.Future[bytes] | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            payload = frame.get_payload_as_bytes()
            if self.waiter is not None:
                waiter, self.waiter = self.waiter, None
                if not waiter.done():
                    waiter.set_result(payload)
                return
            self.on_reply(self, payload)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    def send(self, frame: bytes) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, frame)

    async def request(self, frame: bytes) -> bytes:
        """Send one frame and wait for its reply (never mixed with on_reply traffic)."""
        self.waiter = asyncio.get_running_loop().create_future()
        self.send(frame)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()


def _ignore(conn: Conn, payload: bytes) -> None:
    pass


async def connect_all(
    url: str,
    count: int,
    concurrency: int,
    handshake_timeout: float = 5.0,
    more_urls: Sequence[str] = (),
) -> list[Conn]:
    """``count`` connections; with ``more_urls``, spread over [url, *more_urls] in turn."""
    limit = asyncio.Semaphore(concurrency)
    urls = [url, *more_urls]

    async def one(index: int) -> Conn:
        async with limit:
            _, listener = await ws_connect(
                Conn,
                urls[index % len(urls)],
                max_frame_size=64 * 1024 * 1024,
                websocket_handshake_timeout=handshake_timeout,
            )
            assert isinstance(listener, Conn)
            return listener

    return list(await asyncio.gather(*(one(index) for index in range(count))))


class Window:
    """CPU time of the server and of this process, and wall time, over one window.

    With ``disk``: also the mean time that disk took per flush (what an fsync waits for);
    with ``watched`` (name -> pid), each one's CPU time too, as ``NAME_cpu_s``.
    """

    def __init__(
        self, server_pid: int, disk: str | None = None, watched: dict[str, int] | None = None
    ) -> None:
        self.server_pid = server_pid
        self.disk = disk
        self.watched = watched or {}
        self.wall = time.perf_counter()
        self.server = cpu_seconds(server_pid)
        self.others = {name: cpu_seconds(pid) for name, pid in self.watched.items()}
        self.me = cpu_seconds(os.getpid())
        self.flushes = disk_flushes(disk) if disk is not None else (0, 0)

    def close(self) -> Result:
        wall = time.perf_counter() - self.wall
        server = cpu_seconds(self.server_pid) - self.server
        me = cpu_seconds(os.getpid()) - self.me
        result: Result = {
            "seconds": wall,
            "server_cpu_s": server,
            "gen_cpu_s": me,
            "server_busy": server / wall,
            "gen_busy": me / wall,
            "disk_flush_ms": None,
        }
        for name, pid in self.watched.items():
            used = cpu_seconds(pid) - self.others[name]
            result[f"{name}_cpu_s"] = used
            result[f"{name}_busy"] = used / wall
        if self.disk is not None:
            (count, ms), (count0, ms0) = disk_flushes(self.disk), self.flushes
            result["disk_flush_ms"] = (ms - ms0) / (count - count0) if count > count0 else None
        return result


class FlushSampler:
    """The disk's mean flush time over every half second, for the slowest spell in a window.

    The disk sometimes takes 5-7 ms a flush instead of 0.04 for a second or two. A whole
    window's mean hides that (100 slow flushes among 55,000 move it by 0.01 ms), though
    every fsync-always reply in those seconds waits for one.
    """

    INTERVAL = 0.5

    def __init__(self, disk: str | None) -> None:
        self.disk = disk  # None: no disk to watch, and no figure
        self.samples: list[tuple[float, int, int]] = []  # (loop time, flushes, ms in all)

    async def run(self) -> None:
        if self.disk is None:
            return
        loop = asyncio.get_running_loop()
        while True:
            self.samples.append((loop.time(), *disk_flushes(self.disk)))
            await asyncio.sleep(self.INTERVAL)

    def slowest(self, start: float, end: float) -> float | None:
        """The highest mean flush time (ms) of a half second between start and end."""
        inside = [sample for sample in self.samples if start <= sample[0] <= end]
        means = [
            (ms - ms0) / (count - count0)
            for (_, count0, ms0), (_, count, ms) in itertools.pairwise(inside)
            if count > count0
        ]
        return max(means, default=None)


def percentiles(samples: list[float], prefix: str, scale: float = 1000.0) -> Result:
    """p50, p99, p99.9 and max of ``samples`` (seconds), in ms by default."""
    if not samples:
        return {f"{prefix}_{name}": None for name in ("p50", "p99", "p999", "max")}
    ordered = sorted(samples)
    last = len(ordered) - 1

    def at(q: float) -> float:
        return ordered[min(last, int(q * len(ordered)))] * scale

    return {
        f"{prefix}_p50": at(0.50),
        f"{prefix}_p99": at(0.99),
        f"{prefix}_p999": at(0.999),
        f"{prefix}_max": ordered[last] * scale,
    }


def _encoded(frames: list[str]) -> list[bytes]:
    return [frame.encode() for frame in frames]


# --- scenarios -------------------------------------------------------------------------------


async def round_trips(spec: RoundTrips) -> Result:
    frames = _encoded(spec.frames)
    conns = await connect_all(
        spec.url, len(frames), spec.connect_concurrency, more_urls=spec.more_urls
    )
    clock = time.perf_counter
    latencies: list[float] = []
    record = latencies.append
    state = {"recording": False, "count": 0, "errors": 0}
    sent_at = [0.0] * len(conns)
    check = spec.check_replies

    def make_handler(index: int, frame: bytes) -> Callable[[Conn, bytes], None]:
        def on_reply(conn: Conn, payload: bytes) -> None:
            now = clock()
            if state["recording"]:
                record(now - sent_at[index])
                state["count"] += 1
                if check and OK_MARK not in payload:
                    state["errors"] += 1
            sent_at[index] = clock()
            conn.send(frame)

        return on_reply

    gc.disable()  # no collector pauses inside the measurement
    for index, (conn, frame) in enumerate(zip(conns, frames, strict=True)):
        conn.on_reply = make_handler(index, frame)
        sent_at[index] = clock()
        conn.send(frame)
    await asyncio.sleep(spec.warmup)
    window = Window(spec.server_pid, watched=spec.watched)
    state["recording"] = True
    await asyncio.sleep(spec.duration)
    state["recording"] = False
    result = window.close()
    for conn in conns:
        conn.on_reply = _ignore
    gc.enable()
    await asyncio.sleep(0.2)
    for conn in conns:
        conn.close()
    count = state["count"]
    result.update(
        connections=len(conns),
        messages=count,
        errors=state["errors"],
        rate=count / float(result["seconds"] or 1),
        server_cpu_us_per_msg=float(result["server_cpu_s"] or 0) / max(count, 1) * 1e6,
        gen_cpu_us_per_msg=float(result["gen_cpu_s"] or 0) / max(count, 1) * 1e6,
    )
    _watched_per_message(result, spec.watched, count)
    result.update(percentiles(latencies, "latency_ms"))
    return result


def _watched_per_message(result: Result, watched: dict[str, int], count: int) -> None:
    """Each watched process's CPU time per reply, as ``NAME_cpu_us_per_msg``."""
    for name in watched:
        result[f"{name}_cpu_us_per_msg"] = float(result[f"{name}_cpu_s"] or 0) / max(count, 1) * 1e6


class _Schedule:
    """Open-loop sends over many connections: ``rate`` a second in all, evenly spread."""

    def __init__(
        self,
        conns: list[Conn],
        frames: list[bytes],
        rate: float,
        start: float,
        end: float,
        check: bool = True,
    ) -> None:
        self.check = check
        self.loop = asyncio.get_running_loop()
        self.conns, self.frames = conns, frames
        self.period = len(conns) / rate  # each connection's own period
        self.start, self.end = start, end
        self.window = (start, end)
        self.pending: list[collections.deque[float]] = [collections.deque() for _ in conns]
        self.latencies: list[float] = []  # of sends scheduled inside the window
        self.answered = 0  # replies to sends scheduled inside the window
        self.scheduled = 0  # sends scheduled inside the window
        self.errors = 0
        self.late_sends: list[float] = []  # how late the generator itself sent (seconds)
        self.drained = asyncio.Event()
        for index, conn in enumerate(conns):
            conn.on_reply = self._replied_to(index)
            first = start + index / rate
            self.loop.call_at(first, self._send, index, first)

    def set_window(self, start: float, end: float) -> None:
        self.window = (start, end)

    def _send(self, index: int, scheduled: float) -> None:
        now = self.loop.time()
        self.pending[index].append(scheduled)
        self.conns[index].send(self.frames[index])
        if self.window[0] <= scheduled < self.window[1]:
            self.scheduled += 1
            self.late_sends.append(now - scheduled)
        following = scheduled + self.period
        if following < self.end:
            self.loop.call_at(following, self._send, index, following)

    def _replied_to(self, index: int) -> Callable[[Conn, bytes], None]:
        pending = self.pending[index]

        def on_reply(conn: Conn, payload: bytes) -> None:
            scheduled = pending.popleft()
            if self.window[0] <= scheduled < self.window[1]:
                self.latencies.append(self.loop.time() - scheduled)
                self.answered += 1
                if self.check and OK_MARK not in payload:
                    self.errors += 1
            if not any(self.pending) and self.loop.time() >= self.end:
                self.drained.set()

        return on_reply

    def outstanding(self) -> int:
        return sum(len(queue) for queue in self.pending)

    async def drain(self, patience: float) -> None:
        """Wait for the replies still due, at most ``patience`` seconds after the last send."""
        await asyncio.sleep(max(0.0, self.end - self.loop.time()))
        if self.outstanding():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), patience)


async def open_loop(spec: OpenLoop) -> Result:
    frames = _encoded(spec.frames)
    conns = await connect_all(
        spec.url, len(frames), spec.connect_concurrency, more_urls=spec.more_urls
    )
    loop = asyncio.get_running_loop()
    begin = loop.time() + 1.0 + spec.warmup
    end = begin + spec.duration
    schedule = _Schedule(conns, frames, spec.rate, loop.time() + 0.1, end, check=spec.check_replies)
    schedule.set_window(begin, end)
    gc.disable()
    await asyncio.sleep(begin - loop.time())
    window = Window(spec.server_pid, watched=spec.watched)
    await asyncio.sleep(end - loop.time())
    result = window.close()
    await schedule.drain(5.0)
    gc.enable()
    for conn in conns:
        conn.close()
    result.update(
        connections=len(conns),
        offered_rate=spec.rate,
        scheduled=schedule.scheduled,
        messages=schedule.answered,
        unanswered=schedule.scheduled - schedule.answered,
        errors=schedule.errors,
        rate=schedule.answered / spec.duration,
        server_cpu_us_per_msg=float(result["server_cpu_s"] or 0) / max(schedule.answered, 1) * 1e6,
    )
    _watched_per_message(result, spec.watched, schedule.answered)
    result.update(percentiles(schedule.latencies, "latency_ms"))
    result.update(percentiles(schedule.late_sends, "send_lag_ms"))
    return result


async def mixed(spec: Mixed) -> Result:
    polls = [frame.split(TIME_MARK) for frame in spec.poll_frames]
    sends = [frame.split(TIME_MARK) for frame in spec.send_frames]
    pollers = await connect_all(spec.url, len(polls), spec.connect_concurrency)
    senders = await connect_all(spec.url, len(sends), spec.connect_concurrency)
    loop = asyncio.get_running_loop()
    begin = loop.time() + 1.0 + spec.warmup
    end = begin + spec.duration
    # The same instant on the clock the senders write into each text (perf_counter_ns).
    begin_ns = time.perf_counter_ns() + round((begin - loop.time()) * 1e9)
    counters = {"sent": 0, "send_errors": 0, "polls": 0, "poll_errors": 0, "delivered": 0}
    send_latency: list[float] = []
    poll_latency: list[float] = []
    freshness: list[float] = []

    # Senders: open loop, each at sender_rate, the send time (ns) inside the text.
    period = 1.0 / spec.sender_rate

    def send(index: int, scheduled: float) -> None:
        prefix, suffix = sends[index]
        sent_ns = time.perf_counter_ns()
        senders[index].send(f"{prefix}{sent_ns}{suffix}".encode())
        sent_at[index].append(loop.time())
        if scheduled + period < end:
            loop.call_at(scheduled + period, send, index, scheduled + period)

    sent_at: list[collections.deque[float]] = [collections.deque() for _ in senders]

    def on_sent(index: int) -> Callable[[Conn, bytes], None]:
        def on_reply(conn: Conn, payload: bytes) -> None:
            at = sent_at[index].popleft()
            now = loop.time()
            if begin <= at < end:
                counters["sent"] += 1
                send_latency.append(now - at)
                if OK_MARK not in payload:
                    counters["send_errors"] += 1

        return on_reply

    # Times in the list dialect are whole seconds: the pollers start from the first whole
    # second after now, and no sender sends before it.
    first_second = math.ceil(time.time())
    start = loop.time() + 1.0
    for index, conn in enumerate(senders):
        conn.on_reply = on_sent(index)
        first = start + index * period / len(senders)
        loop.call_at(first, send, index, first)

    # Pollers: get_update every poll_interval from the last time seen; a message is fresh
    # to a poller the first time it sees it (its id is above every id it saw before). A
    # partial page (206) is followed at once by the next one, as a real client pages. They
    # start at first_second, not a second back: that reached into whatever the server was sent
    # just before (after the fixed-rate run, up to 2,000 messages for each of the 90 pollers
    # to page through), and that catch-up could stall the server for 2 s inside the window.
    since = [first_second] * len(pollers)
    seen = [0] * len(pollers)
    asked_at: list[collections.deque[float]] = [collections.deque() for _ in pollers]

    def ask(index: int) -> None:
        prefix, suffix = polls[index]
        asked_at[index].append(loop.time())
        pollers[index].send(f"{prefix}{since[index]}{suffix}".encode())

    def poll(index: int, scheduled: float) -> None:
        ask(index)
        if scheduled + spec.poll_interval < end:
            following = scheduled + spec.poll_interval
            loop.call_at(following, poll, index, following)

    def on_polled(index: int) -> Callable[[Conn, bytes], None]:
        def on_reply(conn: Conn, payload: bytes) -> None:
            now = loop.time()
            now_ns = time.perf_counter_ns()
            reply = _reply_decoder.decode(payload)
            asked = asked_at[index].popleft()
            inside = begin <= asked < end
            if inside:
                counters["polls"] += 1
                poll_latency.append(now - asked)
                if reply.errors.code >= 300:
                    counters["poll_errors"] += 1
            messages = reply.data.message if reply.data and reply.data.message else []
            newest = seen[index]
            for message in messages:
                number = int(message.uuid)
                if number <= seen[index]:
                    continue
                newest = max(newest, number)
                since[index] = max(since[index], message.time)
                text = message.text or ""
                mark = text.rfind(" t=")
                sent_ns = int(text[mark + 3 :]) if mark >= 0 else 0
                # Only messages sent inside the window count (not the warm-up's).
                if inside and sent_ns >= begin_ns:
                    freshness.append((now_ns - sent_ns) / 1e9)
                    counters["delivered"] += 1
            seen[index] = newest
            if reply.errors.code == PARTIAL and asked < end:
                ask(index)

        return on_reply

    for index, conn in enumerate(pollers):
        conn.on_reply = on_polled(index)
        first = start + index * spec.poll_interval / len(pollers)
        loop.call_at(first, poll, index, first)

    await asyncio.sleep(begin - loop.time())
    window = Window(spec.server_pid)
    await asyncio.sleep(end - loop.time())
    result = window.close()
    await asyncio.sleep(2.0)  # the last replies
    for conn in [*pollers, *senders]:
        conn.close()
    frames = counters["sent"] + counters["polls"]
    result.update(counters)
    result.update(
        pollers=len(pollers),
        senders=len(senders),
        send_rate=counters["sent"] / spec.duration,
        poll_rate=counters["polls"] / spec.duration,
        delivered_rate=counters["delivered"] / spec.duration,
        rate=frames / spec.duration,
        server_cpu_us_per_frame=float(result["server_cpu_s"] or 0) / max(frames, 1) * 1e6,
    )
    result.update(percentiles(freshness, "freshness_ms"))
    result.update(percentiles(send_latency, "send_ms"))
    result.update(percentiles(poll_latency, "poll_ms"))
    return result


async def storm(spec: Storm) -> Result:
    frames = _encoded(spec.chat_frames)
    conns = await connect_all(spec.url, len(frames), spec.connect_concurrency)
    logins = await connect_all(spec.url, len(spec.login_frames), spec.connect_concurrency)
    loop = asyncio.get_running_loop()
    begin = loop.time() + 1.0 + spec.warmup
    storm_at = begin + spec.baseline
    end = storm_at + spec.storm_timeout
    schedule = _Schedule(conns, frames, spec.chat_rate, loop.time() + 0.1, end)
    schedule.set_window(begin, storm_at)
    sampler = FlushSampler(spec.disk)
    sampling = asyncio.create_task(sampler.run())
    gc.disable()
    await asyncio.sleep(begin - loop.time())
    baseline_window = Window(spec.server_pid, spec.disk)
    await asyncio.sleep(storm_at - loop.time())
    baseline = baseline_window.close()
    baseline_latency = percentiles(schedule.latencies, "baseline_ms")
    baseline_answered = schedule.answered
    schedule.latencies, schedule.answered = [], 0
    schedule.set_window(storm_at, end)

    login_latency: list[float] = []
    login_errors = 0

    async def login(conn: Conn, frame: bytes) -> None:
        nonlocal login_errors
        started = loop.time()
        try:
            reply = await conn.request(frame)
        except ConnectionError:
            login_errors += 1
            return
        login_latency.append(loop.time() - started)
        if OK_MARK not in reply:
            login_errors += 1

    storm_window = Window(spec.server_pid, spec.disk)
    started = loop.time()
    await asyncio.gather(
        *(login(c, f.encode()) for c, f in zip(logins, spec.login_frames, strict=True))
    )
    storm_seconds = loop.time() - started
    # Only chat sends scheduled while the storm lasted count towards its latency.
    schedule.set_window(storm_at, loop.time())
    schedule.end = loop.time()
    storm_result = storm_window.close()
    sampling.cancel()
    await schedule.drain(5.0)
    gc.enable()
    for conn in [*conns, *logins]:
        conn.close()
    result: Result = {
        "chat_connections": len(conns),
        "chat_rate": spec.chat_rate,
        "logins": len(logins),
        "login_errors": login_errors,
        "storm_seconds": storm_seconds,
        "logins_per_s": len(login_latency) / storm_seconds,
        "baseline_messages": baseline_answered,
        "storm_messages": schedule.answered,
        "chat_errors": schedule.errors,
        "baseline_server_busy": baseline["server_busy"],
        "storm_server_busy": storm_result["server_busy"],
        "baseline_disk_flush_ms": baseline["disk_flush_ms"],
        "storm_disk_flush_ms": storm_result["disk_flush_ms"],
        "baseline_disk_flush_slowest_ms": sampler.slowest(begin, storm_at),
        "storm_disk_flush_slowest_ms": sampler.slowest(started, schedule.end),
    }
    result.update(baseline_latency)
    result.update(percentiles(schedule.latencies, "storm_ms"))
    result.update(percentiles(login_latency, "login_ms"))
    return result


async def idle(spec: Idle) -> Result:
    await asyncio.sleep(spec.settle)
    before = rss_kib(spec.server_pid)
    started = time.perf_counter()
    limit = asyncio.Semaphore(spec.connect_concurrency)
    errors = 0

    async def one(frame: bytes) -> Conn:
        nonlocal errors
        async with limit:
            _, conn = await ws_connect(Conn, spec.url)
            assert isinstance(conn, Conn)
            if OK_MARK not in await conn.request(frame) and spec.check_replies:
                errors += 1
            return conn

    conns = list(await asyncio.gather(*(one(frame) for frame in _encoded(spec.frames))))
    opened = time.perf_counter() - started
    await asyncio.sleep(spec.settle)
    after = rss_kib(spec.server_pid)
    # Still open? Every one must still answer.
    alive = sum(1 for conn in conns if conn.transport and not conn.transport.is_disconnected)
    for conn in conns:
        conn.close()
    count = len(conns)
    return {
        "connections": count,
        "alive": alive,
        "errors": errors,
        "open_seconds": opened,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": (after - before) / count,
    }


async def history(spec: History) -> Result:
    (conn,) = await connect_all(spec.url, 1, 1)
    loop = asyncio.get_running_loop()
    result: Result = {}
    for label, template in spec.flows.items():
        prefix, suffix = template.split(TIME_MARK)
        first = f"{prefix}0{suffix}".encode()
        latencies = []
        size = 0
        for _ in range(spec.repeats):
            started = loop.time()
            reply = await conn.request(first)
            latencies.append(loop.time() - started)
            size = len(reply)
        result.update(percentiles(latencies, f"{label}_first_page_ms"))
        result[f"{label}_first_page_kib"] = size / 1024
        # Every page, as a client catching up would: from the last time received.
        window = Window(spec.server_pid)
        since, pages, received, highest, code = 0, 0, 0, 0, PARTIAL
        while code == PARTIAL:
            page = _reply_decoder.decode(await conn.request(f"{prefix}{since}{suffix}".encode()))
            pages += 1
            code = page.errors.code
            messages = page.data.message if page.data and page.data.message else []
            for message in messages:
                number = int(message.uuid)
                if number > highest:
                    highest = number
                    received += 1
            if messages:
                since = messages[-1].time
        closed = window.close()
        result[f"{label}_pages"] = pages
        result[f"{label}_messages"] = received
        result[f"{label}_all_seconds"] = closed["seconds"]
        result[f"{label}_messages_per_s"] = received / float(closed["seconds"] or 1)
        result[f"{label}_server_cpu_us_per_msg"] = (
            float(closed["server_cpu_s"] or 0) / max(received, 1) * 1e6
        )
    conn.close()
    return result


async def fan_out(spec: FanOut) -> Result:
    loop = asyncio.get_running_loop()
    # A server still closing the last run's 1,000 connections on a busy machine may take
    # longer than picows' 5 s to answer a handshake.
    subscribers = await connect_all(
        spec.url, len(spec.subscribe_frames), spec.connect_concurrency, SLOW_HANDSHAKE
    )
    refused = 0
    for conn, frame in zip(subscribers, _encoded(spec.subscribe_frames), strict=True):
        if frame and OK_MARK not in await conn.request(frame):
            refused += 1
    (sender,) = await connect_all(spec.url, 1, 1)
    for conn in subscribers[: spec.stalled]:
        assert conn.transport is not None
        conn.transport.underlying_transport.pause_reading()
    readers = subscribers[spec.stalled :]
    await asyncio.sleep(1.0)
    rss_before = rss_kib(spec.server_pid)
    frame = spec.send_frame.encode()
    replied_at: list[float] = []  # by send
    delivered: list[int] = []  # by send: reading subscribers that got its update
    arrivals: list[tuple[int, float]] = []  # (send, when) of every update a reader got
    state = {"sent": 0, "replied": 0, "completed": 0, "other": 0, "update_bytes": 0}
    stopped = False
    sent_at: list[float] = []
    everyone = len(readers)

    def send() -> None:
        state["sent"] += 1
        sent_at.append(loop.time())
        replied_at.append(math.nan)
        delivered.append(0)
        sender.send(frame)

    def may_send() -> None:  # unpaced: as soon as the slowest reader is close enough
        if not stopped and state["sent"] - state["completed"] < spec.in_flight:
            send()

    def on_reply(conn: Conn, payload: bytes) -> None:
        replied_at[state["replied"]] = loop.time()  # replies come in the order of the sends
        state["replied"] += 1

    def reader(conn: Conn) -> Callable[[Conn, bytes], None]:
        count = 0

        def on_update(conn: Conn, payload: bytes) -> None:
            nonlocal count
            if count >= len(delivered):  # not an update of ours (a resync)
                state["other"] += 1
                return
            arrivals.append((count, loop.time()))
            state["update_bytes"] = len(payload)
            delivered[count] += 1
            if delivered[count] == everyone:
                state["completed"] += 1
                if spec.rate is None:
                    may_send()
            count += 1

        return on_update

    sender.on_reply = on_reply
    for conn in readers:
        conn.on_reply = reader(conn)
    gc.disable()
    start = loop.time()
    begin, end = start + spec.warmup, start + spec.warmup + spec.duration
    if spec.rate is None:
        for _ in range(spec.in_flight):
            may_send()
    else:
        period = 1.0 / spec.rate

        def scheduled(at: float) -> None:
            if at < end:
                send()
                loop.call_at(at + period, scheduled, at + period)

        loop.call_at(start, scheduled, start)
    await asyncio.sleep(begin - loop.time())
    window = Window(spec.server_pid)
    first = state["sent"]
    await asyncio.sleep(end - loop.time())
    result = window.close()
    last = state["sent"]
    stopped = True
    await asyncio.sleep(1.0)  # the updates still due
    gc.enable()
    rss_after = rss_kib(spec.server_pid)
    shown = await loop.run_in_executor(None, _live_metrics, spec.url) if spec.check_replies else {}
    inside = [(k, when) for k, when in arrivals if first <= k < last]
    latencies = [when - replied_at[k] for k, when in inside if not math.isnan(replied_at[k])]
    from_send = [when - sent_at[k] for k, when in inside]
    for conn in [sender, *subscribers]:
        conn.close()
    deliveries = len([1 for k, when in arrivals if begin <= when < end])
    result.update(
        subscribers=len(subscribers),
        stalled=spec.stalled,
        refused=refused,
        sends=last - first,
        send_rate=(last - first) / spec.duration,
        deliveries=deliveries,
        deliveries_per_s=deliveries / spec.duration,
        missed=(last - first) * everyone - len(inside),
        other_frames=state["other"],
        update_bytes=state["update_bytes"],
        rss_before_kib=rss_before,
        rss_after_kib=rss_after,
        **shown,
        server_cpu_us_per_delivery=float(result["server_cpu_s"] or 0) / max(deliveries, 1) * 1e6,
    )
    result.update(percentiles(latencies, "latency_ms"))
    result.update(percentiles(from_send, "from_send_ms"))
    return result


def _live_metrics(url: str) -> Result:
    """The real server's live-update metrics (GET /metrics on its WebSocket's port)."""
    address = url.replace("ws://", "http://", 1).rsplit("/", 1)[0] + "/metrics"
    with urllib.request.urlopen(address, timeout=10) as response:
        text = response.read().decode()
    names = {
        "morelia_resyncs_total": "resyncs",
        "morelia_update_backlog_largest": "backlog_largest",
        "morelia_update_backlog": "backlog",
        "morelia_subscribers": "subscribed",
    }
    found: Result = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            found[names[name]] = int(float(value))
    return found


async def hold(spec: Hold) -> Result:
    conns = await connect_all(
        spec.url, len(spec.subscribe_frames), spec.connect_concurrency, SLOW_HANDSHAKE
    )
    refused = 0
    for conn, frame in zip(conns, _encoded(spec.subscribe_frames), strict=True):
        if OK_MARK not in await conn.request(frame):
            refused += 1
    heard = 0

    def on_update(conn: Conn, payload: bytes) -> None:
        nonlocal heard
        heard += 1

    for conn in conns:
        conn.on_reply = on_update
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.sleep(spec.seconds)
    alive = sum(1 for conn in conns if conn.transport and not conn.transport.is_disconnected)
    for conn in conns:
        conn.close()
    return {"subscribers": len(conns), "refused": refused, "alive": alive, "updates": heard}


async def run(spec: AnySpec) -> Result:
    match spec:
        case RoundTrips():
            return await round_trips(spec)
        case OpenLoop():
            return await open_loop(spec)
        case Mixed():
            return await mixed(spec)
        case Storm():
            return await storm(spec)
        case Idle():
            return await idle(spec)
        case History():
            return await history(spec)
        case FanOut():
            return await fan_out(spec)
        case Hold():
            return await hold(spec)


def main() -> None:
    spec = msgspec.json.decode(sys.stdin.buffer.read(), type=AnySpec)
    result = asyncio.run(run(spec))
    sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")


if __name__ == "__main__":
    main()

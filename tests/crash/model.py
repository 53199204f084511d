"""What the server may hold after a crash, item by item, and the judge of what it does hold.

Every change a writer attempts is recorded here *before* its request is sent, so each item
knows its acknowledged state and the one change (if any) that was in flight when the server
died. After a restart the judge compares what the server shows with what is allowed:

- an acknowledged change missing or undone is **lost**;
- anything no writer attempted, anything that was refused or already seen absent, or an
  in-flight change that is only partly there, is a **phantom**.

An in-flight change found wholly applied becomes acknowledged state (it is on disk now); one
found wholly absent becomes forbidden for good. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


class Status(enum.Enum):
    PENDING = "pending"  # created by a request still in flight: may or may not exist
    LIVE = "live"  # acknowledged (or seen after a restart): must exist
    DELETED = "deleted"  # its deletion was acknowledged (or seen): must not exist
    ABSENT = "absent"  # never acknowledged and seen missing, or refused: must never exist
    REPORTED = "reported"  # found lost or phantom once: reported, no longer judged


@dataclass
class Tally:
    """Counts for the whole run."""

    kills: int = 0
    acked: int = 0  # state changes acknowledged with 200/201
    acked_checked: int = 0  # ... of them checked after a restart (all, unless a run aborts)
    checked: int = 0  # acknowledged items judged after a restart (an item once per restart)
    in_flight: int = 0  # changes whose reply never came (judged after the restart)
    applied: int = 0  # ... of them found wholly applied
    not_applied: int = 0  # ... of them found wholly absent
    lost: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # refusals, harness or server errors
    diverged: list[str] = field(default_factory=list)  # servers sharing a stream that differ
    wiped: int = 0  # servers sharing a stream restarted from an empty data directory
    from_local: int = 0  # ... restarted from their own last snapshot
    from_stream: int = 0  # ... started (or caught up) from the stream's snapshot
    torn_tails: int = 0  # torn journal tails the server cut at start-up (expected)
    bytes_dropped: int = 0  # journal bytes the simulated power losses dropped

    lost_kinds: Counter[str] = field(default_factory=Counter)
    phantom_kinds: Counter[str] = field(default_factory=Counter)

    def lose(self, kind: str, what: str) -> None:
        self.lost.append(what)
        self.lost_kinds[kind] += 1

    def haunt(self, kind: str, what: str) -> None:
        self.phantom.append(what)
        self.phantom_kinds[kind] += 1

    def resolved(self, applied: bool) -> None:
        if applied:
            self.applied += 1
        else:
            self.not_applied += 1


# --- messages ---------------------------------------------------------------------------------


def tag_of(text: str | None) -> str | None:
    """Every attempted text starts with its message's tag and a space."""
    if not text or " " not in text:
        return None
    return text.split(" ", 1)[0]


@dataclass(eq=False)
class MessageModel:
    tag: str  # unique per message; the first word of each of its texts and its client_id
    author: int
    flow: int
    texts: list[str]  # every text attempted for it, oldest first; texts[0] was sent
    status: Status = Status.PENDING
    id: int | None = None
    text: str = ""  # the text acknowledged last (once LIVE)
    edit_in_flight: str | None = None
    delete_in_flight: bool = False

    def describe(self) -> str:
        return f"message {self.id} ({self.tag}, by user {self.author})"


@dataclass(frozen=True)
class SeenMessage:
    """A message as all_messages (document dialect) shows it."""

    id: int
    text: str | None
    author: int
    flow: int
    client_id: str | None
    edited: bool  # edited_message is set, with status true


def judge_messages(
    model: dict[str, MessageModel], seen: Iterable[SeenMessage], tally: Tally
) -> None:
    by_tag: dict[str, SeenMessage] = {}
    for message in seen:
        tag = tag_of(message.text)
        if tag is None or tag not in model:
            tally.haunt(
                "message",
                f"message {message.id} has a text no writer attempted: {message.text!r:.80}",
            )
        elif tag in by_tag:
            tally.haunt(
                "message", f"message {tag} is there twice: ids {by_tag[tag].id} and {message.id}"
            )
        else:
            by_tag[tag] = message
    for item in model.values():
        _judge_message(item, by_tag.get(item.tag), tally)


def _shape_problem(item: MessageModel, seen: SeenMessage) -> str | None:
    """What is only half there in a message whose text is allowed, if anything."""
    if item.id is not None and seen.id != item.id:
        return f"has id {seen.id}, acknowledged as {item.id}"
    if seen.author != item.author:
        return f"is credited to user {seen.author}, not {item.author}"
    if seen.flow != item.flow:
        return f"is in flow {seen.flow}, not {item.flow}"
    if seen.client_id != item.tag:
        return f"has client_id {seen.client_id!r}, not {item.tag!r}"
    edited = seen.text != item.texts[0]
    if seen.edited != edited:
        return f"shows text {seen.text!r:.60} but edited={seen.edited}"
    return None


def _judge_message(item: MessageModel, seen: SeenMessage | None, tally: Tally) -> None:
    status = item.status
    if status is Status.PENDING:  # its send was in flight
        if seen is None:
            item.status = Status.ABSENT
            tally.resolved(False)
        elif seen.text != item.texts[0] or _shape_problem(item, seen) is not None:
            tally.haunt("message", f"in-flight send {item.tag} is half there: {seen}")
            item.status = Status.REPORTED
        else:
            item.status, item.id, item.text = Status.LIVE, seen.id, item.texts[0]
            tally.resolved(True)
    elif status is Status.LIVE:
        tally.checked += 1
        _judge_live_message(item, seen, tally)
        item.edit_in_flight, item.delete_in_flight = None, False
    elif status is Status.DELETED:
        tally.checked += 1
        if seen is not None:
            tally.lose("delete", f"{item.describe()} was deleted (acknowledged) but is back")
            item.status = Status.REPORTED
    elif status is Status.ABSENT and seen is not None:
        tally.haunt(
            "message",
            f"{item.describe()} was never acknowledged and was gone (or refused), "
            f"but now shows {seen.text!r:.60}",
        )
        item.status = Status.REPORTED


def _judge_live_message(item: MessageModel, seen: SeenMessage | None, tally: Tally) -> None:
    if seen is None:
        if item.delete_in_flight:
            item.status = Status.DELETED
            tally.resolved(True)
            return
        tally.lose(
            "message", f"{item.describe()}, acknowledged with text {item.text!r:.60}, is gone"
        )
        item.status = Status.REPORTED
        return
    allowed = {item.text}
    if item.edit_in_flight is not None:
        allowed.add(item.edit_in_flight)
    if seen.text not in allowed:
        if seen.text in item.texts:
            tally.lose(
                "edit",
                f"{item.describe()}: acknowledged text {item.text!r:.60} is lost, "
                f"the server shows the older {seen.text!r:.60}",
            )
        else:
            tally.haunt(
                "message", f"{item.describe()} shows {seen.text!r:.60}, never attempted for it"
            )
        item.status = Status.REPORTED
        return
    problem = _shape_problem(item, seen)
    if problem is not None:
        tally.haunt("message", f"{item.describe()} {problem}")
        item.status = Status.REPORTED
        return
    if item.edit_in_flight is not None:
        tally.resolved(seen.text == item.edit_in_flight)
    if item.delete_in_flight:
        tally.resolved(False)
    assert seen.text is not None
    item.text = seen.text


# --- flows ------------------------------------------------------------------------------------


@dataclass(eq=False)
class FlowModel:
    title: str  # unique per flow
    owner: int
    info: str | None
    status: Status = Status.PENDING
    id: int | None = None


@dataclass(frozen=True)
class SeenFlow:
    id: int
    type: str
    title: str
    info: str | None
    owner: int | None


GENERAL = "General"


def judge_flows(
    model: dict[str, FlowModel], general_id: int, seen: Iterable[SeenFlow], tally: Tally
) -> None:
    by_title: dict[str, SeenFlow] = {}
    for flow in seen:
        if flow.title == GENERAL and flow.id == general_id:
            continue
        if flow.title not in model:
            tally.haunt("flow", f"flow {flow.id} {flow.title!r} was never attempted")
        elif flow.title in by_title:
            tally.haunt("flow", f"flow {flow.title!r} is there twice")
        else:
            by_title[flow.title] = flow
    for item in model.values():
        _judge_flow(item, by_title.get(item.title), tally)


def _flow_problem(item: FlowModel, seen: SeenFlow) -> str | None:
    if item.id is not None and seen.id != item.id:
        return f"has id {seen.id}, acknowledged as {item.id}"
    if (seen.type, seen.owner, seen.info) != ("group", item.owner, item.info):
        return f"is {seen}, not a group of user {item.owner} with info {item.info!r}"
    return None


def _judge_flow(item: FlowModel, seen: SeenFlow | None, tally: Tally) -> None:
    status = item.status
    if status is Status.PENDING:
        if seen is None:
            item.status = Status.ABSENT
            tally.resolved(False)
        elif problem := _flow_problem(item, seen):
            tally.haunt("flow", f"in-flight flow {item.title!r} is half there: it {problem}")
            item.status = Status.REPORTED
        else:
            item.status, item.id = Status.LIVE, seen.id
            tally.resolved(True)
    elif status is Status.LIVE:
        tally.checked += 1
        if seen is None:
            tally.lose("flow", f"flow {item.id} {item.title!r} (acknowledged) is gone")
            item.status = Status.REPORTED
        elif problem := _flow_problem(item, seen):
            tally.haunt("flow", f"flow {item.title!r} {problem}")
            item.status = Status.REPORTED
    elif status is Status.ABSENT and seen is not None:
        tally.haunt("flow", f"flow {item.title!r} was never acknowledged and gone, now is back")
        item.status = Status.REPORTED


# --- users ------------------------------------------------------------------------------------


@dataclass(eq=False)
class UserModel:
    login: str  # unique per user
    password: str
    username: str | None
    email: str | None
    status: Status = Status.PENDING
    id: int | None = None
    token: str | None = None  # from the registration reply, or a login after a restart
    login_checked: bool = False  # logged in with its password after a restart

    def describe(self) -> str:
        return f"user {self.id} {self.login!r}"


@dataclass
class UserProbe:
    """What the server said about one user: the probes each status needs (see needs_login)."""

    ping: int | None = None  # ping_pong with the user's token: the code
    login: int | None = None  # auth with login and password: the code
    login_id: int | None = None
    login_token: str | None = None
    profile: tuple[str, str, str | None] | None = None  # (login, username, email), own view


def needs_login(user: UserModel) -> bool:
    """Whether judging this user needs a password check (which costs an argon2 hash)."""
    if user.status is Status.LIVE:
        return not user.login_checked
    return user.status in (Status.PENDING, Status.ABSENT)


def _profile_problem(user: UserModel, probe: UserProbe) -> str | None:
    expected = (user.login, user.username or user.login, user.email)
    if probe.profile != expected:
        return f"profile is {probe.profile}, registered as {expected}"
    return None


def judge_user(user: UserModel, probe: UserProbe, tally: Tally) -> None:
    status = user.status
    if status is Status.PENDING:
        if probe.login == 404:
            user.status = Status.ABSENT
            tally.resolved(False)
        elif probe.login == 200 and not (problem := _profile_problem(user, probe)):
            user.status, user.id, user.token = Status.LIVE, probe.login_id, probe.login_token
            user.login_checked = True
            tally.resolved(True)
        else:
            why = f"login says {probe.login}" if probe.login != 200 else problem
            tally.haunt("user", f"in-flight registration of {user.login!r} is half there: {why}")
            user.status = Status.REPORTED
    elif status is Status.LIVE:
        tally.checked += 1
        if probe.ping != 200:
            tally.lose(
                "user",
                f"{user.describe()} (acknowledged): its registration token gets {probe.ping}",
            )
            user.status = Status.REPORTED
        elif probe.login is not None:
            if probe.login != 200:
                tally.lose("user", f"{user.describe()} (acknowledged) cannot log in: {probe.login}")
                user.status = Status.REPORTED
            elif probe.login_id != user.id or (problem := _profile_problem(user, probe)):
                why = f"logs in as {probe.login_id}" if probe.login_id != user.id else problem
                tally.haunt("user", f"{user.describe()}: {why}")
                user.status = Status.REPORTED
            else:
                user.login_checked = True
    elif status is Status.ABSENT and probe.login != 404:
        tally.haunt(
            "user",
            f"user {user.login!r} was never acknowledged and gone, but login says {probe.login}",
        )
        user.status = Status.REPORTED


@dataclass(frozen=True)
class SeenUser:
    id: int
    login: str


def judge_user_list(model: dict[str, UserModel], seen: Iterable[SeenUser], tally: Tally) -> None:
    """Every user the server holds must be one a writer tried to register, once.

    Whether each acknowledged user is there, and each refused one is not, judge_user decides.
    """
    logins: set[str] = set()
    for user in seen:
        item = model.get(user.login)
        if item is None:
            tally.haunt("user", f"user {user.id} {user.login!r} was never registered")
        elif user.login in logins:
            tally.haunt("user", f"user {user.login!r} is there twice")
        elif item.status is Status.LIVE and item.id != user.id:
            tally.haunt("user", f"{item.describe()} is there as user {user.id}")
            item.status = Status.REPORTED
        logins.add(user.login)

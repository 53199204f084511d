"""Every state transition and query. Sync, pure Python: no trio, no sockets, no clocks.

Commands follow decide-then-apply: a command function checks the request against the state
and returns the event that records it (raising a MoreliaError, before any change, when it is
not allowed); ``apply`` then changes the state. The journal stores the same events, so replay
after a restart runs exactly the code that ran live. Times and tokens come in as arguments.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import TypeVar, assert_never

import msgspec

from .accounts import canonical_login
from .chunked import ChunkedById
from .errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized
from .models import (
    AnyEvent,
    Attachment,
    Flow,
    FlowAdded,
    FlowType,
    Message,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    SessionOpened,
    Snapshot,
    User,
    UserDeleted,
    UserRegistered,
)
from .sizes import MESSAGE_KEYS, flow_size, json_size, message_content, profile_size

GENERAL_TITLE = "General"
MESSAGE_CHUNK = 4096  # messages per chunk: what a snapshot shares, and encodes at a time
MAX_SESSIONS_PER_USER = 100  # the oldest session ends when a user logs in once more
MAX_ID = 2**31 - 1
TICK = 1e-6  # seconds between two events' times, at least

# Kinds of entries in the change log, packed into one integer with the id.
_MESSAGE, _FLOW, _USER = 0, 1, 2
T = TypeVar("T")


def hash_token(token: str) -> bytes:
    """Tokens are kept only as SHA-256 digests: a leaked snapshot holds no usable token."""
    return hashlib.sha256(token.encode()).digest()


class Credentials(msgspec.Struct, frozen=True):
    user_id: int | None
    token: str | None


class NewMessage(msgspec.Struct, kw_only=True):
    text: str | None = None
    picture: Attachment | None = None
    video: Attachment | None = None
    audio: Attachment | None = None
    document: Attachment | None = None
    emoji: Attachment | None = None
    reply_to: int | None = None
    client_id: int | str | None = None  # as the client sent it: some check its type


class Bounds(msgspec.Struct, frozen=True):
    """How much one reply may hold: a page ends at whichever cap it reaches first."""

    items: int
    bytes: int
    unit: float | None = None  # the list dialect's whole seconds: a page ends between them


class Listing(msgspec.Struct, kw_only=True):
    """What a query found, with what is needed to render it in either dialect."""

    users: list[User] = []
    flows: list[Flow] = []
    messages: list[Message] = []
    usernames: dict[int, str] = {}  # author id -> username, for every message listed
    flow_types: dict[int, FlowType] = {}  # flow id -> type, for every message listed
    partial: bool = False  # more matched than the cap allowed


class State:
    """Users, sessions, flows and messages, with the indexes the queries need."""

    def __init__(self) -> None:
        self.seq = 0  # journal sequence number of the last event applied
        self.clock = 0.0  # latest event time: event times never go backwards
        self.next_user_id = 1
        self.next_flow_id = 1
        self.next_message_id = 1
        self.users: dict[int, User] = {}
        self.logins: dict[str, int] = {}  # as registered
        # Canonical form -> user id (CONTRACT §8.3). A form two users share (both registered
        # before logins were compared this way) is in shared_logins instead, with both ids.
        self.canonical_logins: dict[str, int] = {}
        self.shared_logins: dict[str, set[int]] = {}
        self.sessions: dict[bytes, int] = {}  # token hash -> user id
        self.user_sessions: dict[int, list[bytes]] = {}  # oldest first
        self.flows: dict[int, Flow] = {}
        self.public_flows: list[int] = []  # groups and channels, in id order
        self.user_chats: dict[int, list[int]] = {}  # user id -> chats they belong to
        # By id, in chunks a capture shares: it copies a reference per chunk, not per message.
        self.messages: ChunkedById[Message] = ChunkedById(MESSAGE_CHUNK)
        self.flow_messages: dict[int, list[int]] = {}  # flow id -> message ids, oldest first
        # Bytes of each message's content (sizes.message_content), by id - 1; 0 once deleted.
        # Reply pages and storage quotas count them; kept here so neither measures again.
        self.message_sizes = array("Q")
        self.stored_bytes: dict[int, int] = {}  # author id -> content bytes of live messages
        self.owned_flows: dict[int, int] = {}  # user id -> flows they created
        # Change log for get_update: (time, key) in time order. An edit appends a new entry;
        # entries whose item has changed since, or is gone, are skipped when read.
        self.change_times = array("d")
        self.change_keys = array("q")

    # --- sessions -----------------------------------------------------------------------

    def authenticate(self, creds: Credentials) -> int:
        """Return the user id the credentials prove, or raise Unauthorized."""
        if creds.user_id is None or not creds.token:
            raise Unauthorized("This request needs your user id and auth_id.")
        owner = self.sessions.get(hash_token(creds.token))
        if owner is None or owner != creds.user_id:
            raise Unauthorized("The auth_id is not valid for this user; log in again.")
        return owner

    def now(self, wall_clock: float) -> float:
        # Strictly increasing event times: "everything from the last time received" then
        # always moves on, even when the wall clock stands still or steps back.
        return max(wall_clock, self.clock + TICK)

    def _change(self, time: float, kind: int, item_id: int) -> None:
        self.change_times.append(time)
        self.change_keys.append(item_id * 4 + kind)

    def may_see(self, flow: Flow, user_id: int) -> bool:
        return flow.type != "chat" or user_id in flow.users

    def visible_flow(self, flow_id: int, user_id: int) -> Flow:
        flow = self.flows.get(flow_id)
        if flow is None or not self.may_see(flow, user_id):
            raise NotFound("The field flow.id names no flow.")
        return flow

    def visible_message(self, message_id: int, user_id: int) -> Message:
        message = self.messages.get(message_id)
        if message is None or not self.may_see(self.flows[message.flow_id], user_id):
            raise NotFound("The field message.id names no message.")
        return message

    def visible_flow_ids(self, user_id: int) -> list[int]:
        return sorted(itertools.chain(self.public_flows, self.user_chats.get(user_id, ())))


# --- commands: check, then return the event ---------------------------------------------------


def bootstrap(state: State, now: float) -> FlowAdded | None:
    """A brand-new server gets one public group, so clients that expect a flow find one."""
    if state.seq or state.flows:
        return None
    time = state.now(now)
    general = Flow(
        id=state.next_flow_id,
        type="group",
        title=GENERAL_TITLE,
        time=time,
        info="Everyone can read and write here.",
    )
    return FlowAdded(time=time, flow=general)


def register_user(
    state: State,
    login: str,
    password_hash: str,
    username: str | None,
    email: str | None,
    token: str,
    now: float,
) -> UserRegistered:
    canonical = canonical_login(login)  # every login registered is indexed by its form
    if canonical in state.canonical_logins or canonical in state.shared_logins:
        raise Conflict("The login in the field user.login is taken already.")
    if state.next_user_id > MAX_ID:
        raise Conflict("This server cannot hold more users.")
    time = state.now(now)
    user = User(
        id=state.next_user_id,
        login=login,
        password_hash=password_hash,
        username=username or login,
        email=email,
        time=time,
    )
    return UserRegistered(time=time, user=user, token_hash=hash_token(token))


def find_login(state: State, login: str) -> tuple[int, str]:
    """Return (user id, password hash) for a login, so the caller can verify off the owner.

    The login as registered wins; else its canonical form, if that names one user only.
    """
    user_id = state.logins.get(login)
    if user_id is None:
        user_id = state.canonical_logins.get(canonical_login(login))
    if user_id is None:
        raise NotFound("The field user.login names no user.")
    return user_id, state.users[user_id].password_hash


def open_session(
    state: State, user_id: int, password_hash: str, token: str, now: float
) -> SessionOpened:
    _check_unchanged(state, user_id, password_hash)
    return SessionOpened(time=state.now(now), user_id=user_id, token_hash=hash_token(token))


def delete_user(state: State, user_id: int, password_hash: str, now: float) -> UserDeleted:
    _check_unchanged(state, user_id, password_hash)
    return UserDeleted(time=state.now(now), user_id=user_id)


def _check_unchanged(state: State, user_id: int, password_hash: str) -> None:
    # The password was verified outside the owner; make sure the account it was verified
    # against is still the same one (it may have been deleted, and its login taken again).
    user = state.users.get(user_id)
    if user is None or user.password_hash != password_hash:
        raise NotFound("This user does not exist any more.")


def add_flow(
    state: State,
    creds: Credentials,
    flow_type: FlowType,
    title: str,
    info: str | None,
    members: list[int],
    now: float,
    max_owned: int | None = None,
) -> FlowAdded:
    owner = state.authenticate(creds)
    if max_owned is not None and state.owned_flows.get(owner, 0) >= max_owned:
        raise Forbidden(f"You have created {max_owned} flows, the most one user may.")
    users = sorted({owner, *members})
    if flow_type == "chat":
        if owner not in members and members:
            raise Forbidden("You can only create a chat that you are a member of.")
        if len(users) > 2:
            raise BadRequest("A chat has at most two members; create a group instead.")
    for user_id in users:
        if user_id not in state.users:
            raise NotFound("The field flow.users names a user that does not exist.")
    if state.next_flow_id > MAX_ID:
        raise Conflict("This server cannot hold more flows.")
    time = state.now(now)
    flow = Flow(
        id=state.next_flow_id,
        type=flow_type,
        title=title,
        info=info,
        owner=owner,
        users=tuple(users),
        time=time,
    )
    return FlowAdded(time=time, flow=flow)


def send_message(
    state: State,
    creds: Credentials,
    flow_id: int,
    new: NewMessage,
    now: float,
    quota: int | None = None,
) -> MessageSent:
    author = state.authenticate(creds)
    flow = state.visible_flow(flow_id, author)
    if flow.type == "channel" and flow.owner != author:
        raise Forbidden("Only the owner of a channel writes to it.")
    if new.reply_to is not None:
        quoted = state.messages.get(new.reply_to)
        if quoted is None or quoted.flow_id != flow_id:
            raise NotFound("The field message.reply_to names no message in this flow.")
    if state.next_message_id > MAX_ID:
        raise Conflict("This server cannot hold more messages.")
    time = state.now(now)
    message = Message(
        id=state.next_message_id,
        flow_id=flow_id,
        author_id=author,
        time=time,
        text=new.text,
        picture=new.picture,
        video=new.video,
        audio=new.audio,
        document=new.document,
        emoji=new.emoji,
        reply_to=new.reply_to,
        client_id=new.client_id,
    )
    if quota is not None:
        _check_quota(state, author, message_content(message), quota)
    return MessageSent(time=time, message=message)


def _check_quota(state: State, author: int, more: int, quota: int) -> None:
    if more > 0 and state.stored_bytes.get(author, 0) + more > quota:
        raise PayloadTooLarge("The storage quota is reached: delete messages to make room.")


def _own_message(state: State, creds: Credentials, message_id: int, flow_id: int | None) -> Message:
    user_id = state.authenticate(creds)
    message = state.visible_message(message_id, user_id)
    if flow_id is not None and message.flow_id != flow_id:
        raise NotFound("The field message.id names no message in the flow of flow.id.")
    if message.author_id != user_id:
        raise Forbidden("Only the author of a message may change or delete it.")
    return message


def edit_message(
    state: State,
    creds: Credentials,
    message_id: int,
    flow_id: int | None,
    text: str,
    now: float,
    quota: int | None = None,
) -> MessageEdited:
    message = _own_message(state, creds, message_id, flow_id)
    if quota is not None:
        _check_quota(state, message.author_id, json_size(text) - json_size(message.text), quota)
    return MessageEdited(time=state.now(now), message_id=message.id, text=text)


def delete_message(
    state: State, creds: Credentials, message_id: int, flow_id: int | None, now: float
) -> MessageDeleted:
    message = _own_message(state, creds, message_id, flow_id)
    return MessageDeleted(time=state.now(now), message_id=message.id)


# --- applying events --------------------------------------------------------------------------


def apply(state: State, event: AnyEvent) -> None:
    """Change the state as the event records. Never raises on an event a command returned."""
    state.clock = max(state.clock, event.time)
    match event:
        case UserRegistered(user=user, token_hash=token_hash):
            state.users[user.id] = user
            _add_login(state, user)
            state.next_user_id = max(state.next_user_id, user.id + 1)
            _add_session(state, user.id, token_hash)
            state._change(event.time, _USER, user.id)
        case SessionOpened(user_id=user_id, token_hash=token_hash):
            _add_session(state, user_id, token_hash)
        case UserDeleted(user_id=user_id):
            _remove_login(state, state.users.pop(user_id))
            for token_hash in state.user_sessions.pop(user_id, ()):
                del state.sessions[token_hash]
        case FlowAdded(flow=flow):
            state.flows[flow.id] = flow
            state.flow_messages[flow.id] = []
            state.next_flow_id = max(state.next_flow_id, flow.id + 1)
            if flow.owner is not None:
                state.owned_flows[flow.owner] = state.owned_flows.get(flow.owner, 0) + 1
            if flow.type == "chat":
                for user_id in flow.users:
                    state.user_chats.setdefault(user_id, []).append(flow.id)
            else:
                state.public_flows.append(flow.id)
            state._change(event.time, _FLOW, flow.id)
        case MessageSent(message=message):
            state.messages.append(message.id, message)
            state.flow_messages[message.flow_id].append(message.id)
            state.next_message_id = max(state.next_message_id, message.id + 1)
            _weigh(state, message)
            state._change(event.time, _MESSAGE, message.id)
        case MessageEdited(message_id=message_id, text=text):
            edited = msgspec.structs.replace(
                state.messages[message_id], text=text, edited_time=event.time
            )
            state.messages.replace(message_id, edited)
            _weigh(state, edited)
            state._change(event.time, _MESSAGE, message_id)
        case MessageDeleted(message_id=message_id):
            message = state.messages[message_id]
            state.messages.replace(message_id, None)
            _weigh(state, message, deleted=True)
            ids = state.flow_messages[message.flow_id]
            del ids[bisect_left(ids, message_id)]
        case _:
            assert_never(event)


def _weigh(state: State, message: Message, *, deleted: bool = False) -> None:
    """Record the content size of a message just sent, edited or deleted."""
    sizes, index = state.message_sizes, message.id - 1
    if index >= len(sizes):  # ids skipped on the way (deleted before a snapshot) weigh 0
        sizes.extend(itertools.repeat(0, index + 1 - len(sizes)))
    size = 0 if deleted else message_content(message)
    author = message.author_id
    state.stored_bytes[author] = state.stored_bytes.get(author, 0) + size - sizes[index]
    sizes[index] = size


def _add_login(state: State, user: User) -> None:
    state.logins[user.login] = user.id
    canonical = canonical_login(user.login)
    if (shared := state.shared_logins.get(canonical)) is not None:
        shared.add(user.id)
        return
    other = state.canonical_logins.setdefault(canonical, user.id)
    if other != user.id:  # both registered before logins were compared by their forms
        del state.canonical_logins[canonical]
        state.shared_logins[canonical] = {other, user.id}


def _remove_login(state: State, user: User) -> None:
    del state.logins[user.login]
    canonical = canonical_login(user.login)
    shared = state.shared_logins.get(canonical)
    if shared is None:
        del state.canonical_logins[canonical]
        return
    shared.discard(user.id)
    if len(shared) == 1:  # the form names one user again
        state.canonical_logins[canonical] = shared.pop()
        del state.shared_logins[canonical]


def _add_session(state: State, user_id: int, token_hash: bytes) -> None:
    state.sessions[token_hash] = user_id
    tokens = state.user_sessions.setdefault(user_id, [])
    tokens.append(token_hash)
    if len(tokens) > MAX_SESSIONS_PER_USER:
        del state.sessions[tokens.pop(0)]


# --- queries ----------------------------------------------------------------------------------


def ping(state: State, creds: Credentials) -> None:
    state.authenticate(creds)


def user_info(state: State, creds: Credentials, others: list[int]) -> Listing:
    """The requester's own profile first, then every other named user's."""
    me = state.authenticate(creds)
    found = [state.users[me]]
    for index, user_id in enumerate(others, start=1):
        user = state.users.get(user_id)
        if user is None:  # the index only: the id is a value the client sent
            raise NotFound(f"The field user[{index}] names no user.")
        found.append(user)
    return Listing(users=found)


def all_flow(state: State, creds: Credentials, since: float, bounds: Bounds) -> Listing:
    """Flows one may see created at or after ``since``, oldest first (ids follow times)."""
    user_id = state.authenticate(creds)
    flows = [state.flows[i] for i in state.visible_flow_ids(user_id)]
    start = bisect_left(flows, since, key=lambda flow: flow.time) if since > 0 else 0
    found, partial = _page(
        ((flow.time, flow, flow_size(flow)) for flow in itertools.islice(flows, start, None)),
        since,
        bounds,
    )
    return Listing(flows=found, partial=partial)


def all_messages(
    state: State, creds: Credentials, flow_id: int | None, since: float, bounds: Bounds
) -> Listing:
    """Messages with time >= since, oldest first, in one flow or every flow one may read."""
    user_id = state.authenticate(creds)
    if flow_id is not None:
        flow_ids = [state.visible_flow(flow_id, user_id).id]
    else:
        flow_ids = state.visible_flow_ids(user_id)
    streams = [_messages_since(state, i, since) for i in flow_ids]
    merged = (
        heapq.merge(*streams, key=lambda m: (m.time, m.id))
        if len(streams) > 1
        else itertools.chain(*streams)
    )
    size = _MessageSize(state)
    found, partial = _page(((m.time, m, size(m)) for m in merged), since, bounds)
    return _listing(state, messages=found, partial=partial)


def _page(
    found: Iterable[tuple[float, T, int]], since: float, bounds: Bounds
) -> tuple[list[T], bool]:
    """The first of ``found`` (time, item, size) that fit the bounds, and whether more remain.

    A page ends before the item that would take it past either cap, but always holds one
    item at least. With a ``unit`` (the list dialect's whole seconds) the client can only ask
    again from a time rounded down to it, so a partial page never ends inside a unit and
    always reaches past the unit of ``since``. Asking again from the last time received then
    always moves on, at the price of a page above the caps when a second is crowded.
    """
    page: list[T] = []
    taken = 0
    cap, byte_cap, unit = bounds.items, bounds.bytes, bounds.unit
    since_unit = last_unit = since // unit if unit else 0.0
    for time, item, size in found:
        if (
            page
            and (len(page) >= cap or taken + size > byte_cap)
            and (unit is None or (time // unit != last_unit and last_unit != since_unit))
        ):
            return page, True
        page.append(item)
        taken += size
        if unit:
            last_unit = time // unit
    return page, False


class _MessageSize:
    """The reply size of a message: its keys, its content, and its author's name."""

    __slots__ = ("names", "sizes", "users")

    def __init__(self, state: State) -> None:
        self.sizes = state.message_sizes
        self.users = state.users
        self.names: dict[int, int] = {}  # author id -> bytes of their name, once per query

    def __call__(self, message: Message) -> int:
        name = self.names.get(message.author_id)
        if name is None:
            author = self.users.get(message.author_id)
            name = json_size(author.username if author else DELETED_USERNAME)
            self.names[message.author_id] = name
        return MESSAGE_KEYS + self.sizes[message.id - 1] + name


def _messages_since(state: State, flow_id: int, since: float) -> Iterator[Message]:
    ids = state.flow_messages[flow_id]
    messages = state.messages
    start = bisect_left(ids, since, key=lambda i: messages[i].time) if since > 0 else 0
    return (messages[i] for i in itertools.islice(ids, start, None))


def get_update(
    state: State, creds: Credentials, flow_id: int | None, since: float, bounds: Bounds
) -> Listing:
    """Everything visible that changed at or after ``since``, oldest change first."""
    user_id = state.authenticate(creds)
    visible = set(state.visible_flow_ids(user_id))
    if flow_id is not None:
        visible = {state.visible_flow(flow_id, user_id).id}
    found, partial = _page(_changes_since(state, since, visible, flow_id), since, bounds)
    return _listing(
        state,
        users=[item for item in found if isinstance(item, User)],
        flows=[item for item in found if isinstance(item, Flow)],
        messages=[item for item in found if isinstance(item, Message)],
        partial=partial,
    )


def _changes_since(
    state: State, since: float, visible: set[int], flow_id: int | None
) -> Iterator[tuple[float, User | Flow | Message, int]]:
    """(time, item, size) for each visible change at or after ``since``, oldest first."""
    times, keys = state.change_times, state.change_keys
    message_size = _MessageSize(state)
    for index in range(bisect_left(times, since), len(times)):
        time = times[index]
        item_id, kind = divmod(keys[index], 4)
        if kind == _MESSAGE:
            message = state.messages.get(item_id)
            if (
                message is not None
                and message.flow_id in visible
                and (message.edited_time or message.time) == time
            ):
                yield time, message, message_size(message)
        elif kind == _FLOW:
            if item_id in visible:
                flow = state.flows[item_id]
                yield time, flow, flow_size(flow)
        elif flow_id is None and (user := state.users.get(item_id)) is not None:
            yield time, user, profile_size(user)


def _listing(
    state: State,
    *,
    users: Iterable[User] = (),
    flows: Iterable[Flow] = (),
    messages: list[Message],
    partial: bool,
) -> Listing:
    usernames: dict[int, str] = {}
    flow_types: dict[int, FlowType] = {}
    for message in messages:
        author = state.users.get(message.author_id)
        usernames[message.author_id] = author.username if author else DELETED_USERNAME
        flow_types[message.flow_id] = state.flows[message.flow_id].type
    return Listing(
        users=list(users),
        flows=list(flows),
        messages=messages,
        usernames=usernames,
        flow_types=flow_types,
        partial=partial,
    )


DELETED_USERNAME = "Deleted user"


# --- snapshots --------------------------------------------------------------------------------


class Capture(msgspec.Struct, frozen=True, kw_only=True):
    """The state at one point, as references to its frozen records: cheap to take in the
    owner, safe to encode elsewhere while the owner goes on (records are never changed)."""

    seq: int
    clock: float
    next_user_id: int
    next_flow_id: int
    next_message_id: int
    users: list[User]
    flows: list[Flow]
    session_tokens: list[bytes]
    session_users: list[int]
    message_chunks: list[tuple[Message | None, ...]]  # by id; None: deleted
    change_times: bytes
    change_keys: bytes


def capture(state: State) -> Capture:
    return Capture(
        seq=state.seq,
        clock=state.clock,
        next_user_id=state.next_user_id,
        next_flow_id=state.next_flow_id,
        next_message_id=state.next_message_id,
        users=list(state.users.values()),
        flows=list(state.flows.values()),
        session_tokens=list(state.sessions),  # two flat lists: no tuple per session
        session_users=list(state.sessions.values()),
        message_chunks=state.messages.chunks(),
        change_times=state.change_times.tobytes(),
        change_keys=state.change_keys.tobytes(),
    )


def from_snapshot(snapshot: Snapshot) -> State:
    """Rebuild the state and every index from a snapshot's records."""
    state = State()
    for flow in snapshot.flows:
        apply(state, FlowAdded(time=flow.time, flow=flow))
    for user in snapshot.users:
        state.users[user.id] = user
        _add_login(state, user)
    for token_hash, user_id in zip(snapshot.session_tokens, snapshot.session_users, strict=True):
        _add_session(state, user_id, token_hash)
    flow_messages = state.flow_messages
    messages = [message for chunk in snapshot.message_chunks for message in chunk]
    for message in messages:
        flow_messages[message.flow_id].append(message.id)
    state.messages = ChunkedById.of(MESSAGE_CHUNK, ((message.id, message) for message in messages))
    for message in messages:
        _weigh(state, message)
    state.change_times = array("d", snapshot.change_times)
    state.change_keys = array("q", snapshot.change_keys)
    state.seq = snapshot.seq
    state.clock = snapshot.clock
    state.next_user_id = snapshot.next_user_id
    state.next_flow_id = snapshot.next_flow_id
    state.next_message_id = snapshot.next_message_id
    return state

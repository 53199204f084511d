"""The state: users, sessions, flows and messages with their indexes; applying events.

Sync, pure Python: no trio, no sockets, no clocks. ``apply`` is the only way the state
changes, live and on replay alike; ``capture`` and ``restore`` turn it into a snapshot and back.
"""

from __future__ import annotations

import hashlib
import itertools
from array import array
from bisect import bisect_left
from typing import assert_never

import msgspec

from .accounts import canonical_login
from .chunked import ChunkedById
from .errors import NotFound, Unauthorized
from .events import (
    AdminChanged,
    AnyEvent,
    FlowAdded,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    SessionOpened,
    SuspensionChanged,
    UserDeleted,
    UserRegistered,
)
from .records import Credentials, Flow, Message, SessionProof, User
from .sizes import message_content
from .snapshot_format import Captured, Stored

MESSAGE_CHUNK = 4096  # messages per chunk: what a snapshot shares, and encodes at a time
MAX_SESSIONS_PER_USER = 100  # the oldest session ends when a user logs in once more
TICK = 1e-6  # seconds between two events' times, at least

# Kinds of entries in the change log, packed into one integer with the id.
MESSAGE, FLOW, USER, DELETED = 0, 1, 2, 3


def hash_token(token: str) -> bytes:
    """Tokens are kept only as SHA-256 digests: a leaked snapshot holds no usable token."""
    return hashlib.sha256(token.encode()).digest()


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
        self.admins: set[int] = set()  # server admins (CONTRACT §8.5)
        self.suspended: set[int] = set()  # accounts that may not log in
        # Change log for get_update: (time, key) in time order. An edit appends a new entry;
        # entries whose item has changed since, or is gone, are skipped when read.
        self.change_times = array("d")
        self.change_keys = array("q")
        # Message id -> flow id, for deleted messages only: a deletion item names its flow,
        # and who may see a deletion is who could see the message.
        # Kept as pairs (message id, flow id) too, append-only, which a capture copies as
        # one block of bytes rather than item by item.
        self.deleted_flows: dict[int, int] = {}
        self.deletion_pairs = array("q")

    # --- sessions -----------------------------------------------------------------------

    def authenticate(self, creds: Credentials | SessionProof) -> int:
        """Return the user id the credentials prove, or raise Unauthorized."""
        if isinstance(creds, SessionProof):  # a command from a shared log
            if creds.user_id is None or creds.token_hash is None:
                raise Unauthorized("This request needs your user id and auth_id.")
            digest = creds.token_hash
        else:
            if creds.user_id is None or not creds.token:
                raise Unauthorized("This request needs your user id and auth_id.")
            digest = hash_token(creds.token)
        owner = self.sessions.get(digest)
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
            state._change(event.time, USER, user.id)
        case SessionOpened(user_id=user_id, token_hash=token_hash):
            _add_session(state, user_id, token_hash)
        case UserDeleted(user_id=user_id):
            _remove_login(state, state.users.pop(user_id))
            _end_sessions(state, user_id)
            state.admins.discard(user_id)
            state.suspended.discard(user_id)
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
            state._change(event.time, FLOW, flow.id)
        case MessageSent(message=message):
            state.messages.append(message.id, message)
            state.flow_messages[message.flow_id].append(message.id)
            state.next_message_id = max(state.next_message_id, message.id + 1)
            _weigh(state, message)
            state._change(event.time, MESSAGE, message.id)
        case MessageEdited(message_id=message_id, text=text):
            edited = msgspec.structs.replace(
                state.messages[message_id], text=text, edited_time=event.time
            )
            state.messages.replace(message_id, edited)
            _weigh(state, edited)
            state._change(event.time, MESSAGE, message_id)
        case MessageDeleted(message_id=message_id):
            message = state.messages[message_id]
            state.messages.replace(message_id, None)
            _weigh(state, message, deleted=True)
            ids = state.flow_messages[message.flow_id]
            del ids[bisect_left(ids, message_id)]
            state.deleted_flows[message_id] = message.flow_id
            state.deletion_pairs.extend((message_id, message.flow_id))
            state._change(event.time, DELETED, message_id)
        case AdminChanged(user_id=user_id, admin=admin):
            if admin:
                state.admins.add(user_id)
            else:
                state.admins.discard(user_id)
        case SuspensionChanged(user_id=user_id, suspended=suspended):
            if suspended:
                state.suspended.add(user_id)
                _end_sessions(state, user_id)
            else:  # old tokens stay ended: lifting it lets the account log in again
                state.suspended.discard(user_id)
        case _:
            assert_never(event)


def _end_sessions(state: State, user_id: int) -> None:
    for token_hash in state.user_sessions.pop(user_id, ()):
        del state.sessions[token_hash]


def _weigh(state: State, message: Message, *, deleted: bool = False) -> None:
    """Record the content size of a message just sent, edited or deleted."""
    sizes, index = state.message_sizes, message.id - 1
    size = 0 if deleted else message_content(message)
    author, stored = message.author_id, state.stored_bytes
    if index == len(sizes):  # a new message: every message sent comes here
        sizes.append(size)
        stored[author] = stored.get(author, 0) + size
        return
    if index > len(sizes):  # ids skipped on the way (deleted before a snapshot) weigh 0
        sizes.extend(itertools.repeat(0, index + 1 - len(sizes)))
    stored[author] = stored.get(author, 0) + size - sizes[index]
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


# --- snapshots --------------------------------------------------------------------------------


def capture(state: State) -> Captured:
    """The state as references to its frozen records: cheap to take in the owner, safe to
    encode elsewhere while the owner goes on (records are never changed)."""
    return Captured(
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
        deletion_pairs=state.deletion_pairs.tobytes(),
        admins=sorted(state.admins),
        suspended=sorted(state.suspended),
    )


def restore(snapshot: Stored) -> State:
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
    state.deletion_pairs = array("q", snapshot.deletion_pairs)
    pairs = state.deletion_pairs
    state.deleted_flows = dict(zip(pairs[::2], pairs[1::2], strict=True))
    state.seq = snapshot.seq
    state.clock = snapshot.clock
    state.next_user_id = snapshot.next_user_id
    state.next_flow_id = snapshot.next_flow_id
    state.next_message_id = snapshot.next_message_id
    state.admins = set(snapshot.admins)
    state.suspended = set(snapshot.suspended)
    return state

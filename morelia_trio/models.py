"""Stored records, the events that change them, and the snapshot root.

Everything here is plain msgspec data: the state owner keeps records in memory, the journal
stores events, the snapshot stores records. Nothing here does I/O or imports trio.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

# An attachment as a client sent it: a string (base64 or any text encoding the client chose)
# or, as the Flutter client sends bytes, an array of integers.
Attachment: TypeAlias = str | list[int]
FlowType: TypeAlias = Literal["chat", "group", "channel"]
FLOW_TYPES: tuple[FlowType, ...] = ("chat", "group", "channel")

# Records are frozen: an edit replaces a message instead of changing it, so a snapshot can
# take a list of references in one owner turn and encode it in a thread while the owner goes on.
# gc=False: millions of these live for the whole process; they hold no reference cycles,
# so keeping them out of the cyclic garbage collector saves long GC pauses.
# omit_defaults=True: the many unset attachment fields cost nothing in snapshots.


class User(msgspec.Struct, kw_only=True, frozen=True, gc=False, omit_defaults=True):
    id: int
    login: str
    password_hash: str
    username: str
    email: str | None = None
    is_bot: bool = False
    bio: str | None = None
    avatar: Attachment | None = None
    time: float


class Flow(msgspec.Struct, kw_only=True, frozen=True, gc=False, omit_defaults=True):
    id: int
    type: FlowType
    title: str
    info: str | None = None
    owner: int | None = None
    users: tuple[int, ...] = ()
    time: float


class Message(msgspec.Struct, kw_only=True, frozen=True, gc=False, omit_defaults=True):
    id: int
    flow_id: int
    author_id: int
    time: float
    text: str | None = None
    picture: Attachment | None = None
    video: Attachment | None = None
    audio: Attachment | None = None
    document: Attachment | None = None
    emoji: Attachment | None = None
    reply_to: int | None = None
    # As the client sent it (a client's schema may insist on an integer); data stored before
    # it kept its type holds strings, which load as they are.
    client_id: int | str | None = None
    edited_time: float | None = None


# --- events: the journal's records; applying them in order rebuilds the state ---------------


class Event(msgspec.Struct, kw_only=True, tag=True, gc=False):
    time: float


class UserRegistered(Event, tag="user_registered"):
    user: User
    token_hash: bytes


class SessionOpened(Event, tag="session_opened"):
    user_id: int
    token_hash: bytes


class UserDeleted(Event, tag="user_deleted"):
    user_id: int


class FlowAdded(Event, tag="flow_added"):
    flow: Flow


class MessageSent(Event, tag="message_sent"):
    message: Message


class MessageEdited(Event, tag="message_edited"):
    message_id: int
    text: str


class MessageDeleted(Event, tag="message_deleted"):
    message_id: int


AnyEvent: TypeAlias = (
    UserRegistered
    | SessionOpened
    | UserDeleted
    | FlowAdded
    | MessageSent
    | MessageEdited
    | MessageDeleted
)


SNAPSHOT_FORMAT = 1


class Snapshot(msgspec.Struct, kw_only=True):
    """The whole state at journal sequence number ``seq`` (every event up to it applied).

    Messages are stored in chunks so that a large state can be encoded a chunk at a time;
    the change log is stored as packed arrays so that a restart need not sort it again.
    """

    format: int = SNAPSHOT_FORMAT
    seq: int
    time: float
    clock: float
    next_user_id: int
    next_flow_id: int
    next_message_id: int
    users: list[User]
    flows: list[Flow]
    session_tokens: list[bytes]  # SHA-256 of each live token ...
    session_users: list[int]  # ... and whose it is
    message_chunks: list[list[Message]]
    change_times: bytes  # array("d")
    change_keys: bytes  # array("q")
    # Written by a server that makes the journal reach ``seq`` (synced) before the snapshot
    # is in place; snapshots from before that guarantee lack it. With it, a journal that
    # stops short of ``seq`` means a journal file has gone missing, not a crash.
    journal_reaches_seq: bool = False

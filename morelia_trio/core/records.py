"""The stored records (users, flows, messages) and the values a request hands the rules.

Plain msgspec data: the state owner keeps records in memory, the journal's events carry
them, the snapshot stores them.
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


class MessageContent(msgspec.Struct, kw_only=True, frozen=True, gc=False, omit_defaults=True):
    """What a message's sender chooses: a request carries it, a stored Message extends it."""

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


class Message(MessageContent, kw_only=True, frozen=True, gc=False, omit_defaults=True):
    id: int
    flow_id: int
    author_id: int
    time: float
    edited_time: float | None = None


class Deletion(msgspec.Struct, frozen=True, gc=False):
    """A deleted message, as ``get_update`` reports it to a connection that has subscribed."""

    id: int
    flow_id: int
    time: float  # when it was deleted


class Credentials(msgspec.Struct, frozen=True):
    """Who a request says it comes from; ``State.authenticate`` decides whether it is so."""

    user_id: int | None
    token: str | None


class SessionProof(msgspec.Struct, frozen=True, array_like=True):
    """Credentials as a shared log carries them (``shared_commands``): the token's SHA-256
    digest, which the state keeps anyway, never the token itself."""

    user_id: int | None
    token_hash: bytes | None

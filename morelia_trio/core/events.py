"""The events: the journal's records. Applying them in order rebuilds the state."""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from .records import Flow, Message, User


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


# Moderation (CONTRACT §8.5): only the operator's admin tool makes these, never a request.


class AdminChanged(Event, tag="admin_changed"):
    user_id: int
    admin: bool  # made a server admin (True) or made a member again


class SuspensionChanged(Event, tag="suspension_changed"):
    user_id: int
    suspended: bool  # suspending also ends every session of the account


AnyEvent: TypeAlias = (
    UserRegistered
    | SessionOpened
    | UserDeleted
    | FlowAdded
    | MessageSent
    | MessageEdited
    | MessageDeleted
    | AdminChanged
    | SuspensionChanged
)

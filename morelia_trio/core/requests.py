"""The typed requests handlers receive: one struct per method, every field checked."""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from .frames import Dialect
from .records import Credentials, FlowType, MessageContent


class RegisterUser(msgspec.Struct, frozen=True):
    login: str
    password: str
    username: str | None
    email: str | None


class Authentication(msgspec.Struct, frozen=True):
    login: str
    password: str


class UserInfo(msgspec.Struct, frozen=True):
    creds: Credentials
    others: list[int]


class SendMessage(msgspec.Struct, frozen=True):
    creds: Credentials
    flow_id: int
    message: MessageContent


class AllMessages(msgspec.Struct, frozen=True):
    creds: Credentials
    flow_id: int | None
    since: float


class GetUpdate(msgspec.Struct, frozen=True):
    creds: Credentials
    flow_id: int | None
    since: float


class AllFlow(msgspec.Struct, frozen=True):
    creds: Credentials
    since: float  # flows created at or after it: how a client asks for the next page


class AddFlow(msgspec.Struct, frozen=True):
    creds: Credentials
    type: FlowType
    title: str
    info: str | None
    users: list[int]


class EditMessage(msgspec.Struct, frozen=True):
    creds: Credentials
    message_id: int
    flow_id: int | None
    text: str


class DeleteMessage(msgspec.Struct, frozen=True):
    creds: Credentials
    message_id: int
    flow_id: int | None


class DeleteUser(msgspec.Struct, frozen=True):
    login: str
    password: str
    creds: Credentials | None  # a token is optional; if sent, it must be the same user's


class PingPong(msgspec.Struct, frozen=True):
    creds: Credentials


class Subscribe(msgspec.Struct, frozen=True):
    creds: Credentials
    since: float  # 0: live updates only; else everything changed from then on comes first


class Unsubscribe(msgspec.Struct, frozen=True):
    creds: Credentials


Body: TypeAlias = (
    RegisterUser
    | Authentication
    | UserInfo
    | SendMessage
    | AllMessages
    | GetUpdate
    | AllFlow
    | AddFlow
    | EditMessage
    | DeleteMessage
    | DeleteUser
    | PingPong
    | Subscribe
    | Unsubscribe
)


class Request(msgspec.Struct, frozen=True):
    type: str  # as the client spelled it: the reply echoes it
    dialect: Dialect
    body: Body

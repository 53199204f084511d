"""The shape of an incoming frame: the lenient wire structs, and the two dialects.

msgspec checks every type of a frame against these structs, the one place the shape of a
frame is written down: lenient about shape (a field may be one object or a list, an id a
number or a string), strict about types.
"""

from __future__ import annotations

import enum
from typing import Annotated, TypeAlias

import msgspec

Id: TypeAlias = int | str
Bytes: TypeAlias = str | int | list[int]  # auth_id: a string, though the document says bytes
# An attachment sent as an array of integers (the Flutter client's bytes) holds bytes. The
# stored models.Attachment stays any integer: data stored before this check must still load.
AttachmentIn: TypeAlias = str | list[Annotated[int, msgspec.Meta(ge=0, le=255)]]


class Dialect(enum.Enum):
    DOCUMENT = "document"  # the seed document: single objects, integer ids, float times
    LIST = "list"  # every real client: arrays, string ids, integer times


class UserIn(msgspec.Struct):
    id: Id | None = None
    uuid: Id | None = None
    auth_id: Bytes | None = None
    login: str | None = None
    password: str | None = None
    username: str | None = None
    email: str | None = None


class FlowIn(msgspec.Struct):
    id: Id | None = None
    uuid: Id | None = None
    type: str | None = None
    title: str | None = None
    info: str | None = None
    users: list[Id | UserIn] | None = None


class FileIn(msgspec.Struct):
    picture: AttachmentIn | None = None
    video: AttachmentIn | None = None
    audio: AttachmentIn | None = None
    document: AttachmentIn | None = None


class MessageIn(msgspec.Struct):
    id: Id | None = None
    uuid: Id | None = None
    client_id: Id | None = None
    text: str | None = None
    file: FileIn | None = None
    file_picture: AttachmentIn | None = None
    file_video: AttachmentIn | None = None
    file_audio: AttachmentIn | None = None
    file_document: AttachmentIn | None = None
    emoji: AttachmentIn | None = None
    reply_to: Id | None = None


class DataIn(msgspec.Struct):
    time: float | None = None
    user: list[UserIn] | UserIn | None = None
    flow: list[FlowIn] | FlowIn | None = None
    chat: list[FlowIn] | FlowIn | None = None  # the document's older name for a flow
    message: list[MessageIn] | MessageIn | None = None


class JsonApiIn(msgspec.Struct):
    version: float | str | None = None


class Envelope(msgspec.Struct):
    type: str
    data: DataIn | None = None
    jsonapi: JsonApiIn | None = None

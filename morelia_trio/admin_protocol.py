"""The admin socket's protocol: one JSON request per line in, one JSON reply per line out.

The operator's tool (``morelia-trio admin``) sends these to a running server over the Unix
socket in its data directory, or carries them out itself on a stopped server's directory.
An ``export`` is answered by one line per record (users, flows, messages: ``Exported*``)
before its reply line. Nothing here touches trio, sockets or files.
"""

from __future__ import annotations

from typing import ClassVar, TypeAlias

import msgspec

from .core.records import Flow, Message

MAX_LINE = 64 * 1024  # a request line longer than this is refused, and the connection closed


class AdminRequest(msgspec.Struct, kw_only=True, frozen=True, tag_field="op"):
    changes: ClassVar[bool] = False  # offline, only a change opens the journal


class ListUsers(AdminRequest, frozen=True, tag="users"):
    pass


class FindUsers(AdminRequest, frozen=True, tag="find"):
    text: str  # found in a login or a username, whatever the case


class SetAdmin(AdminRequest, frozen=True, tag="set_admin"):
    changes: ClassVar[bool] = True
    user: str  # a login, or an id (see admin.resolve_user)
    admin: bool


class SetSuspended(AdminRequest, frozen=True, tag="set_suspended"):
    changes: ClassVar[bool] = True
    user: str
    suspended: bool


class DeleteUser(AdminRequest, frozen=True, tag="delete_user"):
    changes: ClassVar[bool] = True
    user: str


class DeleteMessage(AdminRequest, frozen=True, tag="delete_message"):
    changes: ClassVar[bool] = True
    message_id: int


class Stats(AdminRequest, frozen=True, tag="stats"):
    pass


class Backup(AdminRequest, frozen=True, tag="backup"):
    target: str  # a directory that does not exist yet, or is empty


class Export(AdminRequest, frozen=True, tag="export"):
    pass


AnyAdminRequest: TypeAlias = (
    ListUsers
    | FindUsers
    | SetAdmin
    | SetSuspended
    | DeleteUser
    | DeleteMessage
    | Stats
    | Backup
    | Export
)


class UserRow(msgspec.Struct, kw_only=True, frozen=True):
    """A user as the operator sees one: no password hash, no session."""

    id: int
    login: str
    username: str
    email: str | None
    time: float
    admin: bool
    suspended: bool


class Statistics(msgspec.Struct, kw_only=True, frozen=True):
    users: int
    admins: int
    suspended: int
    sessions: int
    flows: int
    messages: int
    stored_bytes: int  # content bytes of every live message
    last_record: int  # the journal's sequence number


class Reply(msgspec.Struct, kw_only=True, frozen=True, tag_field="kind", tag="reply"):
    ok: bool
    detail: str = ""  # what was done, or why not
    users: list[UserRow] | None = None
    statistics: Statistics | None = None


class ExportedUser(msgspec.Struct, frozen=True, tag_field="kind", tag="user"):
    user: UserRow


class ExportedFlow(msgspec.Struct, frozen=True, tag_field="kind", tag="flow"):
    flow: Flow


class ExportedMessage(msgspec.Struct, frozen=True, tag_field="kind", tag="message"):
    message: Message


AnyLine: TypeAlias = Reply | ExportedUser | ExportedFlow | ExportedMessage

request_decoder: msgspec.json.Decoder[AnyAdminRequest] = msgspec.json.Decoder(AnyAdminRequest)
line_decoder: msgspec.json.Decoder[AnyLine] = msgspec.json.Decoder(AnyLine)
encoder = msgspec.json.Encoder()


def encode_line(item: msgspec.Struct) -> bytes:
    return encoder.encode(item) + b"\n"

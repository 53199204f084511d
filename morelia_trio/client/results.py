"""What the client hands back: msgspec Structs decoded from list-dialect replies."""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec

from ..core.records import Attachment as Attachment  # the server's own: the same values
from ..core.records import FlowType as FlowType

Frame: TypeAlias = dict[str, Any]

_encoder = msgspec.json.Encoder()


# --- what the server answers, as the list dialect writes it ------------------------------------


class Session(msgspec.Struct, frozen=True):
    """A user id and a token: save it (msgspec.json.encode) and ``resume`` with it later."""

    user_id: str
    token: str


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """A user. ``email`` is shown only in one's own profile."""

    id: str
    login: str
    username: str
    email: str | None = None
    is_bot: bool = False
    bio: str | None = None
    avatar: Attachment | None = None


class Flow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    time: int
    type: FlowType
    title: str
    info: str | None = None
    owner: str | None = None
    users: list[str] = []


class Message(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    time: int
    flow_id: str = msgspec.field(name="from_flow_id")
    author_id: str = msgspec.field(name="from_user_uuid")
    text: str | None = None
    client_id: int | str | None = None
    reply_to: str | None = None
    file_picture: Attachment | None = None
    file_video: Attachment | None = None
    file_audio: Attachment | None = None
    file_document: Attachment | None = None
    emoji: Attachment | None = None
    edited_time: int | None = None
    edited_status: bool = False


class Deleted(msgspec.Struct, frozen=True, kw_only=True):
    """A deleted message: listed only to a connection that has subscribed."""

    id: str
    time: int  # when it was deleted
    flow_id: str = msgspec.field(name="from_flow_id")


class Sent(msgspec.Struct, frozen=True, kw_only=True):
    """What ``send`` returns: the new message's id and time."""

    id: str
    time: int
    flow_id: str = msgspec.field(name="from_flow_id")
    client_id: int | str | None = None


class Page(msgspec.Struct, frozen=True, kw_only=True):
    """One reply of a listing; ``partial`` (206) says more follow."""

    users: list[Profile] = []
    flows: list[Flow] = []
    messages: list[Message] = []
    deleted: list[Deleted] = []
    time: int  # the server's clock when it answered
    partial: bool = False


class Update(msgspec.Struct, frozen=True, kw_only=True):
    """What changed since a time: ``updates()`` gathers it across every page, and
    ``subscribe()`` yields one per live update."""

    users: list[Profile]
    flows: list[Flow]
    messages: list[Message]
    deleted: list[Deleted] = []  # only once the connection has subscribed
    time: int  # the server's clock at the last page: ask from it next time


class _Token(msgspec.Struct):
    id: str
    auth_id: str


class _Errors(msgspec.Struct):
    code: int
    status: str
    detail: str


class _Envelope(msgspec.Struct):
    errors: _Errors
    data: msgspec.Raw = msgspec.Raw(b"null")


class _Listing(msgspec.Struct):
    time: int
    user: list[Profile] = []
    flow: list[Flow] = []
    # messages and, to a subscribed connection, deletion items: ``messages()`` tells them apart
    message: list[msgspec.Raw] = []

    def messages(self) -> tuple[list[Message], list[Deleted]]:
        kept: list[Message] = []
        deleted: list[Deleted] = []
        for item in self.message:
            if msgspec.json.decode(item, type=_Deletable).deleted:
                deleted.append(msgspec.json.decode(item, type=Deleted))
            else:
                kept.append(msgspec.json.decode(item, type=Message))
        return kept, deleted


class _Deletable(msgspec.Struct):
    deleted: bool = False


class _Pushed(msgspec.Struct):
    """A frame's type: a reply's, or ``update`` or ``resync`` (pushed by the server)."""

    type: str = ""


class _Tokens(msgspec.Struct):
    user: list[_Token]


class _Flows(msgspec.Struct):
    flow: list[Flow]


class _Sents(msgspec.Struct):
    message: list[Sent]


# --- errors -------------------------------------------------------------------------------------

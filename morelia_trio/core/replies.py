"""The reply side of the wire format: render an answer in the request's dialect. No I/O.

Every reply has exactly the keys type, data, errors, jsonapi and meta. The document dialect
writes integer ids, float times, single objects and an ``errors.id``; the list dialect writes
numeric-string ids (as both ``uuid`` and ``id``), integer times and arrays, never null lists.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

from .frames import Dialect
from .queries import Listing
from .records import Attachment, Flow, FlowType, Message, User

# --- what a handler answers with --------------------------------------------------------------


class Token(msgspec.Struct, frozen=True):
    user_id: int
    token: str


class Sent(msgspec.Struct, frozen=True):
    message: Message


Payload: TypeAlias = Token | Sent | Listing | None


class Answer(msgspec.Struct, frozen=True):
    payload: Payload = None
    code: int = 200
    status: str = "OK"
    single: bool = False  # the document dialect writes one object, not an array
    viewer: int | None = None  # whose own profile may show its email


OK: Final = Answer()

# --- the document dialect -----------------------------------------------------------------------


class DocToken(msgspec.Struct):
    id: int
    auth_id: str


class DocProfile(msgspec.Struct):
    id: int
    login: str
    username: str
    email: str | None
    is_bot: bool
    bio: str | None
    avatar: Attachment | None


class DocFlow(msgspec.Struct):
    id: int
    time: float
    type: FlowType
    title: str
    info: str | None
    owner: int | None
    users: list[int]


class DocFromUser(msgspec.Struct):
    id: int
    username: str


class DocFromFlow(msgspec.Struct):
    id: int
    type: FlowType


class DocFile(msgspec.Struct):
    picture: Attachment | None
    video: Attachment | None
    audio: Attachment | None
    document: Attachment | None


class DocEdited(msgspec.Struct):
    time: float
    status: bool


class DocMessage(msgspec.Struct):
    id: int
    text: str | None
    from_user: DocFromUser
    time: float
    from_flow: DocFromFlow
    file: DocFile
    emoji: Attachment | None
    edited_message: DocEdited | None
    reply_to: int | None
    client_id: int | str | None


class DocSent(msgspec.Struct):
    id: int
    time: float
    client_id: int | str | UnsetType = UNSET


DocItem: TypeAlias = DocToken | DocProfile | DocFlow | DocMessage | DocSent


class DocData(msgspec.Struct):
    time: float
    user: DocItem | list[DocProfile] | UnsetType = UNSET
    flow: DocFlow | list[DocFlow] | UnsetType = UNSET
    message: DocSent | list[DocMessage] | UnsetType = UNSET
    meta: None = None


class DocErrors(msgspec.Struct):
    id: int
    time: float
    status: str
    code: int
    detail: str


class DocJsonApi(msgspec.Struct):
    version: float = 1.0


class DocReply(msgspec.Struct):
    type: str
    data: DocData | None
    errors: DocErrors
    jsonapi: DocJsonApi
    meta: None = None


# --- the list dialect -------------------------------------------------------------------------


class ListToken(msgspec.Struct):
    uuid: str
    id: str
    auth_id: str


class ListProfile(msgspec.Struct):
    uuid: str
    id: str
    login: str
    username: str
    email: str | None
    is_bot: bool
    bio: str | None
    avatar: Attachment | None


class ListFlow(msgspec.Struct):
    uuid: str
    id: str
    time: int
    type: FlowType
    title: str
    info: str | None
    owner: str | None
    users: list[str]


class ListMessage(msgspec.Struct):
    uuid: str
    id: str
    client_id: int | str | None
    text: str | None
    from_user: str
    from_user_uuid: str
    from_flow: str
    from_flow_id: str
    time: int
    file_picture: Attachment | None
    file_video: Attachment | None
    file_audio: Attachment | None
    file_document: Attachment | None
    emoji: Attachment | None
    edited_time: int | None
    edited_status: bool
    reply_to: str | None


class ListSent(msgspec.Struct):
    uuid: str
    id: str
    time: int
    from_flow: str
    from_flow_id: str
    client_id: int | str | UnsetType = UNSET


class ListData(msgspec.Struct):
    time: int
    user: list[ListToken] | list[ListProfile] = []
    flow: list[ListFlow] = []
    message: list[ListMessage] | list[ListSent] = []
    meta: None = None


class ListErrors(msgspec.Struct):
    code: int
    status: str
    time: int
    detail: str


class ListJsonApi(msgspec.Struct):
    version: str = "1.0"


class ListReply(msgspec.Struct):
    type: str
    data: ListData
    errors: ListErrors
    jsonapi: ListJsonApi
    meta: None = None


_DOC_JSONAPI: Final = DocJsonApi()
_LIST_JSONAPI: Final = ListJsonApi()
_encoder: Final = msgspec.json.Encoder()


def render(
    reply_type: str,
    dialect: Dialect,
    answer: Answer,
    detail: str,
    *,
    now: float,
    reply_id: int,
) -> str:
    """Encode one reply as JSON text (UTF-8 written raw, never as \\u escapes)."""
    reply: DocReply | ListReply
    if dialect is Dialect.LIST:
        reply = ListReply(
            type=reply_type,
            data=_list_data(answer, int(now)),
            errors=ListErrors(answer.code, answer.status, int(now), detail),
            jsonapi=_LIST_JSONAPI,
        )
    else:
        reply = DocReply(
            type=reply_type,
            data=_doc_data(answer, now),
            errors=DocErrors(reply_id, now, answer.status, answer.code, detail),
            jsonapi=_DOC_JSONAPI,
        )
    return _encoder.encode(reply).decode()


def _doc_data(answer: Answer, now: float) -> DocData | None:
    payload = answer.payload
    if isinstance(payload, Token):
        return DocData(now, user=DocToken(payload.user_id, payload.token))
    if isinstance(payload, Sent):
        message = payload.message
        sent = DocSent(message.id, message.time)
        if message.client_id is not None:
            sent.client_id = message.client_id
        return DocData(message.time, message=sent)
    if isinstance(payload, Listing):
        profiles = [_doc_profile(u, answer.viewer) for u in payload.users]
        flows = [_doc_flow(f) for f in payload.flows]
        messages = [_doc_message(m, payload) for m in payload.messages]
        if answer.single:
            if profiles:
                return DocData(now, user=profiles[0])
            return DocData(now, flow=flows[0])
        return DocData(now, user=profiles, flow=flows, message=messages)
    return None


def _doc_profile(user: User, viewer: int | None) -> DocProfile:
    email = user.email if user.id == viewer else None
    return DocProfile(user.id, user.login, user.username, email, user.is_bot, user.bio, user.avatar)


def _doc_flow(flow: Flow) -> DocFlow:
    return DocFlow(
        flow.id, flow.time, flow.type, flow.title, flow.info, flow.owner, list(flow.users)
    )


def _doc_message(message: Message, listing: Listing) -> DocMessage:
    edited = None if message.edited_time is None else DocEdited(message.edited_time, True)
    return DocMessage(
        id=message.id,
        text=message.text,
        from_user=DocFromUser(message.author_id, listing.usernames[message.author_id]),
        time=message.time,
        from_flow=DocFromFlow(message.flow_id, listing.flow_types[message.flow_id]),
        file=DocFile(message.picture, message.video, message.audio, message.document),
        emoji=message.emoji,
        edited_message=edited,
        reply_to=message.reply_to,
        client_id=message.client_id,
    )


def _list_data(answer: Answer, now: int) -> ListData:
    payload = answer.payload
    if isinstance(payload, Token):
        user_id = str(payload.user_id)
        return ListData(now, user=[ListToken(user_id, user_id, payload.token)])
    if isinstance(payload, Sent):
        message = payload.message
        message_id, flow_id = str(message.id), str(message.flow_id)
        sent = ListSent(message_id, message_id, int(message.time), flow_id, flow_id)
        if message.client_id is not None:
            sent.client_id = message.client_id
        return ListData(int(message.time), message=[sent])
    if isinstance(payload, Listing):
        return ListData(
            now,
            user=[_list_profile(u, answer.viewer) for u in payload.users],
            flow=[_list_flow(f) for f in payload.flows],
            message=[_list_message(m) for m in payload.messages],
        )
    return ListData(now)


def _list_profile(user: User, viewer: int | None) -> ListProfile:
    user_id = str(user.id)
    email = user.email if user.id == viewer else None
    return ListProfile(
        user_id, user_id, user.login, user.username, email, user.is_bot, user.bio, user.avatar
    )


def _list_flow(flow: Flow) -> ListFlow:
    flow_id = str(flow.id)
    owner = None if flow.owner is None else str(flow.owner)
    return ListFlow(
        flow_id,
        flow_id,
        int(flow.time),
        flow.type,
        flow.title,
        flow.info,
        owner,
        [str(u) for u in flow.users],
    )


def _list_message(message: Message) -> ListMessage:
    message_id, author, flow_id = str(message.id), str(message.author_id), str(message.flow_id)
    edited = message.edited_time
    return ListMessage(
        uuid=message_id,
        id=message_id,
        client_id=message.client_id,
        text=message.text,
        from_user=author,
        from_user_uuid=author,
        from_flow=flow_id,
        from_flow_id=flow_id,
        time=int(message.time),
        file_picture=message.picture,
        file_video=message.video,
        file_audio=message.audio,
        file_document=message.document,
        emoji=message.emoji,
        edited_time=None if edited is None else int(edited),
        edited_status=edited is not None,
        reply_to=None if message.reply_to is None else str(message.reply_to),
    )

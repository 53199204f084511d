"""Replies in the list dialect, every real client's: numeric-string ids (as both ``uuid``
and ``id``), integer times and arrays, never null lists."""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from .answers import Answer, Sent, Token
from .queries import Listing
from .records import Attachment, Deletion, Flow, FlowType, Message, User


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


class ListDeleted(msgspec.Struct):
    """A deleted message: only for a connection that has subscribed (CONTRACT §8.2)."""

    uuid: str
    id: str
    from_flow: str
    from_flow_id: str
    time: int
    deleted: bool = True


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
    message: list[ListMessage | ListDeleted] | list[ListSent] = []
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


def list_data(answer: Answer, now: int) -> ListData:
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
            message=[
                _list_deleted(m) if isinstance(m, Deletion) else _list_message(m)
                for m in payload.messages_in_time_order()
            ],
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


def _list_deleted(deletion: Deletion) -> ListDeleted:
    message_id, flow_id = str(deletion.id), str(deletion.flow_id)
    return ListDeleted(message_id, message_id, flow_id, flow_id, int(deletion.time))


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

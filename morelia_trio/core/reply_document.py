"""Replies in the document dialect: integer ids, float times, single objects, ``errors.id``."""

from __future__ import annotations

from typing import TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

from .answers import Answer, Sent, Token
from .queries import Listing
from .records import Attachment, Deletion, Flow, FlowType, Message, User


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


class DocDeleted(msgspec.Struct):
    """A deleted message: only for a connection that has subscribed (CONTRACT §8.2)."""

    id: int
    from_flow: DocFromFlow
    time: float
    deleted: bool = True


class DocSent(msgspec.Struct):
    id: int
    time: float
    client_id: int | str | UnsetType = UNSET


DocItem: TypeAlias = DocToken | DocProfile | DocFlow | DocMessage | DocSent


class DocData(msgspec.Struct):
    time: float
    user: DocItem | list[DocProfile] | UnsetType = UNSET
    flow: DocFlow | list[DocFlow] | UnsetType = UNSET
    message: DocSent | list[DocMessage | DocDeleted] | UnsetType = UNSET
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


def doc_data(answer: Answer, now: float) -> DocData | None:
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
        messages = [
            _doc_deleted(m, payload) if isinstance(m, Deletion) else _doc_message(m, payload)
            for m in payload.messages_in_time_order()
        ]
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


def _doc_deleted(deletion: Deletion, listing: Listing) -> DocDeleted:
    flow = DocFromFlow(deletion.flow_id, listing.flow_types[deletion.flow_id])
    return DocDeleted(deletion.id, flow, deletion.time)


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

"""One parser per method: pull out of a checked frame what that method needs.

A parser gets the frame's data, already checked for types, and returns the method's typed
request, or raises a 4xx that names the field in plain words. Ids are positive integers
of 64 bits at most, as a number or a numeric string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

from ..config import Limits
from .accounts import email_problem, login_problem
from .errors import PayloadTooLarge, TooManyRequests, UnsupportedMediaType
from .frames import Bytes, DataIn, FileIn, FlowIn, Id, UserIn
from .records import FLOW_TYPES, Attachment, Credentials, MessageContent
from .requests import (
    AddFlow,
    AllFlow,
    AllMessages,
    Authentication,
    Body,
    DeleteMessage,
    DeleteUser,
    EditMessage,
    GetUpdate,
    PingPong,
    RegisterUser,
    SendMessage,
    Subscribe,
    Unsubscribe,
    UserInfo,
)

MAX_ID_DIGITS: Final = 18  # every id fits in a signed 64-bit integer, and so does a version
MAX_INT64: Final = 2**63 - 1  # the largest id a request may name
MIN_INT64: Final = -(2**63)

T = TypeVar("T")


def _first(value: list[T] | T | None) -> T | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _rest(value: list[T] | T | None) -> list[T]:
    return value[1:] if isinstance(value, list) else []


def parse_id(value: Id | None, field: str) -> int | None:
    """An id as a number or numeric string; None, 0 and "" mean unset (placeholders)."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, int):
        if not 0 < value <= MAX_INT64:
            raise UnsupportedMediaType(f"The field {field} must be a positive id.")
        return value
    if not (value.isascii() and value.isdigit()):
        raise UnsupportedMediaType(f"The field {field} must be a numeric id.")
    digits = value.lstrip("0")
    if len(digits) > MAX_ID_DIGITS:
        raise UnsupportedMediaType(f"The field {field} must be an id of at most 18 digits.")
    return int(digits) if digits else None


def _either_id(id_: Id | None, uuid: Id | None, field: str) -> int | None:
    found = parse_id(id_, f"{field}.id")
    return found if found is not None else parse_id(uuid, f"{field}.uuid")


def _token(value: Bytes | None) -> str | None:
    if isinstance(value, list):  # a client that sends bytes as an array of integers
        try:
            return bytes(value).decode()
        except (ValueError, UnicodeDecodeError):
            return None
    return None if value is None else str(value)


def _creds(data: DataIn) -> Credentials:
    user = _first(data.user)
    if user is None:
        return Credentials(None, None)
    return Credentials(_either_id(user.id, user.uuid, "user"), _token(user.auth_id))


def _flow(data: DataIn) -> FlowIn | None:
    return _first(data.flow) or _first(data.chat)


def _flow_id(data: DataIn) -> int | None:
    flow = _flow(data)
    return _either_id(flow.id, flow.uuid, "flow") if flow else None


def _required(value: str | None, field: str, limit: int) -> str:
    if not value:
        raise UnsupportedMediaType(f"The field {field} is required.")
    return _limited(value, field, limit)


def _limited(value: T, field: str, limit: int) -> T:
    if isinstance(value, str | list) and len(value) > limit:
        raise PayloadTooLarge(f"The field {field} is longer than {limit} characters.")
    return value


def _optional(value: str | None, field: str, limit: int) -> str | None:
    return _limited(value, field, limit) if value else None


def _credentials_user(data: DataIn) -> UserIn:
    user = _first(data.user)
    if user is None:
        raise UnsupportedMediaType("The field user is required.")
    return user


def parse_register_user(data: DataIn, limits: Limits) -> RegisterUser:
    user = _credentials_user(data)
    login = _required(user.login, "user.login", limits.max_login_chars)
    password = _required(user.password, "user.password", limits.max_password_chars)
    username = _optional(user.username, "user.username", limits.max_name_chars)
    email = _optional(user.email, "user.email", limits.max_email_chars)
    # Only a new login must follow the rules: one registered before them still logs in.
    problem = login_problem(login) or (email_problem(email) if email else None)
    if problem:
        raise UnsupportedMediaType(problem)
    return RegisterUser(login=login, password=password, username=username, email=email)


def parse_authentication(data: DataIn, limits: Limits) -> Authentication:
    user = _credentials_user(data)
    return Authentication(
        login=_required(user.login, "user.login", limits.max_login_chars),
        password=_required(user.password, "user.password", limits.max_password_chars),
    )


def parse_user_info(data: DataIn, limits: Limits) -> UserInfo:
    named = _rest(data.user)
    if len(named) > limits.max_named_users:
        raise TooManyRequests(f"A request may name at most {limits.max_named_users} users.")
    others = []
    for index, user in enumerate(named, start=1):
        user_id = _either_id(user.id, user.uuid, f"user[{index}]")
        if user_id is None:
            raise UnsupportedMediaType(f"The field user[{index}].uuid is required.")
        others.append(user_id)
    return UserInfo(_creds(data), others)


def _required_flow_id(data: DataIn) -> int:
    flow_id = _flow_id(data)
    if flow_id is None:
        raise UnsupportedMediaType("The field flow.id is required.")
    return flow_id


def _attachment(value: Attachment | None, field: str, limits: Limits) -> Attachment | None:
    return _limited(value, field, limits.max_attachment_chars) if value else None


def parse_send_message(data: DataIn, limits: Limits) -> SendMessage:
    creds = _creds(data)
    flow_id = _required_flow_id(data)
    message = _first(data.message)
    if message is None:
        raise UnsupportedMediaType("The field message is required.")
    file = message.file or FileIn()
    new = MessageContent(
        text=_optional(message.text, "message.text", limits.max_text_chars),
        picture=_attachment(message.file_picture or file.picture, "message.file.picture", limits),
        video=_attachment(message.file_video or file.video, "message.file.video", limits),
        audio=_attachment(message.file_audio or file.audio, "message.file.audio", limits),
        document=_attachment(
            message.file_document or file.document, "message.file.document", limits
        ),
        emoji=_attachment(message.emoji, "message.emoji", limits),
        reply_to=parse_id(message.reply_to, "message.reply_to"),
        client_id=_client_id(message.client_id),
    )
    if not (new.text or new.picture or new.video or new.audio or new.document or new.emoji):
        raise UnsupportedMediaType("The field message.text is required (or an attachment).")
    return SendMessage(creds, flow_id, new)


def _client_id(value: Id | None) -> Id | None:
    """The client's own id for a message, kept as sent: a number stays a number."""
    if isinstance(value, int) and not MIN_INT64 <= value <= MAX_INT64:
        # the journal's msgpack holds 64 bits, and clients parse it into a long at most
        raise UnsupportedMediaType("The field message.client_id must fit in 64 bits.")
    return value


def _since(data: DataIn) -> float:
    return max(data.time or 0.0, 0.0)


def parse_all_messages(data: DataIn, limits: Limits) -> AllMessages:
    return AllMessages(_creds(data), _flow_id(data), _since(data))


def parse_get_update(data: DataIn, limits: Limits) -> GetUpdate:
    return GetUpdate(_creds(data), _flow_id(data), _since(data))


def parse_all_flow(data: DataIn, limits: Limits) -> AllFlow:
    return AllFlow(_creds(data), _since(data))


def parse_add_flow(data: DataIn, limits: Limits) -> AddFlow:
    creds = _creds(data)
    flow = _flow(data)
    if flow is None:
        raise UnsupportedMediaType("The field flow is required.")
    flow_type = flow.type
    if flow_type not in FLOW_TYPES:
        raise UnsupportedMediaType("The field flow.type must be chat, group or channel.")
    members = flow.users or []
    if len(members) > limits.max_named_users:
        raise TooManyRequests(f"A flow may name at most {limits.max_named_users} users.")
    users = []
    for index, member in enumerate(members):
        field = f"flow.users[{index}]"
        user_id = (
            _either_id(member.id, member.uuid, field)
            if isinstance(member, UserIn)
            else parse_id(member, field)
        )
        if user_id is None:
            raise UnsupportedMediaType(f"The field {field} must be a user id.")
        users.append(user_id)
    return AddFlow(
        creds=creds,
        type=flow_type,
        title=_required(flow.title, "flow.title", limits.max_name_chars),
        info=_optional(flow.info, "flow.info", limits.max_info_chars),
        users=users,
    )


def _message_id(data: DataIn) -> int:
    message = _first(data.message)
    message_id = _either_id(message.id, message.uuid, "message") if message else None
    if message_id is None:
        raise UnsupportedMediaType("The field message.id is required.")
    return message_id


def parse_edited_message(data: DataIn, limits: Limits) -> EditMessage:
    creds = _creds(data)
    message_id = _message_id(data)
    message = _first(data.message)
    text = _required(message.text if message else None, "message.text", limits.max_text_chars)
    return EditMessage(creds, message_id, _flow_id(data), text)


def parse_delete_message(data: DataIn, limits: Limits) -> DeleteMessage:
    return DeleteMessage(_creds(data), _message_id(data), _flow_id(data))


def parse_delete_user(data: DataIn, limits: Limits) -> DeleteUser:
    user = _credentials_user(data)
    creds = _creds(data) if user.auth_id is not None else None
    return DeleteUser(
        login=_required(user.login, "user.login", limits.max_login_chars),
        password=_required(user.password, "user.password", limits.max_password_chars),
        creds=creds,
    )


def parse_ping_pong(data: DataIn, limits: Limits) -> PingPong:
    return PingPong(_creds(data))


def parse_subscribe(data: DataIn, limits: Limits) -> Subscribe:
    return Subscribe(_creds(data), _since(data))


def parse_unsubscribe(data: DataIn, limits: Limits) -> Unsubscribe:
    return Unsubscribe(_creds(data))


PARSERS: Final[dict[str, Callable[[DataIn, Limits], Body]]] = {
    "register_user": parse_register_user,
    "authentication": parse_authentication,
    "auth": parse_authentication,
    "user_info": parse_user_info,
    "send_message": parse_send_message,
    "all_messages": parse_all_messages,
    "get_update": parse_get_update,
    "all_flow": parse_all_flow,
    "add_flow": parse_add_flow,
    "edited_message": parse_edited_message,
    "edited": parse_edited_message,
    "delete_message": parse_delete_message,
    "delete_user": parse_delete_user,
    "ping_pong": parse_ping_pong,
    "ping-pong": parse_ping_pong,
    "subscribe": parse_subscribe,
    "unsubscribe": parse_unsubscribe,
}

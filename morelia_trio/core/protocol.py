"""The wire format: decode a frame into a typed request, in either dialect. No I/O.

Decoding is two steps. msgspec checks every type against the lenient wire structs below
(the one place the shape of a frame is written down); then a small parser per method pulls
out what that method needs, so handlers get a typed request or the client gets a 4xx naming
the field in plain words.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from typing import Annotated, Final, TypeAlias, TypeVar

import msgspec

from ..config import Limits
from .accounts import email_problem, login_problem
from .errors import (
    BadRequest,
    MoreliaError,
    PayloadTooLarge,
    TooManyRequests,
    UnsupportedMediaType,
    VersionNotSupported,
)
from .records import FLOW_TYPES, Attachment, Credentials, FlowType, MessageContent

Id: TypeAlias = int | str
Bytes: TypeAlias = str | int | list[int]  # auth_id: a string, though the document says bytes
# An attachment sent as an array of integers (the Flutter client's bytes) holds bytes. The
# stored models.Attachment stays any integer: data stored before this check must still load.
AttachmentIn: TypeAlias = str | list[Annotated[int, msgspec.Meta(ge=0, le=255)]]


class Dialect(enum.Enum):
    DOCUMENT = "document"  # the seed document: single objects, integer ids, float times
    LIST = "list"  # every real client: arrays, string ids, integer times


# --- the wire structs: lenient about shape, strict about types ----------------------------


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


_envelope_decoder: Final = msgspec.json.Decoder(Envelope)


# --- the typed requests handlers receive -----------------------------------------------------


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
)


class Request(msgspec.Struct, frozen=True):
    type: str  # as the client spelled it: the reply echoes it
    dialect: Dialect
    body: Body


# --- decoding --------------------------------------------------------------------------------


class FrameError(Exception):
    """A frame that earned an error reply before it became a Request."""

    def __init__(self, error: MoreliaError, reply_type: str, dialect: Dialect) -> None:
        super().__init__(error.detail)
        self.error = error
        self.reply_type = reply_type
        self.dialect = dialect


ERRORS_TYPE = "errors"  # the reply type when the request had no usable type of its own


def decode_request(frame: str | bytes, limits: Limits) -> Request:
    """Turn one WebSocket frame into a typed Request.

    Raises:
        FrameError: carrying the error to answer with, the reply type and the dialect.
    """
    if isinstance(frame, bytes):
        raise FrameError(
            BadRequest("Binary frames are not understood; send JSON as text."),
            ERRORS_TYPE,
            Dialect.DOCUMENT,
        )
    try:
        envelope = _envelope_decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise _validation_failure(frame, exc) from None
    except (msgspec.DecodeError, UnicodeEncodeError):  # (a str with a lone surrogate)
        raise FrameError(
            BadRequest("The frame is not valid JSON."), ERRORS_TYPE, Dialect.DOCUMENT
        ) from None
    except RecursionError:  # msgspec recurses on nesting, and has no limit of its own
        raise _too_deep() from None
    data = envelope.data or _NO_DATA
    dialect = _dialect_of(data)
    parse = PARSERS.get(envelope.type)
    if parse is None:
        raise _unknown_type(envelope.type, dialect)
    try:
        _check_version(envelope.jsonapi)
        return Request(envelope.type, dialect, parse(data, limits))
    except MoreliaError as exc:
        raise FrameError(exc, envelope.type, dialect) from None


_NO_DATA: Final = DataIn()
# An unknown type is echoed as the reply's type (the contract's rule); one longer than any
# type could be is not, so a client cannot make the server send or log its megabytes back.
MAX_TYPE_CHARS: Final = 64


def _unknown_type(kind: str, dialect: Dialect) -> FrameError:
    error = BadRequest("The field type names no request this server knows.")
    return FrameError(error, kind if len(kind) <= MAX_TYPE_CHARS else ERRORS_TYPE, dialect)


def _too_deep() -> FrameError:
    return FrameError(BadRequest("The frame is nested too deeply."), ERRORS_TYPE, Dialect.DOCUMENT)


def _dialect_of(data: DataIn) -> Dialect:
    if (
        isinstance(data.user, list)
        or isinstance(data.flow, list)
        or isinstance(data.message, list)
        or isinstance(data.chat, list)
    ):
        return Dialect.LIST
    return Dialect.DOCUMENT


# The outline of a frame that failed validation: only its type and which dialect it speaks.
# Raw values are checked for syntax but not converted, so a number no type can hold
# (1e999) does not stop us from naming the request it was in.
_outline_decoder: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _validation_failure(frame: str, exc: msgspec.ValidationError) -> FrameError:
    try:
        outline = _outline_decoder.decode(frame)
        kind = _plain_json(outline.get("type"))
        data = bytes(outline.get("data", b"")).lstrip()
        data_outline = _outline_decoder.decode(data) if data[:1] == b"{" else {}
    except msgspec.ValidationError:
        return FrameError(
            BadRequest("The frame must be a JSON object."), ERRORS_TYPE, Dialect.DOCUMENT
        )
    except msgspec.DecodeError:  # e.g. a lone surrogate escape: valid syntax, invalid text
        return FrameError(BadRequest("The frame is not valid JSON."), ERRORS_TYPE, Dialect.DOCUMENT)
    except RecursionError:
        return _too_deep()
    dialect = Dialect.DOCUMENT
    if any(
        bytes(data_outline[key]).lstrip()[:1] == b"["
        for key in ("user", "flow", "message", "chat")
        if key in data_outline
    ):
        dialect = Dialect.LIST
    if not isinstance(kind, str):
        return FrameError(UnsupportedMediaType(plain_words(exc)), ERRORS_TYPE, dialect)
    if kind not in PARSERS:
        return _unknown_type(kind, dialect)
    return FrameError(UnsupportedMediaType(plain_words(exc)), kind, dialect)


def _plain_json(raw: msgspec.Raw | None) -> object:
    """A raw value decoded, or None if it holds a number no Python type can."""
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.ValidationError:
        return None


_TYPE_NAMES: Final = {
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "null": "null",
    "array": "a list",
    "object": "an object",
    "bool": "true or false",
}
_GOT_NAMES: Final = {"float": "a decimal number"}  # never "must be a number, not a number"
_EXPECTED: Final = re.compile(r"Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`")
_BOUND: Final = re.compile(r"Expected `(?P<want>[^`]*)` (?P<op>[<>]=?) (?P<bound>[^ ]+) - at")
_BOUND_WORDS: Final = {">=": "at least", "<=": "at most", ">": "above", "<": "below"}
_MISSING: Final = re.compile(r"missing required field `(?P<field>[^`]*)`")
_PATH: Final = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


def plain_words(exc: msgspec.ValidationError) -> str:
    """Say what msgspec found wrong in words for a person, naming the field."""
    message = str(exc)
    found = _PATH.search(message)
    path = found.group("path") if found else ""
    if missing := _MISSING.search(message):
        field = f"{path}.{missing.group('field')}" if path else missing.group("field")
        return f"The field {field} is required."
    where = f"The field {path}" if path else "The request"
    if expected := _EXPECTED.search(message):
        wants = [_TYPE_NAMES.get(w.strip(), w.strip()) for w in expected["want"].split("|")]
        *others, last = dict.fromkeys(wants)
        want = f"{', '.join(others)} or {last}" if others else last
        got = _GOT_NAMES.get(expected["got"]) or _TYPE_NAMES.get(expected["got"], expected["got"])
        return f"{where} must be {want}, not {got}."
    if bound := _BOUND.search(message):
        want = _TYPE_NAMES.get(bound["want"], bound["want"])
        return f"{where} must be {want} {_BOUND_WORDS[bound['op']]} {bound['bound']}."
    return f"{where} has a value that is not allowed."


_VERSION: Final = re.compile(r"\s*(\d+)(\.\d+)*\s*$")
_MAX_ID_DIGITS: Final = 18  # every id fits in a signed 64-bit integer, and so does a version
MAX_ID: Final = 2**63 - 1
MIN_INT64: Final = -(2**63)


def _check_version(jsonapi: JsonApiIn | None) -> None:
    version = jsonapi.version if jsonapi else None
    if version is None or version == "1.0":  # what every client sends: no regex for it
        return
    if isinstance(version, str):
        matched = _VERSION.match(version)
        if matched is None:
            raise UnsupportedMediaType("The field jsonapi.version must be a version like 1.0.")
        digits = matched.group(1)
        major = int(digits) if len(digits) <= _MAX_ID_DIGITS else -1
    elif math.isfinite(version):
        major = int(version)  # a finite float has no more than 309 digits
    else:
        raise UnsupportedMediaType("The field jsonapi.version must be a version like 1.0.")
    if major != 1:
        raise VersionNotSupported("The field jsonapi.version names a version other than 1.0.")


# --- one parser per method -------------------------------------------------------------------

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
        if not 0 < value <= MAX_ID:
            raise UnsupportedMediaType(f"The field {field} must be a positive id.")
        return value
    if not (value.isascii() and value.isdigit()):
        raise UnsupportedMediaType(f"The field {field} must be a numeric id.")
    digits = value.lstrip("0")
    if len(digits) > _MAX_ID_DIGITS:
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
    if isinstance(value, int) and not MIN_INT64 <= value <= MAX_ID:
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
}

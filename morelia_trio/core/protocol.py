"""The wire format in: decode a frame into a typed Request, in either dialect. No I/O.

Decoding is two steps. msgspec checks every type against the lenient wire structs
(``frames``); then a small parser per method (``parsers``) pulls out what that method needs,
so handlers get a typed request (``requests``) or the client gets a 4xx naming the field in
plain words (``plain_words``). Here: the envelope, the version check, and the errors of a
frame that never became a request.
"""

from __future__ import annotations

import math
import re
from typing import Final

import msgspec

from ..config import Limits
from .errors import BadRequest, MoreliaError, UnsupportedMediaType, VersionNotSupported
from .frames import DataIn, Dialect, Envelope, JsonApiIn
from .parsers import MAX_ID_DIGITS, PARSERS
from .plain_words import plain_words
from .requests import Request

_envelope_decoder: Final = msgspec.json.Decoder(Envelope)


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


_VERSION: Final = re.compile(r"\s*(\d+)(\.\d+)*\s*$")


def _check_version(jsonapi: JsonApiIn | None) -> None:
    version = jsonapi.version if jsonapi else None
    if version is None or version == "1.0":  # what every client sends: no regex for it
        return
    if isinstance(version, str):
        matched = _VERSION.match(version)
        if matched is None:
            raise UnsupportedMediaType("The field jsonapi.version must be a version like 1.0.")
        digits = matched.group(1)
        major = int(digits) if len(digits) <= MAX_ID_DIGITS else -1
    elif math.isfinite(version):
        major = int(version)  # a finite float has no more than 309 digits
    else:
        raise UnsupportedMediaType("The field jsonapi.version must be a version like 1.0.")
    if major != 1:
        raise VersionNotSupported("The field jsonapi.version names a version other than 1.0.")

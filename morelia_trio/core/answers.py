"""What a handler answers with: a payload and a status, before any dialect is chosen."""

from __future__ import annotations

from typing import Final, TypeAlias

import msgspec

from .queries import Listing
from .records import Message


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

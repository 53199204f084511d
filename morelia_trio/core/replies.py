"""The reply side of the wire format: render an answer in the request's dialect. No I/O.

Every reply has exactly the keys type, data, errors, jsonapi and meta. The document dialect
writes integer ids, float times, single objects and an ``errors.id``; the list dialect writes
numeric-string ids (as both ``uuid`` and ``id``), integer times and arrays, never null lists.
"""

from __future__ import annotations

from typing import Final

import msgspec

from .answers import Answer
from .frames import Dialect
from .reply_document import DocErrors, DocJsonApi, DocReply, doc_data
from .reply_list import ListErrors, ListJsonApi, ListReply, list_data

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
            data=list_data(answer, int(now)),
            errors=ListErrors(answer.code, answer.status, int(now), detail),
            jsonapi=_LIST_JSONAPI,
        )
    else:
        reply = DocReply(
            type=reply_type,
            data=doc_data(answer, now),
            errors=DocErrors(reply_id, now, answer.status, answer.code, detail),
            jsonapi=_DOC_JSONAPI,
        )
    return _encoder.encode(reply).decode()

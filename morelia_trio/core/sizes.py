"""How many bytes an item can take in a reply: what the reply byte cap counts. Pure.

An item's size is bounded by its keys and the values the server writes for it (ids, times,
flags: a constant, taken at its largest over both dialects) plus the values a user chose
(texts, attachments, names), measured exactly as JSON. A test holds these bounds against the
real renderer. The same measure is a message's weight against its author's storage quota.
"""

from __future__ import annotations

from typing import Final

import msgspec

from .records import Flow, Message, User

# The keys and server-written values of one item, at most (ids below 2**31, times and
# flags at their longest), in either dialect.
MESSAGE_KEYS: Final = 400
FLOW_KEYS: Final = 160
FLOW_MEMBER: Final = 13  # one member id in a flow's list: "2147483647",
PROFILE_KEYS: Final = 160
# A reply's own keys around its items: type (at most 64 characters, escaped), errors, jsonapi.
REPLY_ENVELOPE: Final = 1024

_encoder: Final = msgspec.json.Encoder()


def json_size(value: object) -> int:
    """Bytes ``value`` takes as JSON; nothing for an absent value (its key is counted)."""
    return 0 if value is None else len(_encoder.encode(value))


def message_content(message: Message) -> int:
    """Bytes of everything a message's sender chose to put in it."""
    # Measured for every message sent: most fields are absent, and skipped without a call.
    encode, size = _encoder.encode, 0
    for value in (
        message.text,
        message.picture,
        message.video,
        message.audio,
        message.document,
        message.emoji,
        message.client_id,
    ):
        if value is not None:
            size += len(encode(value))
    return size


def flow_size(flow: Flow) -> int:
    return FLOW_KEYS + json_size(flow.title) + json_size(flow.info) + FLOW_MEMBER * len(flow.users)


def profile_size(user: User) -> int:
    return (
        PROFILE_KEYS
        + json_size(user.login)
        + json_size(user.username)
        + json_size(user.email)
        + json_size(user.bio)
        + json_size(user.avatar)
    )

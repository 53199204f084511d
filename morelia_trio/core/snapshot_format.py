"""The snapshot file format: the whole state in one msgpack file, and its one schema.

File layout: the magic line, then ``length u64 | crc32 u32``, then the msgpack Snapshot.
Anything that is not a valid snapshot raises DataDamaged naming the file.

One struct spells the snapshot's fields, whichever form its message chunks take: the owner's
capture shares the state's chunks (tuples of references, None for a deleted message), the
writer encodes each chunk apart, and a read gives lists of messages.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Final, Generic, TypeAlias, TypeVar, cast

import msgspec

from .journal_format import DataDamaged
from .records import Flow, Message, User

SNAPSHOT_FORMAT: Final = 1
SNAPSHOT_NAME: Final = "snapshot.msgpack"
MAGIC: Final = b"MORELIA-TRIO SNAPSHOT\n"
HEADER: Final = struct.Struct("<QI")

Chunk = TypeVar("Chunk")


class Snapshot(msgspec.Struct, Generic[Chunk], kw_only=True, frozen=True):
    """The whole state at journal sequence number ``seq`` (every event up to it applied).

    Messages are stored in chunks so that a large state can be encoded a chunk at a time;
    the change log is stored as packed arrays so that a restart need not sort it again.
    """

    format: int = SNAPSHOT_FORMAT
    seq: int
    time: float = 0.0  # when it was written (a capture has not been yet)
    clock: float
    next_user_id: int
    next_flow_id: int
    next_message_id: int
    users: list[User]
    flows: list[Flow]
    session_tokens: list[bytes]  # SHA-256 of each live token ...
    session_users: list[int]  # ... and whose it is
    message_chunks: list[Chunk]
    change_times: bytes  # array("d")
    change_keys: bytes  # array("q")
    # Written by a server that makes the journal reach ``seq`` (synced) before the snapshot
    # is in place; snapshots from before that guarantee lack it. With it, a journal that
    # stops short of ``seq`` means a journal file has gone missing, not a crash.
    journal_reaches_seq: bool = False
    # Moderation: user ids. Snapshots from before it load with none.
    admins: list[int] = []
    suspended: list[int] = []
    # array("q") of (message id, flow id) for each deleted message; older snapshots lack it
    # (their change logs hold no deletions).
    deletion_pairs: bytes = b""


# A capture shares the state's chunks of messages, by id (None: deleted).
Captured: TypeAlias = Snapshot[tuple[Message | None, ...]]
Stored: TypeAlias = Snapshot[list[Message]]  # as read back

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Stored)


def encode(capture: Captured, now: float, *, journal_follows: bool = True) -> bytes:
    """Encode a captured state. Runs in a worker thread, a chunk of messages at a time: the
    thread lets go of the GIL between chunks.

    ``journal_follows=False`` is for a snapshot alone (a backup): no journal reaches it.
    """
    chunks = [
        msgspec.Raw(_encoder.encode([m for m in chunk if m is not None]))
        for chunk in capture.message_chunks
    ]
    # The same struct with its chunks encoded already: only their type changes.
    written = cast(
        "Snapshot[msgspec.Raw]",
        msgspec.structs.replace(
            capture,
            time=now,
            message_chunks=chunks,
            # The journal's rotation and its end see to it (for a data directory's snapshot).
            journal_reaches_seq=journal_follows,
        ),
    )
    payload = _encoder.encode(written)
    return MAGIC + HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode(data: bytes, path: Path) -> Stored:
    """Decode a snapshot file's bytes (``path`` names it in errors).

    Raises:
        DataDamaged: not a whole, valid snapshot of a format this server knows.
    """
    if not data.startswith(MAGIC):
        raise DataDamaged(path, 0, "not a morelia-trio snapshot (unknown format)")
    start = len(MAGIC) + HEADER.size
    if len(data) < start:
        raise DataDamaged(path, len(MAGIC), "snapshot header is cut short")
    length, crc = HEADER.unpack_from(data, len(MAGIC))
    payload = memoryview(data)[start:]
    if len(payload) != length:
        raise DataDamaged(path, start, f"snapshot holds {len(payload)} bytes, not {length}")
    if zlib.crc32(payload) != crc:
        raise DataDamaged(path, start, "snapshot fails its checksum")
    try:
        format_ = msgspec.msgpack.decode(payload, type=_Format).format
    except msgspec.DecodeError:
        raise DataDamaged(path, start, "snapshot is not in a format this server knows") from None
    if format_ != SNAPSHOT_FORMAT:
        raise DataDamaged(path, start, f"snapshot format {format_} is unknown to this server")
    try:
        return _decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise DataDamaged(path, start, f"snapshot does not decode ({exc})") from None


class _Format(msgspec.Struct):
    format: int

"""Snapshot files: the whole state in one msgpack file, written atomically, read back whole.

File layout: the magic line, then ``length u64 | crc32 u32``, then the msgpack Snapshot.
A missing file is a fresh start; anything else that is not a valid snapshot stops start-up
with a message naming the file, never a silent empty start.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Final

import msgspec

from .core import Capture
from .journal import DataDamaged, fsync_directory
from .models import SNAPSHOT_FORMAT, Flow, Snapshot, User

SNAPSHOT_NAME: Final = "snapshot.msgpack"
MAGIC: Final = b"MORELIA-TRIO SNAPSHOT\n"
HEADER: Final = struct.Struct("<QI")

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Snapshot)


class _SnapshotOut(msgspec.Struct, kw_only=True):
    """Snapshot as written: the same fields, with message chunks already encoded."""

    format: int
    seq: int
    time: float
    clock: float
    next_user_id: int
    next_flow_id: int
    next_message_id: int
    users: list[User]
    flows: list[Flow]
    session_tokens: list[bytes]
    session_users: list[int]
    message_chunks: list[msgspec.Raw]
    change_times: bytes
    change_keys: bytes
    journal_reaches_seq: bool


def encode(capture: Capture, now: float) -> bytes:
    """Encode a captured state. Runs in a worker thread, a chunk of messages at a time: the
    thread lets go of the GIL between chunks."""
    chunks = [
        msgspec.Raw(_encoder.encode([m for m in chunk if m is not None]))
        for chunk in capture.message_chunks
    ]
    payload = _encoder.encode(
        _SnapshotOut(
            format=SNAPSHOT_FORMAT,
            seq=capture.seq,
            time=now,
            clock=capture.clock,
            next_user_id=capture.next_user_id,
            next_flow_id=capture.next_flow_id,
            next_message_id=capture.next_message_id,
            users=capture.users,
            flows=capture.flows,
            session_tokens=capture.session_tokens,
            session_users=capture.session_users,
            message_chunks=chunks,
            change_times=capture.change_times,
            change_keys=capture.change_keys,
            journal_reaches_seq=True,  # Journal.rotate and Journal.run's end see to it
        )
    )
    return MAGIC + HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or the new, whole."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError:
        temporary.unlink(missing_ok=True)  # a full disk should not stay full of our leftovers
        raise
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_directory(path.parent)


def read(path: Path) -> Snapshot | None:
    """Read a snapshot file; None if there is none.

    Raises:
        DataDamaged: the file is not a whole, valid snapshot of a format this server knows.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode(data, path)


def decode(data: bytes, path: Path) -> Snapshot:
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

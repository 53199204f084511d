"""The journal file format: records, the end-of-file marker, file names, and the scanner.

A data directory holds ``journal-<first seq>.log`` files of records, each record being

    length u32 | seq u64 | payload crc32 u32 | header crc32 u32 | payload (msgpack event)

with consecutive sequence numbers. A file the journal moved on from ends with an end-of-file
marker: a record header whose length is 0 and whose seq is the first of the next file.
``scan`` tells a torn tail (what a crash can leave) from damage (what it cannot).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Final

import msgspec

from .events import AnyEvent

HEADER: Final = struct.Struct("<IQII")
MAX_RECORD: Final = 64 * 1024 * 1024  # no event comes near this; a bigger length is damage
_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final[msgspec.msgpack.Decoder[AnyEvent]] = msgspec.msgpack.Decoder(AnyEvent)


class DataDamaged(Exception):
    """A data file is damaged somewhere a crash cannot explain: refuse to guess.

    ``offset`` is None when the damage is a file that is missing altogether.
    """

    def __init__(self, path: Path, offset: int | None, reason: str) -> None:
        where = "" if offset is None else f" at byte offset {offset}"
        super().__init__(f"{path}: {reason}{where}")
        self.path = path
        self.offset = offset
        self.reason = reason


def encode_event(event: AnyEvent) -> bytes:
    return _encoder.encode(event)


def encode_record(seq: int, payload: bytes) -> bytes:
    head = struct.pack("<IQI", len(payload), seq, zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def encode_end(next_seq: int) -> bytes:
    """The end-of-file marker of a file the journal left for ``journal_name(next_seq)``."""
    return encode_record(next_seq, b"")


def decode_event(payload: bytes) -> AnyEvent:
    return _decoder.decode(payload)


def journal_name(first_seq: int) -> str:
    return f"journal-{first_seq:016d}.log"


def journal_files(directory: Path) -> list[tuple[int, Path]]:
    """The journal files in a directory, as (first seq, path), oldest first."""
    found = []
    # os.listdir, not Path.glob: glob finds nothing in a directory it may not read, which
    # would start an empty server over a full journal.
    for name in os.listdir(directory):
        number = name[len("journal-") : -len(".log")]
        if name.startswith("journal-") and name.endswith(".log") and number.isdigit():
            found.append((int(number), directory / name))
    return sorted(found)


class Scan(msgspec.Struct):
    records: list[tuple[int, bytes]]  # (seq, payload)
    end: int  # offset just past the last good record
    torn: str | None = None  # why the bytes after ``end`` were taken for a torn write
    follows: int | None = None  # the end-of-file marker's next seq: the file was left for it


def scan(data: bytes, path: Path) -> Scan:
    """Split a journal file into records.

    Only the end of a file may be damaged by a crash (the process died mid-write, or the
    power failed before an fsync). What could be such a torn tail is reported in ``torn``;
    damage anywhere else raises DataDamaged naming the file and offset.
    """
    records: list[tuple[int, bytes]] = []
    offset = 0
    size = len(data)
    while offset < size:
        rest = size - offset
        if rest < HEADER.size:
            return Scan(records, offset, f"{rest} bytes of an unfinished record header")
        length, seq, payload_crc, header_crc = HEADER.unpack_from(data, offset)
        if zlib.crc32(data[offset : offset + HEADER.size - 4]) != header_crc:
            if not any(data[offset:]):
                return Scan(records, offset, f"{rest} zero bytes after the last record")
            if not any(data[offset + HEADER.size :]):  # the header only partly reached the disk
                return Scan(records, offset, "a last record header partly written, then zeros")
            raise DataDamaged(path, offset, "record header fails its checksum")
        if length > MAX_RECORD:
            raise DataDamaged(path, offset, f"record length {length} is impossible")
        if length == 0:  # the end-of-file marker: nothing is ever written after it
            if offset + HEADER.size != size:
                raise DataDamaged(path, offset + HEADER.size, "bytes after the end-of-file marker")
            return Scan(records, offset, follows=seq)
        end = offset + HEADER.size + length
        if end > size:
            return Scan(
                records,
                offset,
                f"record {seq} is cut short ({rest} of {HEADER.size + length} bytes)",
            )
        payload = data[offset + HEADER.size : end]
        if zlib.crc32(payload) != payload_crc:
            if end == size:
                return Scan(records, offset, f"the last record ({seq}) fails its checksum")
            raise DataDamaged(path, offset, f"record {seq} fails its checksum")
        records.append((seq, payload))
        offset = end
    return Scan(records, offset)

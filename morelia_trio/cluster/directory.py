"""The data directory of a server sharing a stream: a copy of the stream's state.

It holds snapshots only (the stream is the log), and a file naming the stream they are of,
so that a directory is never read as the state of another stream, or of a server's own
journal.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import trio

from ..core.journal_format import journal_files
from ..core.snapshot_format import SNAPSHOT_NAME, Captured, decode, encode
from ..core.state import State, restore
from ..persistence.files import write_atomic
from .address import IDENTITY_NAME, EventLogMismatch


def restored(data: bytes, where: Path) -> State:
    """The state a snapshot's bytes hold (``where`` names them in an error)."""
    return restore(decode(data, where))


def check_identity(directory: Path, stream: str, created: float) -> None:
    """A data directory serves one stream: refuse one whose snapshot is of another.

    Raises:
        EventLogMismatch: the directory holds the state of another stream (or of a local
            journal), which this stream's records must not be applied to.
    """
    path = directory / IDENTITY_NAME
    try:
        known = json.loads(path.read_text())
    except FileNotFoundError:
        if journal_files(directory) or (directory / SNAPSHOT_NAME).exists():
            raise EventLogMismatch(
                f"{directory} holds a server's own journal or snapshot: a server sharing "
                f"the stream {stream} starts from an empty data directory"
            ) from None
        write_atomic(path, json.dumps({"stream": stream, "created": created}).encode())
        return
    if known.get("stream") != stream or known.get("created") != created:
        raise EventLogMismatch(
            f"{directory} holds the state of another stream than {stream} (or of the same "
            "name, created again): start this server from an empty data directory"
        )


async def write_local_snapshot(captured: Captured, directory: Path) -> bytes:
    """A snapshot in the data directory (no journal follows it: the stream does); its bytes,
    which the stream's bucket may keep too."""

    def write() -> bytes:
        data = encode(captured, time.time(), journal_follows=False)
        write_atomic(directory / SNAPSHOT_NAME, data)
        return data

    return await trio.to_thread.run_sync(write)

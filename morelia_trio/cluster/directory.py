"""The data directory of a server sharing a stream: a copy of the stream's state.

It holds snapshots only (the stream is the log), and a file naming the stream they are of,
so that a directory is never read as the state of another stream, or of a server's own
journal.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Final

import trio

from ..core.snapshot_format import Captured, decode, encode
from ..core.state import State, restore
from ..persistence.files import write_atomic
from .address import IDENTITY_NAME, EventLogMismatch

LOCAL_SNAPSHOT: Final = "snapshot.msgpack"


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
        journals = [p.name for p in directory.iterdir() if p.name.startswith("journal-")]
        if journals or (directory / LOCAL_SNAPSHOT).exists():
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


async def write_local_snapshot(captured: Captured, directory: Path) -> int:
    """A snapshot in the data directory (no journal follows it: the stream does)."""

    def write() -> int:
        data = encode(captured, time.time(), journal_follows=False)
        write_atomic(directory / LOCAL_SNAPSHOT, data)
        return len(data)

    return await trio.to_thread.run_sync(write)

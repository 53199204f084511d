"""The admin socket: a Unix socket in the data directory, mode 0600, that the operator's
``morelia-trio admin`` talks to while the server runs (as prosodyctl's shell or ejabberdctl).

One JSON request per line, one JSON reply per line (``admin_protocol``). The server binds
the socket under a temporary name, makes it 0600, then renames it into place, so it is never
open to others for an instant; the rename also replaces a stale socket a crash left behind
(the directory lock, held by now, proves no live server owns it). It is removed on shutdown.
The client side (``request``) is plain blocking sockets: the tool runs one request and exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Final

import msgspec
import trio

from . import admin_protocol as proto
from .admin import perform
from .store import Store

log = logging.getLogger(__name__)

SOCKET_NAME: Final = "admin.sock"
MAX_SUN_PATH: Final = 100  # sun_path holds 108 bytes on Linux; keep clear of the edge


@contextlib.contextmanager
def reachable(path: Path) -> Iterator[str]:
    """A name for ``path`` short enough for a Unix socket address: the path itself, or the
    same file reached through an open descriptor of its directory (Linux's /proc)."""
    if len(os.fsencode(path)) <= MAX_SUN_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


async def serve_admin(
    directory: Path, store: Store, *, task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the admin socket of ``directory`` until cancelled, then remove it."""
    path = directory / SOCKET_NAME
    staging = directory / f".{SOCKET_NAME}.{os.getpid()}"
    staging.unlink(missing_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with reachable(staging) as name:
            await sock.bind(name)
        os.chmod(staging, 0o600)
        os.replace(staging, path)
        sock.listen()
    except BaseException as exc:
        sock.close()
        staging.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # say which socket: "Permission denied" alone does not
            raise OSError(exc.errno, f"{path}: {exc.strerror or exc}") from exc
        raise
    try:
        log.info("Admin socket on %s", path)
        task_status.started(path)
        await trio.serve_listeners(partial(_serve_client, store), [trio.SocketListener(sock)])
    finally:
        path.unlink(missing_ok=True)


async def _serve_client(store: Store, stream: trio.SocketStream) -> None:
    async with stream:
        buffer = bytearray()
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) > proto.MAX_LINE:
                    await stream.send_all(_refusal("The request line is too long."))
                    return
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
                continue
            line = bytes(buffer[:newline])
            del buffer[: newline + 1]
            try:
                await stream.send_all(await _answer(store, stream, line))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the tool went away; a change it asked for stands


async def _answer(store: Store, stream: trio.SocketStream, line: bytes) -> bytes:
    try:
        request = proto.request_decoder.decode(line)
    except msgspec.DecodeError:  # the tool's own words, not the offending value
        return _refusal("Not an admin request (one JSON object per line).")
    try:
        reply = await perform(store, request, stream.send_all)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        raise  # the tool went away mid-export: no bug to log
    except Exception:
        log.exception("Admin request %s failed", type(request).__name__)
        return _refusal("The server failed to carry out the request; see its log.")
    return proto.encode_line(reply)


def _refusal(detail: str) -> bytes:
    return proto.encode_line(proto.Reply(ok=False, detail=detail))


def connect(directory: Path) -> socket.socket | None:
    """A connection to the admin socket of a live server on ``directory``; None if none is
    listening there (no socket, or a stale one a crash left)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with reachable(directory / SOCKET_NAME) as name:
            sock.connect(name)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    except BaseException:
        sock.close()
        raise
    return sock


def request(sock: socket.socket, request: proto.AnyAdminRequest) -> Iterator[proto.AnyLine]:
    """Send one request; yield each line of the answer, the reply last."""
    sock.sendall(proto.encode_line(request))
    with sock.makefile("rb") as lines:
        for line in lines:
            item = proto.line_decoder.decode(line)
            yield item
            if isinstance(item, proto.Reply):
                return
    raise ConnectionError("the server closed the admin socket before replying")

"""The admin tool's operations, the same on a live server and on a stopped one's directory.

``perform`` carries out one ``admin_protocol`` request through the state owner: a change is
a command like any other (journaled, replayed, in snapshots) and is logged; a read runs as
a query. On a live server the admin socket (``admin_socket.py``) calls it; on a stopped
server's directory ``run_offline`` does, holding the directory's lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar, TypeVarTuple

import msgspec
import trio

from . import admin_protocol as proto
from .cluster.address import IDENTITY_NAME
from .core import commands
from .core.accounts import canonical_login
from .core.errors import BadRequest, MoreliaError, NotFound
from .core.records import User
from .core.snapshot_format import SNAPSHOT_NAME, Captured, encode
from .core.state import State, capture
from .persistence.files import write_atomic
from .persistence.local import final_snapshot, open_local
from .persistence.lock import DirectoryLock
from .persistence.recovery import recover
from .store import Store, run_store

log = logging.getLogger(__name__)

T = TypeVar("T")
Args = TypeVarTuple("Args")

# Sends one export line (a record) before the reply: to the socket, or to stdout offline.
Emit = Callable[[bytes], Awaitable[None]]
EXPORT_BATCH = 64 * 1024  # bytes of export lines per emit


class StateAtHand:
    """A stopped server's state, read in this process: what ``Store.call`` is for reads."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def call(self, fn: Callable[[State, *Args], T], *args: *Args) -> T:
        return fn(self.state, *args)


# --- the state functions (run by the owner) ------------------------------------------------


def resolve_user(state: State, who: str) -> int:
    """A user named by login (as registered, else its canonical form), or by id in digits."""
    user_id = state.logins.get(who)
    if user_id is None:
        user_id = state.canonical_logins.get(canonical_login(who))
    if user_id is None and who.isdigit() and int(who) in state.users:
        user_id = int(who)
    if user_id is None:
        raise NotFound("No user has this login or id.")
    return user_id


def _row(user: User, admins: set[int], suspended: set[int]) -> proto.UserRow:
    return proto.UserRow(
        id=user.id,
        login=user.login,
        username=user.username,
        email=user.email,
        time=user.time,
        admin=user.id in admins,
        suspended=user.id in suspended,
    )


def list_users(state: State, text: str | None) -> list[proto.UserRow]:
    """Every user, by id; with ``text``, those whose login or username holds it (any case)."""
    wanted = None if text is None else text.casefold()
    return [
        _row(user, state.admins, state.suspended)
        for user in state.users.values()
        if wanted is None or wanted in user.login.casefold() or wanted in user.username.casefold()
    ]


def statistics(state: State) -> proto.Statistics:
    return proto.Statistics(
        users=len(state.users),
        admins=len(state.admins),
        suspended=len(state.suspended),
        sessions=len(state.sessions),
        flows=len(state.flows),
        messages=len(state.messages),
        stored_bytes=sum(state.stored_bytes.values()),
        last_record=state.seq,
    )


# --- carrying out a request -----------------------------------------------------------------


async def perform(
    owner: Store | StateAtHand, request: proto.AnyAdminRequest, emit: Emit
) -> proto.Reply:
    """Carry out one request; a refusal (no such user, say) is a reply, never an exception."""
    try:
        return await _perform(owner, request, emit)
    except MoreliaError as exc:
        return proto.Reply(ok=False, detail=exc.detail)


async def _perform(
    owner: Store | StateAtHand, request: proto.AnyAdminRequest, emit: Emit
) -> proto.Reply:
    now = time.time()
    match request:
        case proto.ListUsers():
            return proto.Reply(ok=True, users=await owner.call(list_users, None))
        case proto.FindUsers(text=text):
            return proto.Reply(ok=True, users=await owner.call(list_users, text))
        case proto.Stats():
            return proto.Reply(ok=True, statistics=await owner.call(statistics))
        # The user is found first, then the command runs as a client's would: the same
        # functions a shared log carries to every server.
        case proto.SetAdmin(user=who, admin=admin):
            user_id = await owner.call(resolve_user, who)
            await owner.call(commands.set_admin, user_id, admin, now)
            done = "made a server admin" if admin else "made a member again"
        case proto.SetSuspended(user=who, suspended=suspended):
            user_id = await owner.call(resolve_user, who)
            await owner.call(commands.set_suspended, user_id, suspended, now)
            done = "suspended" if suspended else "restored (the suspension is lifted)"
        case proto.DeleteUser(user=who):
            user_id = await owner.call(resolve_user, who)
            await owner.call(commands.remove_user, user_id, now)
            done = "deleted (its messages stay)"
        case proto.DeleteMessage(message_id=message_id):
            await owner.call(commands.remove_message, message_id, now)
            log.info("Admin tool: message %d deleted", message_id)
            return proto.Reply(ok=True, detail=f"message {message_id} deleted")
        case proto.Backup(target=target):
            captured = await owner.call(capture)
            await trio.to_thread.run_sync(write_backup, captured, Path(target))
            log.info("Admin tool: backup at record %d written to %s", captured.seq, target)
            return proto.Reply(ok=True, detail=f"backup at record {captured.seq} in {target}")
        case proto.Export():
            count = await export(await owner.call(capture), emit)
            return proto.Reply(ok=True, detail=f"{count} records exported")
    log.info("Admin tool: user %s %s", user_id, done)
    return proto.Reply(ok=True, detail=f"user {user_id} {done}")


def write_backup(captured: Captured, target: Path) -> None:
    """The capture as the one file a data directory needs: start a server on ``target``
    to restore it. ``target`` must be new or empty, so no stale journal joins it."""
    try:
        target.mkdir(parents=True, exist_ok=True)
        if any(target.iterdir()):
            raise BadRequest("The backup's target directory is not empty.")
        # No journal follows a backup's snapshot: it is whole by itself.
        write_atomic(target / SNAPSHOT_NAME, encode(captured, time.time(), journal_follows=False))
    except OSError as exc:
        raise BadRequest(f"The backup could not be written: {exc.strerror or exc}.") from exc


async def export(captured: Captured, emit: Emit) -> int:
    """Every user (without secrets), flow and message of a capture, one line each, handed
    to ``emit`` some 64 KiB at a time (a send per line would cost more than the encoding)."""
    admins, suspended = set(captured.admins), set(captured.suspended)
    batch = bytearray()
    count = 0

    async def add(item: msgspec.Struct) -> None:
        nonlocal count
        batch.extend(proto.encode_line(item))
        count += 1
        if len(batch) >= EXPORT_BATCH:
            await emit(bytes(batch))
            batch.clear()

    for user in captured.users:
        await add(proto.ExportedUser(_row(user, admins, suspended)))
    for flow in captured.flows:
        await add(proto.ExportedFlow(flow))
    for chunk in captured.message_chunks:
        for message in chunk:
            if message is not None:
                await add(proto.ExportedMessage(message))
    if batch:
        await emit(bytes(batch))
    return count


class SharedState(Exception):
    """A change asked of a stopped server that shares a stream: its directory only holds a
    copy of the stream's state, which a change written there would part from."""

    def __init__(self, directory: Path) -> None:
        super().__init__(
            f"{directory} holds a copy of a shared event log's state: make changes through a "
            "running server that shares it"
        )


async def run_offline(directory: Path, request: proto.AnyAdminRequest, emit: Emit) -> proto.Reply:
    """Carry out ``request`` on a stopped server's directory, holding its lock throughout.

    Raises:
        DirectoryInUse: a server holds the directory.
        DataDamaged: the directory holds damage a server would refuse to start on.
        SharedState: a change, in the directory of a server sharing a stream.
    """
    lock = DirectoryLock(directory)
    try:
        if request.changes and (directory / IDENTITY_NAME).exists():
            raise SharedState(directory)
        if not request.changes:  # a read leaves the directory as it is: no new journal file
            state, _ = await trio.to_thread.run_sync(lambda: recover(directory, repair=False))
            return await perform(StateAtHand(state), request, emit)
        state, event_log = await open_local(directory, "always", 0.05)
        async with trio.open_nursery() as nursery:
            await nursery.start(event_log.run)
            store: Store = await nursery.start(run_store, state, event_log)
            reply = await perform(store, request, emit)
            nursery.cancel_scope.cancel()
        await final_snapshot(event_log, state, orderly=True)
        return reply
    finally:
        lock.release()

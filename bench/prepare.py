"""Data directories built offline with the package's own core, so setup takes seconds.

Registering through the server costs one argon2 hash per user (about 0.1 s each, by design);
the suite instead builds the state here, as ``bench/state_scale.py`` does, and writes it as a
snapshot the server loads on start. Chat users get known tokens (only their SHA-256 digests are
stored, as the server itself does); login-storm users share one real argon2id hash made with
the server's default cost, so a storm login costs exactly what a real one does.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import argon2
import msgspec

from morelia_trio.config import Argon2Params
from morelia_trio.core import commands, snapshot_format
from morelia_trio.core.events import AnyEvent
from morelia_trio.core.journal_format import journal_name
from morelia_trio.core.records import Credentials, MessageContent
from morelia_trio.core.state import State, apply, capture, hash_token
from morelia_trio.persistence.files import write_atomic

GENERAL_FLOW = 1
STORM_PASSWORD = "storm-password"  # a benchmark account only
HISTORY_SPACING = 0.01  # seconds between two prepared history messages (100 a second)


class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    """What a prepared data directory holds, for the load generator to speak as its users."""

    chat_users: list[tuple[int, str]]  # (user id, token)
    storm_logins: list[str]  # every one has the password STORM_PASSWORD
    history_flows: dict[int, int]  # message count -> flow id
    fanout_users: list[tuple[int, str]] = []  # (user id, token): one per subscriber
    # chat user id -> a chat of its own (with itself alone): messages no subscriber sees
    own_chats: dict[int, int] = {}


def chat_token(n: int) -> str:
    return f"bench-token-{n:06d}-{'x' * 20}"


def fanout_token(n: int) -> str:
    return f"bench-fanout-{n:06d}-{'x' * 20}"


def _storm_hash() -> str:
    params = Argon2Params()  # the server's default cost
    hasher = argon2.PasswordHasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        type=argon2.Type.ID,
    )
    return hasher.hash(STORM_PASSWORD)


def build(
    directory: Path,
    *,
    chat_users: int,
    storm_users: int = 0,
    history: tuple[int, ...] = (),
    fanout_users: int = 0,
) -> Prepared:
    """Write a snapshot into ``directory`` (created) and say what it holds.

    With ``fanout_users``: that many more users with known tokens (one subscriber each, as
    live updates allow 32 subscribed connections per user), and a chat of its own for each
    chat user, where round trips change nothing a subscriber sees."""
    state = State()
    start = time.time() - 30 * 86400  # every prepared event lies in the past
    clock = start
    seq = 0

    def commit(event: AnyEvent | None) -> None:
        nonlocal seq, clock
        assert event is not None
        apply(state, event)
        seq += 1
        state.seq = seq
        clock += HISTORY_SPACING

    commit(commands.bootstrap(state, clock))
    # A fixed fake hash: chat users never log in with a password, they hold tokens.
    fake_hash = "$argon2id$v=19$m=65536,t=3,p=4$" + "x" * 64
    users: list[tuple[int, str]] = []
    for n in range(chat_users):
        token = chat_token(n)
        registered = commands.register_user(
            state, f"chat{n}", fake_hash, None, None, hash_token(token), clock
        )
        commit(registered)
        users.append((registered.user.id, token))
    logins: list[str] = []
    if storm_users:
        real_hash = _storm_hash()
        for n in range(storm_users):
            login = f"storm{n}"
            commit(
                commands.register_user(
                    state, login, real_hash, None, None, hash_token(f"storm-{n}"), clock
                )
            )
            logins.append(login)
    subscribers: list[tuple[int, str]] = []
    own_chats: dict[int, int] = {}
    for n in range(fanout_users):
        token = fanout_token(n)
        registered = commands.register_user(
            state, f"fan{n}", fake_hash, None, None, hash_token(token), clock
        )
        commit(registered)
        subscribers.append((registered.user.id, token))
    if fanout_users:
        for user in users:
            added = commands.add_flow(state, Credentials(*user), "chat", "notes", None, [], clock)
            commit(added)
            own_chats[user[0]] = added.flow.id
    flows: dict[int, int] = {}
    if history:
        author = Credentials(*users[0])
        for count in history:
            added = commands.add_flow(state, author, "group", f"History {count}", None, [], clock)
            commit(added)
            flows[count] = added.flow.id
            for n in range(count):
                text = f"history message {n} of {count}, with a sentence of ordinary length"
                new = MessageContent(text=text)
                commit(commands.send_message(state, author, added.flow.id, new, clock))
    directory.mkdir(parents=True, exist_ok=True)
    data = snapshot_format.encode(capture(state), time.time())
    write_atomic(directory / snapshot_format.SNAPSHOT_NAME, data)
    # As a server leaves it: the journal file that follows the snapshot (a snapshot with none
    # is the damage recovery refuses, a deleted journal).
    (directory / journal_name(state.seq + 1)).touch()
    return Prepared(
        chat_users=users,
        storm_logins=logins,
        history_flows=flows,
        fanout_users=subscribers,
        own_chats=own_chats,
    )


def copy(template: Path, directory: Path) -> Path:
    """A fresh copy of a prepared data directory, for one server run."""
    shutil.copytree(template, directory)
    return directory

"""Commands as records of a shared log (core/shared_commands.py), without sockets."""

from __future__ import annotations

import inspect
import typing

import msgspec
import pytest

from morelia_trio.core import commands, shared_commands
from morelia_trio.core.events import Event
from morelia_trio.core.records import Credentials, MessageContent, SessionProof
from morelia_trio.core.state import State, apply, hash_token

T0 = 1.8e9


def test_every_command_that_changes_the_state_may_travel() -> None:
    """A function of core.commands that returns an event is a change: a shared log must be
    able to carry it, or a server sharing one could not make that change at all."""
    for name, fn in inspect.getmembers(commands, inspect.isfunction):
        if name.startswith("_") or fn.__module__ != commands.__name__:
            continue
        returned = typing.get_type_hints(fn)["return"]
        kinds = typing.get_args(returned) or (returned,)
        if any(isinstance(kind, type) and issubclass(kind, Event) for kind in kinds):
            assert shared_commands.is_replicated(fn), name


def test_a_record_decodes_to_the_same_call_and_decides_the_same() -> None:
    state = State()
    apply(state, commands.bootstrap(state, T0))  # type: ignore[arg-type]
    token_hash = hash_token("ann-token")
    args = ("ann", "hash-ann", "Ann", None, token_hash, T0)
    record = shared_commands.encode("node", 7, T0 + 5, commands.register_user, args)
    command, fn, decoded = shared_commands.decode(record)
    assert (command.origin, command.number, command.deadline, command.name) == (
        "node",
        7,
        T0 + 5,
        "register_user",
    )
    assert fn is commands.register_user and decoded == args
    assert fn(state, *decoded) == commands.register_user(state, *args)


def test_credentials_travel_as_the_tokens_digest_and_still_prove_who_asks() -> None:
    state = State()
    apply(state, commands.bootstrap(state, T0))  # type: ignore[arg-type]
    registered = commands.register_user(state, "ann", "h", None, None, hash_token("secret!"), T0)
    apply(state, registered)
    creds = Credentials(registered.user.id, "secret!")
    args = (creds, 1, MessageContent(text="hi"), T0, None)
    record = shared_commands.encode("node", 1, T0 + 5, commands.send_message, args)
    assert b"secret!" not in record
    _, fn, decoded = shared_commands.decode(record)
    assert decoded[0] == SessionProof(registered.user.id, hash_token("secret!"))
    assert fn(state, *decoded) == commands.send_message(state, *args)
    wrong = SessionProof(registered.user.id, hash_token("guess"))
    with pytest.raises(Exception, match="not valid"):
        fn(state, wrong, *decoded[1:])


@pytest.mark.parametrize(
    "record",
    [
        b"",
        b"\x95",
        msgspec.msgpack.encode(["node", 1, T0, "exec", msgspec.msgpack.encode([])]),
        msgspec.msgpack.encode(["node", 1, T0, "register_user", msgspec.msgpack.encode([1])]),
    ],
)
def test_a_record_that_is_no_known_command_is_refused(record: bytes) -> None:
    with pytest.raises(shared_commands.UnknownCommand):
        shared_commands.decode(record)

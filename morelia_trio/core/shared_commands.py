"""Commands as records of a shared log: what several servers replay to decide alike.

With one server, the owner decides a command and journals the event it yields. With
several sharing one stream, a server appends the command itself (its function's name and
arguments, times and tokens included) and every server decides it in stream order against
the same state: the same code, the same inputs, so the same answer everywhere. Only the
functions named here may travel; a record naming anything else is refused.

The stream holds what the journal would: no secret in clear. Credentials travel as a
``SessionProof`` (the token's digest, which the state keeps anyway) and new sessions as their
tokens' digests.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Final, get_type_hints

import msgspec

from . import commands
from .records import Credentials, SessionProof
from .state import State, hash_token

REPLICATED: Final[tuple[Callable[..., object], ...]] = (
    commands.bootstrap,
    commands.register_user,
    commands.open_session,
    commands.delete_user,
    commands.add_flow,
    commands.send_message,
    commands.edit_message,
    commands.delete_message,
    commands.set_admin,
    commands.set_suspended,
    commands.remove_user,
    commands.remove_message,
)
NAMES: Final[dict[Callable[..., object], str]] = {fn: fn.__name__ for fn in REPLICATED}
_BY_NAME: Final = {fn.__name__: fn for fn in REPLICATED}


class SharedCommand(msgspec.Struct, array_like=True, frozen=True):
    """One record of the shared stream."""

    origin: str  # the server that appended it: it answers the caller
    number: int  # that server's count of its appends: which caller
    deadline: float  # seconds since the epoch: stored later than this, every server refuses it
    name: str  # one of REPLICATED
    args: msgspec.Raw  # the function's arguments after the state, as msgpack


class UnknownCommand(ValueError):
    """A record that names no command this server knows, or whose arguments do not fit."""


def _arguments_type(fn: Callable[..., object]) -> Any:
    hints = get_type_hints(fn)
    parameters = list(inspect.signature(fn).parameters)[1:]  # after the state
    types = [hints[name] for name in parameters]
    types = [SessionProof if hint == Credentials | SessionProof else hint for hint in types]
    return tuple[tuple(types)]  # type: ignore[misc]


def _proven(arg: object) -> object:
    if isinstance(arg, Credentials):
        token = arg.token
        return SessionProof(arg.user_id, None if not token else hash_token(token))
    return arg


_DECODERS: Final = {
    name: msgspec.msgpack.Decoder(_arguments_type(fn)) for name, fn in _BY_NAME.items()
}
_ARITY: Final = {fn: len(inspect.signature(fn).parameters) - 1 for fn in REPLICATED}
_record_decoder: Final = msgspec.msgpack.Decoder(SharedCommand)
_encoder: Final = msgspec.msgpack.Encoder()


def encode(
    origin: str, number: int, deadline: float, fn: Callable[..., object], args: tuple[object, ...]
) -> bytes:
    """The record of ``fn(state, *args)``, appended by ``origin`` as its ``number``th."""
    if len(args) != _ARITY[fn]:  # the decoder wants them all: a record it would refuse
        raise TypeError(f"{fn.__name__} takes {_ARITY[fn]} arguments after the state")
    raw = msgspec.Raw(_encoder.encode([_proven(arg) for arg in args]))
    return _encoder.encode(SharedCommand(origin, number, deadline, NAMES[fn], raw))


def decode(data: bytes) -> tuple[SharedCommand, Callable[..., object], tuple[object, ...]]:
    """A record, its function and its arguments.

    Raises:
        UnknownCommand: the record is not one this server can decide.
    """
    try:
        record = _record_decoder.decode(data)
        decoder = _DECODERS.get(record.name)
        if decoder is None:
            raise UnknownCommand(f"no command is called {record.name[:64]!r}")
        args: tuple[object, ...] = decoder.decode(record.args)
    except msgspec.DecodeError as exc:
        raise UnknownCommand(str(exc)) from exc
    return record, _BY_NAME[record.name], args


def is_replicated(fn: Callable[..., object]) -> bool:
    return fn in NAMES


def decide(fn: Callable[..., object], state: State, args: tuple[object, ...]) -> object:
    """Run a decoded command: what ``fn`` returns (an event, or None) or raises."""
    return fn(state, *args)

"""Fuzz the frame decoder and the dispatcher with random, mutated and raw frames.

``tests/test_fuzz.py`` runs this in every CI run (at least 100,000 inputs); a longer run:

    MORELIA_FUZZ_INPUTS=1000000 .venv/bin/pytest tests/test_fuzz.py
    .venv/bin/python -m tests.fuzz --inputs 1000000 [--seed N]

Inputs come from a seeded ``random.Random`` (so a failure names the seed that finds it again):

- random frames: every method type, both dialects, every field with a plausible value (real
  logins, passwords, tokens, user, flow and message ids that the server handed out) or a wild
  one (any JSON type, nulls, huge and odd numbers, odd unicode, nesting);
- mutations of valid frames: the real clients' frames (``client-traffic.md``) and valid frames
  carrying live tokens and ids, so a mutated request gets deep into the handlers: bit flips,
  truncations, insertions, splices, dropped keys, swapped types, duplicated fields, changed
  dialects;
- raw random text and bytes.

The decoder must answer every text frame with a Request or a FrameError carrying a 4xx; the
dispatcher (``respond``) must answer every frame with one JSON reply holding exactly the
contract's five keys and a code that is not 500, and log no bug.

Text frames are always valid Unicode without lone surrogates, as a WebSocket text frame must
be (wsproto refuses anything else with close code 1007); a lone surrogate still reaches the
decoder as a JSON escape (``"\\ud800"``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
import trio

from morelia_trio import Config, Limits, Running, serve
from morelia_trio.config import AbuseLimits
from morelia_trio.connection import respond
from morelia_trio.core.parsers import PARSERS
from morelia_trio.core.protocol import FrameError, decode_request
from morelia_trio.handlers import Context
from morelia_trio.testing import CHEAP_ARGON2

from .test_client_traffic import ANDROID_MASTER, ELECTRON, FLUTTER_REGISTER, fill

# The default inputs per CI run, and the share of them that goes through the whole dispatcher
# (the rest go through the decoder alone, which is some ten times faster).
DEFAULT_INPUTS: Final = 150_000
DISPATCHER_SHARE: Final = 0.3
LIMITED_SHARE: Final = 0.1  # of the dispatcher's: a server with its abuse limits on (429s)

# Deepest nesting the generator writes: well past the ~900 levels where msgspec gives up with
# RecursionError (a 400 "nested too deeply", see test_deeply_nested_frame_is_a_400).
MAX_NESTING: Final = 5_000

KEEP: Final = 64  # live values the pool remembers, of each kind
REPLY_KEYS: Final = frozenset({"type", "data", "errors", "jsonapi", "meta"})
CODES: Final = frozenset({200, 201, 206, 400, 401, 403, 404, 409, 413, 415, 429, 503, 505})
METHODS: Final = sorted(PARSERS)
TOKEN_ISSUERS: Final = frozenset({"register_user", "auth", "authentication"})

USER_KEYS: Final = ("id", "uuid", "auth_id", "login", "password", "username", "email")
CLIENT_USER_KEYS: Final = ("bio", "avatar", "is_bot", "token_ttl", "time_created")
FLOW_KEYS: Final = ("id", "uuid", "type", "title", "info", "users", "owner", "time")
ATTACHMENTS: Final = ("file_picture", "file_video", "file_audio", "file_document", "emoji")
MESSAGE_KEYS: Final = (
    "id",
    "uuid",
    "client_id",
    "text",
    "file",
    *ATTACHMENTS,
    "reply_to",
    "time",
    "from_user",
    "from_flow",
    "edited_message",
    "edited",
)
FILE_KEYS: Final = ("picture", "video", "audio", "document")
DATA_KEYS: Final = ("time", "user", "flow", "chat", "message", "meta")
ENVELOPE_KEYS: Final = ("type", "data", "jsonapi", "meta", "errors")
ALL_KEYS: Final = sorted(
    {*USER_KEYS, *CLIENT_USER_KEYS, *FLOW_KEYS, *MESSAGE_KEYS, *FILE_KEYS, *DATA_KEYS}
    | {*ENVELOPE_KEYS, "version", "revision", "code", "status", "detail"}
)
# What each method reads, so that most generated requests are close to valid.
NEEDS: Final[dict[str, tuple[str, ...]]] = {
    "register_user": ("signup",),
    "authentication": ("login",),
    "auth": ("login",),
    "user_info": ("creds", "others"),
    "send_message": ("creds", "flow", "new_message"),
    "all_messages": ("creds", "flow?", "time"),
    "get_update": ("creds", "flow?", "time"),
    "all_flow": ("creds",),
    "add_flow": ("creds", "new_flow"),
    "edited_message": ("creds", "message", "flow?"),
    "edited": ("creds", "message", "flow?"),
    "delete_message": ("creds", "message", "flow?"),
    "delete_user": ("login", "creds?"),
    "ping_pong": ("creds",),
    "ping-pong": ("creds",),
    "subscribe": ("creds", "time"),
    "unsubscribe": ("creds",),
}

ODD_NUMBERS: Final = (
    "1e999",
    "-1e999",
    "1E+400",
    "-0",
    "0.0",
    "-0.0",
    "0e0",
    "1e-400",
    "4.9e-324",
    "1.7976931348623157e308",
    "1.5",
    "2.0",
    "1.0",
    "1e2",
    "123456789012345678901234567890",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "2147483648",
    "1" + "0" * 400,
    "0.000000000000000000000000000001",
)
BIG_INTS: Final = (
    2**31 - 1,
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -1,
    -(2**31),
    -(2**63),
    -(2**63) - 1,
    10**18,
    10**19,
    10**100,
)
ODD_STRINGS: Final = (
    "",
    " ",
    "0",
    "00",
    "007",
    "-1",
    "+1",
    "1.0",
    "1e3",
    " 1",
    "1 ",
    "0x10",
    "\u0661\u0662",  # Arabic-Indic digits: str.isdigit() says yes
    "\uff11\uff12",  # fullwidth digits
    "²",
    "9" * 18,
    "9" * 19,
    "0" * 30 + "1",
    "NaN",
    "Infinity",
    "null",
    "true",
    "[]",
    "{}",
    "\x00",
    "\u200b",
    "\ufeff",
    "\u202e",
    "é",
    "e\u0301",
    "😀",
    "\U0010ffff",
    "\ufffe",
    "\\",
    '"',
    "\ud800",  # lone surrogates: written as JSON escapes
    "\udfff",
    "\udbff\udfff",
    "1.0.0",
    "2.0",
    "v1",
    "chat",
    "group",
    "channel",
    "General",
    "ping_pong",
    "<script>",
    "%s%n%x",
    "{0}",
    "\r\n",
)
ALPHABETS: Final = (
    (0x20, 0x7E),
    (0x00, 0x1F),
    (0xA0, 0x2FF),
    (0x300, 0x36F),  # combining marks
    (0x400, 0x4FF),  # Cyrillic, as the real clients' users write
    (0x590, 0x6FF),  # right-to-left
    (0x4E00, 0x4FFF),
    (0x1F300, 0x1F64F),  # emoji
    (0xFFF0, 0xFFFF),
    (0x10FFF0, 0x10FFFF),
    (0xD800, 0xDFFF),  # surrogates: escaped when written
)
LETTERS: Final = tuple("".join(map(chr, range(low, high + 1))) for low, high in ALPHABETS)
ALL_LETTERS: Final = "".join(letters[:64] for letters in LETTERS)  # each alphabet alike
# Sizes just below and above the limits (default Limits), cheap enough to send often.
EDGE_LENGTHS: Final = (63, 64, 65, 127, 128, 129, 254, 255, 1024, 1025, 2000, 2001)
BIG_LENGTHS: Final = (10_000, 10_001, 512 * 1024, 512 * 1024 + 1)


class Raw:
    """JSON text written as it is: numbers no Python type holds, deep nesting, junk."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class Pairs:
    """A JSON object that may name one key twice."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[tuple[str, Any]]) -> None:
        self.items = list(items)


class _Special(Exception):
    pass


def _special(value: object) -> object:
    raise _Special


def emit(value: Any, ascii_only: bool = False) -> str:
    """Write JSON the way a careless client might: any key twice, any number, raw tokens."""
    try:  # the fast way, for a tree of plain JSON values
        text = json.dumps(
            value,
            ensure_ascii=ascii_only,
            separators=(",", ":"),
            check_circular=False,
            default=_special,
        )
    except _Special:
        return _emit(value, ascii_only)
    if not ascii_only:
        try:
            text.encode()
        except UnicodeEncodeError:  # a lone surrogate: only its escape is valid text
            return emit(value, ascii_only=True)
    return text


def _emit(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs | dict):
        pairs = value.items if isinstance(value, Pairs) else value.items()
        return (
            "{" + ",".join(f"{emit(k, ascii_only)}:{_emit(v, ascii_only)}" for k, v in pairs) + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_emit(v, ascii_only) for v in value) + "]"
    return emit(value, ascii_only)


def wire_text(text: str | bytes) -> str | bytes:
    """What can travel in a WebSocket text frame: valid Unicode, so no lone surrogates."""
    if isinstance(text, bytes):
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode()
    return text


@dataclass
class Account:
    id: int
    login: str
    password: str
    token: str


@dataclass
class Pool:
    """What the server handed out: real ids and tokens, so fuzzed requests get deep."""

    accounts: list[Account] = field(default_factory=list)
    tokens: dict[int, list[str]] = field(default_factory=dict)  # user id -> tokens seen
    flow_ids: list[int] = field(default_factory=list)
    message_ids: list[int] = field(default_factory=list)
    authored: dict[int, list[int]] = field(default_factory=dict)  # user id -> message ids
    times: list[float] = field(default_factory=list)
    seeds: list[str] = field(default_factory=list)  # valid frames with live tokens and ids

    def forget_deleted(self, frame: str | bytes) -> None:
        """A delete_user went through: its account's tokens are dead, take it out."""
        try:
            request = json.loads(frame)
            user = request["data"]["user"]
            login = (user[0] if isinstance(user, list) else user)["login"]
        except (ValueError, TypeError, KeyError, IndexError):
            return
        self.accounts = [a for a in self.accounts if a.login != login]

    def learn(self, reply: dict[str, Any]) -> None:
        """Harvest ids, tokens and times from a successful reply."""
        data = reply.get("data")
        if not isinstance(data, dict):
            return
        if isinstance(data.get("time"), int | float):
            _keep(self.times, float(data["time"]), KEEP)
        for key, ids in (("flow", self.flow_ids), ("message", self.message_ids)):
            for item in _items(data.get(key)):
                if _is_id(item.get("id")):
                    _keep(ids, int(item["id"]), KEEP)
                    author: Any = item.get("from_user")
                    author = author.get("id") if isinstance(author, dict) else author
                    if key == "message" and _is_id(author):
                        _keep(self.authored.setdefault(int(author), []), int(item["id"]), 8)
                if isinstance(item.get("time"), int | float):
                    _keep(self.times, float(item["time"]), KEEP)
        for item in _items(data.get("user")):
            if _is_id(item.get("id")) and isinstance(item.get("auth_id"), str):
                _keep(self.tokens.setdefault(int(item["id"]), []), item["auth_id"], 4)


def _items(value: object) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def _is_id(value: object) -> bool:
    return (type(value) is int and value > 0) or (isinstance(value, str) and value.isdigit())


def _keep(values: list[Any], value: Any, keep: int) -> None:
    values.append(value)
    if len(values) > keep:
        del values[0]


class FuzzFailure(AssertionError):
    pass


def _shown(frame: object, limit: int = 3000) -> str:
    shown = repr(frame)
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown)} long)"


class Generator:
    """Every kind of input, from one seeded random generator and the pool of live values."""

    def __init__(self, seed: int, pool: Pool) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.pool = pool
        self.logins = 0
        self.current: Account | None = None
        self.client_seeds = client_traffic_frames()

    # --- scalars ------------------------------------------------------------------------

    def text(self, max_length: int = 16) -> str:
        """Characters of one alphabet, or of all of them mixed."""
        rng = self.rng
        letters = rng.choice(LETTERS) if rng.random() < 0.5 else ALL_LETTERS
        return "".join(rng.choices(letters, k=rng.randint(0, max_length)))

    def string(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.4:
            return rng.choice(ODD_STRINGS)
        if r < 0.88:
            return self.text()
        if r < 0.997:
            return rng.choice("xЖ😀") * rng.choice(EDGE_LENGTHS)
        return "y" * rng.choice(BIG_LENGTHS)

    def number(self) -> Any:
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            return rng.randint(-3, 12)
        if r < 0.45:
            return rng.choice(BIG_INTS)
        if r < 0.65:
            return Raw(rng.choice(ODD_NUMBERS))
        if r < 0.8:
            return rng.choice((0.0, -0.0, 1.0, 0.5, 1e308, -1e308, 5e-324, 1e16, 2.0**63))
        return rng.uniform(-1e10, 1e10) if rng.random() < 0.5 else time.time() + rng.uniform(-9, 9)

    def scalar(self) -> Any:
        r = self.rng.random()
        if r < 0.2:
            return None
        if r < 0.3:
            return self.rng.random() < 0.5
        if r < 0.6:
            return self.number()
        return self.string()

    def wild(self, depth: int = 0) -> Any:
        """Any JSON value at all."""
        rng = self.rng
        r = rng.random()
        if depth > 3 or r < 0.6:
            return self.scalar()
        if r < 0.75:
            return [self.wild(depth + 1) for _ in range(rng.randint(0, 4))]
        if r < 0.95:
            return {self.key(): self.wild(depth + 1) for _ in range(rng.randint(0, 4))}
        return self.nested()

    def nested(self) -> Raw:
        rng = self.rng
        depth = rng.choice((2, 10, 64, 100, 255, 256, MAX_NESTING))
        inner = emit(self.scalar())
        if rng.random() < 0.5:
            return Raw("[" * depth + inner + "]" * depth)
        return Raw('{"a":' * depth + inner + "}" * depth)

    def key(self) -> str:
        return self.rng.choice(ALL_KEYS) if self.rng.random() < 0.7 else self.text(8)

    # --- live values --------------------------------------------------------------------

    def account(self) -> Account | None:
        return self.rng.choice(self.pool.accounts) if self.pool.accounts else None

    def an_id(self, ids: list[int]) -> Any:
        """A live id as the dialects write it, or a placeholder, or a near miss."""
        rng = self.rng
        r = rng.random()
        value = rng.choice(ids) if ids else 1
        if r < 0.45:
            return value
        if r < 0.8:
            return str(value)
        if r < 0.85:
            return rng.choice((0, "0", "", None))
        if r < 0.9:
            return value + rng.choice((1, -1, 1000))
        if r < 0.95:
            return "0" * rng.randint(1, 30) + str(value)
        return self.scalar()

    def user_id(self) -> Any:
        ids = [a.id for a in self.pool.accounts] or list(self.pool.tokens) or [1]
        return self.an_id(ids)

    def token(self, user_id: int | None) -> Any:
        rng = self.rng
        tokens = self.pool.tokens.get(user_id or 0) or [""]
        r = rng.random()
        token = rng.choice(tokens)
        if r < 0.75:
            return token
        if r < 0.85:  # a client that sends bytes as an array of integers (Flutter)
            return list(token.encode())
        if r < 0.9:  # someone else's
            others = [t for ts in self.pool.tokens.values() for t in ts]
            return rng.choice(others) if others else token
        if r < 0.95:
            return token[:-1] + "x" if token else "x"
        return self.scalar()

    # --- objects ------------------------------------------------------------------------

    def maybe(self, plausible: Callable[[], Any], noise: float) -> Any:
        r = self.rng.random()
        if r < noise * 0.5:
            return None
        if r < noise:
            return self.wild()
        return plausible()

    def creds(self, noise: float) -> dict[str, Any]:
        account = self.current
        user_id = account.id if account else None
        user: dict[str, Any] = {}
        id_key = self.rng.choice(("id", "uuid", "uuid", "both"))
        chosen_id = self.maybe(lambda: self.an_id([user_id or 1]), noise)
        if id_key == "both":
            user["id"] = user["uuid"] = chosen_id
        else:
            user[id_key] = chosen_id
        user["auth_id"] = self.maybe(lambda: self.token(user_id), noise)
        return self.decorate(user, USER_KEYS + CLIENT_USER_KEYS, noise)

    def login(self, noise: float, signup: bool) -> dict[str, Any]:
        account = self.account()
        rng = self.rng
        if signup or account is None or rng.random() < 0.2:
            self.logins += 1
            login, password = f"fz{self.seed % 10_000}-{self.logins}", f"pw-{self.logins}"
        else:
            login, password = account.login, account.password
            if rng.random() < 0.2:
                password += "x"
        user: dict[str, Any] = {
            "login": self.maybe(lambda: login, noise),
            "password": self.maybe(lambda: password, noise),
        }
        if signup:
            user["username"] = self.maybe(lambda: self.text(12) or None, noise)
            user["email"] = self.maybe(lambda: rng.choice((None, "a@example.org", "x")), noise)
        if account is not None and rng.random() < 0.3:  # delete_user with its token
            user["uuid"] = self.an_id([account.id])
            user["auth_id"] = self.token(account.id)
        return self.decorate(user, USER_KEYS + CLIENT_USER_KEYS, noise)

    def flow_ref(self, noise: float) -> dict[str, Any]:
        key = self.rng.choice(("id", "uuid"))
        flow = {key: self.maybe(lambda: self.an_id(self.pool.flow_ids), noise)}
        return self.decorate(flow, FLOW_KEYS, noise)

    def new_flow(self, noise: float) -> dict[str, Any]:
        rng = self.rng

        def members() -> list[Any]:
            ids = [self.user_id() for _ in range(rng.choice((0, 1, 1, 2, 2, 3)))]
            if rng.random() < 0.2:
                return [{"uuid": i} for i in ids]
            return ids

        flow = {
            "type": self.maybe(lambda: rng.choice(("chat", "group", "channel")), noise),
            "title": self.maybe(lambda: self.text(12) or "t", noise),
            "info": self.maybe(lambda: self.text(20) or None, noise),
            "users": self.maybe(members, noise),
        }
        return self.decorate(flow, FLOW_KEYS, noise)

    def attachment(self) -> Any:
        rng = self.rng
        if rng.random() < 0.7:
            return self.text(20) or "aGk="
        return [rng.randint(-1, 256) for _ in range(rng.randint(0, 8))]

    def new_message(self, noise: float) -> dict[str, Any]:
        rng = self.rng
        message: dict[str, Any] = {"text": self.maybe(lambda: self.text(40) or "hi", noise)}
        if rng.random() < 0.3:
            message[rng.choice(ATTACHMENTS)] = self.maybe(self.attachment, noise)
        if rng.random() < 0.2:
            message["file"] = {rng.choice(FILE_KEYS): self.maybe(self.attachment, noise)}
        if rng.random() < 0.3:
            message["reply_to"] = self.maybe(lambda: self.an_id(self.pool.message_ids), noise)
        if rng.random() < 0.3:
            message["client_id"] = self.maybe(lambda: rng.choice((7, "c-1", "")), noise)
        return self.decorate(message, MESSAGE_KEYS, noise)

    def message_ref(self, noise: float) -> dict[str, Any]:
        key = self.rng.choice(("id", "uuid"))
        mine = self.pool.authored.get(self.current.id) if self.current else None
        ids = mine if mine and self.rng.random() < 0.7 else self.pool.message_ids
        message = {
            key: self.maybe(lambda: self.an_id(ids), noise),
            "text": self.maybe(lambda: self.text(30) or "edited", noise),
        }
        return self.decorate(message, MESSAGE_KEYS, noise)

    def decorate(self, obj: dict[str, Any], keys: tuple[str, ...], noise: float) -> dict[str, Any]:
        """Add the odd extra field, as the real clients send every key, nulls included."""
        rng = self.rng
        if rng.random() < noise:
            for _ in range(rng.randint(1, 3)):
                obj[rng.choice(keys)] = self.wild()
        elif rng.random() < 0.1:
            for key in keys:
                obj.setdefault(key, None)
        return obj

    def time_value(self, noise: float) -> Any:
        rng = self.rng

        def plausible() -> Any:
            if self.pool.times and rng.random() < 0.6:
                t = rng.choice(self.pool.times)
                return int(t) if rng.random() < 0.5 else t
            return rng.choice((0, 0.0, None, 1, time.time() + 3600))

        return self.maybe(plausible, noise)

    # --- whole frames -------------------------------------------------------------------

    def request(self, method: str | None = None, noise: float | None = None) -> Any:
        """A request as a JSON-able tree: close to valid when noise is low."""
        rng = self.rng
        if method is None:
            method = rng.choice(METHODS)
        if noise is None:
            noise = rng.choice((0.0, 0.0, 0.05, 0.15, 0.4, 1.0))
        listed = rng.random() < 0.5
        self.current = self.account()  # whose token, and whose messages to edit
        data: dict[str, Any] = {}
        users: list[Any] = []
        for need in NEEDS[method]:
            optional = need.endswith("?")
            need = need.rstrip("?")
            if optional and rng.random() < 0.5:
                continue
            if need == "signup":
                users.insert(0, self.login(noise, signup=True))
            elif need == "login":
                users.insert(0, self.login(noise, signup=False))
            elif need == "creds":
                if users:  # delete_user: the token rides on the same user object
                    for key, value in self.creds(noise).items():
                        users[0].setdefault(key, value)
                else:
                    users.append(self.creds(noise))
            elif need == "others":
                listed = listed or rng.random() < 0.5
                for _ in range(rng.choice((0, 1, 2, 3, 101))):
                    users.append({rng.choice(("uuid", "id")): self.user_id()})
            elif need == "flow":
                data[rng.choice(("flow", "flow", "chat"))] = self.flow_ref(noise)
            elif need == "new_flow":
                data["flow"] = self.new_flow(noise)
            elif need == "new_message":
                data["message"] = self.new_message(noise)
            elif need == "message":
                data["message"] = self.message_ref(noise)
            elif need == "time":
                data["time"] = self.time_value(noise)
        if users:
            data["user"] = users if listed else users[0]
        if listed:
            for key in ("flow", "chat", "message"):
                if isinstance(data.get(key), dict):
                    data[key] = [data[key]]
        if rng.random() < noise:
            for _ in range(rng.randint(1, 3)):
                data[rng.choice(DATA_KEYS)] = self.wild()
        frame: dict[str, Any] = {"type": method, "data": data}
        r = rng.random()
        if r < 0.3:
            frame["jsonapi"] = {"version": "1.0" if listed else 1.0}
        elif r < 0.4:
            frame["jsonapi"] = {"version": "1.0", "revision": "17"}
        elif r < 0.5:
            frame.update(jsonapi=None, meta=None, errors=None)
        elif r < 0.5 + noise * 0.3:
            version = rng.choice(("2.0", 2, "1", "1.0.0", "x", "", " 1.5 ", -1, 1e300, "9" * 30))
            frame["jsonapi"] = {"version": self.maybe(lambda: version, noise)}
        if rng.random() < noise:
            for _ in range(rng.randint(1, 3)):
                frame[rng.choice(ENVELOPE_KEYS)] = self.wild()
        return frame

    def random_tree(self) -> Any:
        """A frame of any shape, mostly still an object with a type."""
        rng = self.rng
        r = rng.random()
        if r < 0.7:
            return self.request(noise=1.0)
        if r < 0.9:
            return {
                key: self.wild() if rng.random() < 0.8 else rng.choice(METHODS)
                for key in rng.sample(ENVELOPE_KEYS, rng.randint(0, 5))
            }
        return self.wild()

    def write(self, tree: Any) -> str:
        rng = self.rng
        text = emit(tree, ascii_only=rng.random() < 0.2)
        if rng.random() < 0.05:
            text = rng.choice((" ", "\n", "\t", "\r\n")) + text + rng.choice(("", " ", "\n"))
        return text

    # --- mutations ----------------------------------------------------------------------

    def mutate_tree(self, tree: Any) -> Any:
        """Drop, swap, duplicate, wrap, unwrap, retype: one to three edits at random places."""
        rng = self.rng
        repeats: list[tuple[dict[str, Any], str]] = []
        for _ in range(rng.randint(1, 3)):
            containers = list(_containers(tree))
            if not containers:
                return self.wild()
            parent = rng.choice(containers)
            keys: list[Any] = list(parent) if isinstance(parent, dict) else list(range(len(parent)))
            if not keys:
                if isinstance(parent, dict):
                    parent[self.key()] = self.wild()
                else:
                    parent.append(self.wild())
                continue
            key = rng.choice(keys)
            value = parent[key]
            op = rng.randrange(9)
            if op == 0:
                del parent[key]
            elif op == 1:
                parent[key] = self.scalar()
            elif op == 2:
                parent[key] = self.wild()
            elif op == 3:
                parent[key] = [value]
            elif op == 4 and isinstance(value, list):
                parent[key] = value[0] if value else {}
            elif op == 5:
                parent[key] = None
            elif op == 6 and isinstance(parent, dict):
                parent[self.key()] = value  # the same value under another key
            elif op == 7:
                parent[key] = rng.choice((str(value), 0, "", [], {}, True, 1.5))
            elif isinstance(parent, dict) and isinstance(key, str):
                repeats.append((parent, key))
        for parent, key in repeats:  # the same key twice: msgspec takes the last one
            if key in parent and PAIRS not in parent:
                pairs = Pairs(parent.items())
                pairs.items.insert(rng.randrange(len(pairs.items) + 1), (key, self.wild()))
                parent.clear()
                parent[PAIRS] = pairs
        return _unpair(tree)

    def mutate_text(self, text: str) -> str | bytes:
        rng = self.rng
        op = rng.randrange(10)
        if op == 0:  # flip bits in the UTF-8 bytes; keep what still is text
            raw = bytearray(text.encode())
            for _ in range(rng.randint(1, 4)):
                if raw:
                    raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
            if rng.random() < 0.05:
                return bytes(raw)  # as a binary frame
            return raw.decode("utf-8", "replace")
        if op == 1:  # truncation
            return text[: rng.randrange(len(text) + 1)]
        if op == 2:  # insertion of a JSON token or a character
            at = rng.randrange(len(text) + 1)
            junk = rng.choice(('"', "{", "}", "[", "]", ",", ":", "null", "-", "0", "\\", "e"))
            return text[:at] + (junk if rng.random() < 0.7 else self.text(3)) + text[at:]
        if op == 3:  # deletion of a slice
            at = rng.randrange(len(text) + 1)
            return text[:at] + text[at + rng.randint(1, 8) :]
        if op == 4:  # a slice repeated
            at = rng.randrange(len(text) + 1)
            end = at + rng.randint(1, 20)
            return text[:end] + text[at:end] + text[end:]
        if op == 5:  # two frames spliced
            other = self.seed_text()
            return text[: rng.randrange(len(text) + 1)] + other[rng.randrange(len(other) + 1) :]
        if op == 6:  # a digit run replaced by another number
            at = rng.randrange(len(text) + 1)
            digits = next((i for i in range(at, len(text)) if text[i].isdigit()), None)
            if digits is None:
                return text
            end = digits
            while end < len(text) and text[end].isdigit():
                end += 1
            return text[:digits] + emit(self.number()) + text[end:]
        if op == 7:  # a quote or a brace less, or one more at the ends
            return rng.choice((text[1:], text[:-1], "{" + text, text + "}", text + text))
        if op == 8:  # one character replaced with odd unicode
            at = rng.randrange(len(text) + 1)
            return text[:at] + self.text(2) + text[at + 1 :]
        return text.replace(rng.choice(('"id"', '"uuid"', '"user"', '"flow"', ":")), ":", 1)

    # --- the inputs ---------------------------------------------------------------------

    def seed_text(self) -> str:
        """A valid frame: a real client's, or one with live tokens and ids."""
        rng = self.rng
        if self.pool.seeds and rng.random() < 0.5:
            return rng.choice(self.pool.seeds)
        if rng.random() < 0.4:
            return self.client_frame()
        return self.write(self.request(noise=0.0))

    def client_frame(self) -> str:
        """A real client's frame, with live values where its placeholders are (mostly)."""
        rng = self.rng
        frame = rng.choice(self.client_seeds)
        account = self.account()
        if account is None or rng.random() < 0.2:
            return frame
        flow = str(rng.choice(self.pool.flow_ids)) if self.pool.flow_ids else "1"
        values = {
            "L": account.login,
            "P": account.password,
            "A": account.token,
            "U": "U",
            "E": "e@example.org",
            "T": "T",
            "I": "I",
            "X": "X",
            "C": "C",
            "id_9": account.id,
            "id_2": flow,
            "9": str(account.id),
            "2": flow,
        }
        return fill(frame, **values)

    def dispatcher_input(self) -> str | bytes:
        rng = self.rng
        r = rng.random()
        if r < 0.35:  # valid, or nearly: gets all the way into the handlers
            return wire_text(self.write(self.request()))
        if r < 0.55:
            return wire_text(self.write(self.mutate_tree(self.parsed_seed())))
        if r < 0.72:
            return wire_text(self.mutate_text(self.seed_text()))
        if r < 0.92:
            return wire_text(self.write(self.random_tree()))
        return self.raw()

    def parsed_seed(self) -> Any:
        return json.loads(self.seed_text())

    def raw(self) -> str | bytes:
        rng = self.rng
        r = rng.random()
        n = rng.choice((0, 1, 2, 5, 30, 300))
        if r < 0.3:
            return rng.randbytes(n)
        if r < 0.6:
            return wire_text(self.text(n))
        soup = ('{"type":', '"data":', "{", "}", "[", "]", ",", ":", '"', "null", "1", "-", "e")
        return "".join(rng.choice(soup) for _ in range(n))


def _containers(tree: Any) -> Iterator[dict[str, Any] | list[Any]]:
    if isinstance(tree, dict | list):
        yield tree
        for value in tree.values() if isinstance(tree, dict) else tree:
            yield from _containers(value)


PAIRS: Final = "\0pairs"  # marks, in mutate_tree, an object that becomes a Pairs


def _unpair(tree: Any) -> Any:
    """Turn the marker mutate_tree leaves into a Pairs, which emit writes with the repeat."""
    if isinstance(tree, dict):
        if PAIRS in tree:
            return Pairs((k, _unpair(v)) for k, v in tree[PAIRS].items)
        return {k: _unpair(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_unpair(v) for v in tree]
    return tree


# Android 2021 (develop) and the Flutter client's other requests, from client-traffic.md.
ANDROID_DEVELOP: Final = (
    '{"type":"user_info","data":{"time":0,"user":[{"uuid":"9","auth_id":"A"},{"uuid":"9"}]}}',
    '{"type":"send_message","data":{"time":0,"flow":[{"uuid":"2"}],"message":[{"text":"X","time":0}],"user":[{"uuid":"9","auth_id":"A"}]}}',
    '{"type":"all_messages","data":{"time":0,"flow":[{"uuid":"2"}],"user":[{"uuid":"9","auth_id":"A"}]}}',
)
_FLUTTER_USER: Final = dict.fromkeys(
    ("uuid", "login", "username", "bio", "avatar", "password", "is_bot", "auth_id", "token_ttl")
) | {"email": None, "time_created": None}


def _flutter(method: str, **data: Any) -> str:
    """One of the Flutter client's requests: every key present, nulls included."""
    me = _FLUTTER_USER | {"uuid": "9", "auth_id": "A"}
    body = {"time": None, "user": [me], "flow": None, "message": None, "meta": None}
    body.update(data)
    frame = {
        "type": method,
        "data": body,
        "errors": None,
        "jsonapi": {"version": "1.0", "revision": "17"},
        "meta": None,
    }
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def client_traffic_frames() -> list[str]:
    """Every frame client-traffic.md shows, with its placeholders (L, P, A, 9, 2...)."""
    me = _FLUTTER_USER | {"uuid": "9", "auth_id": "A"}
    return [
        *ANDROID_MASTER,
        *ELECTRON,
        FLUTTER_REGISTER,
        *ANDROID_DEVELOP,
        _flutter("authentication", user=[_FLUTTER_USER | {"login": "L", "password": "P"}]),
        _flutter("get_update", time=0),
        _flutter(
            "send_message",
            time=0,
            flow=[{"uuid": "2"}],
            message=[{"client_id": "C", "text": "X"}],
        ),
        _flutter("all_messages", time=0, flow=[{"uuid": "2"}]),
        _flutter(
            "add_flow",
            flow=[{"type": "group", "title": "T", "info": "I", "owner": "9", "users": ["9"]}],
        ),
        _flutter("all_flow"),
        _flutter("user_info", user=[me, {"uuid": "9"}]),
        _flutter("delete_message", flow=[{"uuid": "2"}], message=[{"uuid": "2"}]),
        _flutter("edited_message", message=[{"uuid": "2", "text": "X"}]),
        _flutter("ping_pong"),
        _flutter(
            "delete_user", user=[{"login": "L", "password": "P", "uuid": "9", "auth_id": "A"}]
        ),
    ]


# --- the checks -------------------------------------------------------------------------------


@dataclass
class Tally:
    decoded: int = 0  # inputs to decode_request alone
    answered: int = 0  # inputs to respond
    codes: Counter[object] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)  # decoded requests, by type

    @property
    def inputs(self) -> int:
        return self.decoded + self.answered

    def __str__(self) -> str:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.codes.items()))
        return f"{self.decoded} decoded, {self.answered} answered; codes {codes}"


def decode_one(frame: str | bytes, limits: Limits, tally: Tally, seed: int) -> None:
    """The decoder answers with a Request or a FrameError carrying a 4xx, never anything else."""
    tally.decoded += 1
    try:
        request = decode_request(frame, limits)
    except FrameError as exc:
        error = exc.error
        if not (400 <= error.code < 500 or error.code == 505) or not error.detail:
            raise FuzzFailure(
                f"decoder error {error.code} {error.detail!r} (seed {seed}) on {_shown(frame)}"
            ) from None
        if not isinstance(exc.reply_type, str):
            raise FuzzFailure(f"reply type {exc.reply_type!r} (seed {seed})") from None
    except Exception as exc:
        raise FuzzFailure(
            f"decode_request raised {type(exc).__name__}: {exc} (seed {seed}) on {_shown(frame)}"
        ) from exc
    else:
        tally.requests[request.type] += 1


def check_reply(frame: str | bytes, reply: object, tally: Tally, pool: Pool, seed: int) -> None:
    """One JSON object with exactly the contract's five keys, never a 500, no secrets."""

    def fail(why: str) -> FuzzFailure:
        return FuzzFailure(f"{why} (seed {seed}) on {_shown(frame)}; reply {_shown(reply, 600)}")

    if not isinstance(reply, str):
        raise fail("the reply is not text")
    try:
        decoded = msgspec.json.decode(reply)
    except msgspec.DecodeError:
        raise fail("the reply is not JSON") from None
    if not isinstance(decoded, dict) or decoded.keys() != REPLY_KEYS:
        raise fail("the reply does not have exactly the five keys")
    errors = decoded["errors"]
    code = errors.get("code") if isinstance(errors, dict) else None
    tally.codes[code] += 1
    if code not in CODES or not isinstance(errors.get("detail"), str):
        raise fail(f"reply code {code}")
    if not isinstance(decoded["type"], str) or decoded["meta"] is not None:
        raise fail("bad reply type or meta")
    data = decoded["data"]
    if isinstance(data, dict):
        for item in _items(data.get("user")):
            if "password" in item or "password_hash" in item:
                raise fail("a reply shows a password")
            if "auth_id" in item and decoded["type"] not in TOKEN_ISSUERS:
                raise fail("a reply shows an auth_id it did not issue")
    if code in (200, 201, 206):
        pool.learn(decoded)
        if decoded["type"] == "delete_user":
            pool.forget_deleted(frame)


# --- running it -------------------------------------------------------------------------------


def fuzz_config(data_dir: Path, *, limited: bool = False) -> Config:
    """The test server: cheap hashing, no fsync, and a small reply cap so listings stay
    cheap as messages pile up (and the 206 paging path is fuzzed too)."""
    return Config(
        port=0,
        data_dir=data_dir,
        snapshot_interval=math.inf,
        fsync="off",
        abuse=AbuseLimits() if limited else None,
        argon2=CHEAP_ARGON2,
        hash_workers=2,
        limits=Limits(reply_cap=20),
    )


async def populate(ctx: Context, gen: Generator, accounts: int = 3) -> None:
    """Register users, then add flows, send, edit and list messages, log in again: live
    values to aim at, and valid frames carrying them to mutate."""
    pool = gen.pool
    for _ in range(accounts):
        gen.logins += 1
        login, password = f"live{gen.seed % 10_000}-{gen.logins}", f"pass-{gen.logins}"
        frame = emit(
            {"type": "register_user", "data": {"user": [{"login": login, "password": password}]}}
        )
        reply = json.loads(await respond(frame, ctx))
        if reply["errors"]["code"] != 201:  # e.g. 429 on a server with limits
            continue
        user = reply["data"]["user"][0]
        pool.learn(reply)
        _keep(pool.accounts, Account(int(user["id"]), login, password, user["auth_id"]), 8)
    for _ in range(accounts):
        for method in ("add_flow", "send_message", "send_message", "edited_message", "auth"):
            text = wire_text(gen.write(gen.request(method, 0.0)))
            reply = json.loads(await respond(text, ctx))
            if reply["errors"]["code"] in (200, 201, 206):
                pool.learn(reply)
                _keep(pool.seeds, text, KEEP)
    for method in METHODS:  # a valid frame of every method, to mutate
        if method != "delete_user":
            _keep(pool.seeds, wire_text(gen.write(gen.request(method, 0.0))), KEEP)


async def fuzz_dispatcher(
    ctx: Context, gen: Generator, inputs: int, tally: Tally, *, refresh: int = 2000
) -> None:
    """``inputs`` frames through ``respond``, with fresh live values every ``refresh``."""
    for index in range(inputs):
        if index % refresh == 0 or len(gen.pool.accounts) < 3:
            await populate(ctx, gen, accounts=2)
        frame = gen.dispatcher_input()
        tally.answered += 1
        try:
            reply = await respond(frame, ctx)
        except Exception as exc:
            raise FuzzFailure(
                f"respond raised {type(exc).__name__}: {exc} (seed {gen.seed}) on {_shown(frame)}"
            ) from exc
        check_reply(frame, reply, tally, gen.pool, gen.seed)


def fuzz_decoder(limits: Limits, gen: Generator, inputs: int, tally: Tally) -> None:
    for _ in range(inputs):
        decode_one(gen.dispatcher_input(), limits, tally, gen.seed)


def inputs_wanted() -> int:
    return int(os.environ.get("MORELIA_FUZZ_INPUTS", DEFAULT_INPUTS))


def seed_wanted() -> int:
    seed = os.environ.get("MORELIA_FUZZ_SEED")
    return int(seed) if seed else random.SystemRandom().randrange(2**32)


def split(inputs: int) -> tuple[int, int, int]:
    """(decoder only, dispatcher on the open server, dispatcher on the limited server)."""
    dispatched = math.ceil(inputs * DISPATCHER_SHARE)
    limited = math.ceil(dispatched * LIMITED_SHARE)
    return inputs - dispatched, dispatched - limited, limited


async def fuzz_everything(
    open_server: Running, limited_server: Running, inputs: int, seed: int
) -> Tally:
    """The whole CI run: decoder alone, then the dispatcher on both servers."""
    tally = Tally()
    decoder_inputs, open_inputs, limited_inputs = split(inputs)
    gen = Generator(seed, Pool())
    await populate(open_server.context, gen)
    fuzz_decoder(open_server.context.limits, gen, decoder_inputs, tally)
    await fuzz_dispatcher(open_server.context, gen, open_inputs, tally)
    limited = Generator(seed + 1, Pool())
    await fuzz_dispatcher(limited_server.context, limited, limited_inputs, tally)
    return tally


class BugLog(logging.Handler):
    """Collects every error the server logs (a 500 logs "bug while answering")."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def bug_log() -> Iterator[BugLog]:
    handler = BugLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


async def _main(inputs: int, seed: int) -> Tally:
    with tempfile.TemporaryDirectory(prefix="morelia-fuzz-") as directory:
        async with trio.open_nursery() as nursery:
            open_server: Running = await nursery.start(serve, fuzz_config(Path(directory, "a")))
            limited_server: Running = await nursery.start(
                serve, fuzz_config(Path(directory, "b"), limited=True)
            )
            tally = await fuzz_everything(open_server, limited_server, inputs, seed)
            nursery.cancel_scope.cancel()
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fuzz", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--inputs", type=int, default=inputs_wanted(), help="(%(default)s)")
    parser.add_argument("--seed", type=int, default=None, help="(random)")
    args = parser.parse_args(argv)
    seed = seed_wanted() if args.seed is None else args.seed
    print(f"fuzzing with {args.inputs} inputs, seed {seed}", file=sys.stderr)
    logging.getLogger("morelia_trio").setLevel(logging.ERROR)
    started = time.perf_counter()
    failures: list[BaseException] = []
    with bug_log() as bugs:
        try:
            tally = trio.run(_main, args.inputs, seed)
        except* FuzzFailure as group:
            failures += group.exceptions
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    if failures:
        return 1
    print(f"{tally} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if bugs.records:
        for record in bugs.records[:10]:
            print(f"LOGGED: {record.getMessage()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fuzzing: the frame decoder and the dispatcher get random, mutated and raw frames.

At least 100,000 inputs per run (``MORELIA_FUZZ_INPUTS`` for more, ``MORELIA_FUZZ_SEED`` to
replay a failure): none may raise, none may earn a 500 or an error in the log, every reply is
one JSON object with exactly the contract's five keys. The generators are in ``tests/fuzz.py``
(also ``python -m tests.fuzz --inputs N`` for long runs).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed, open_websocket_url

from morelia_trio import Running, serve
from morelia_trio.connection import respond

from . import fuzz
from .fuzz import Generator, Pool, Raw, Tally, check_reply, decode_one, emit, fuzz_config, populate

MIN_INPUTS = 100_000  # the hardening issue's floor for one CI run
EXAMPLES = int(os.environ.get("MORELIA_FUZZ_EXAMPLES", 150))  # hypothesis examples
WEBSOCKET_INPUTS = 2_000


@pytest.fixture
async def open_server(nursery: trio.Nursery, tmp_path: Path) -> Running:
    running: Running = await nursery.start(serve, fuzz_config(tmp_path / "open"))
    return running


@pytest.fixture
async def limited_server(nursery: trio.Nursery, tmp_path: Path) -> Running:
    """The same, with the default abuse limits on: the 429 paths get fuzzed too."""
    running: Running = await nursery.start(serve, fuzz_config(tmp_path / "limited", limited=True))
    return running


def bugs_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Errors the server logged: a 500 logs "bug while answering" with its traceback."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture
def seed() -> Iterator[int]:
    chosen = fuzz.seed_wanted()
    yield chosen
    print(f"fuzz seed {chosen} (MORELIA_FUZZ_SEED={chosen} replays it)")


async def test_random_and_mutated_frames(
    open_server: Running,
    limited_server: Running,
    seed: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The CI run: most inputs to the decoder alone, 30% through the whole dispatcher."""
    inputs = fuzz.inputs_wanted()
    assert fuzz.DEFAULT_INPUTS >= MIN_INPUTS
    with trio.fail_after(max(300, inputs / 500)):
        tally = await fuzz.fuzz_everything(open_server, limited_server, inputs, seed)
    print(tally)
    assert tally.inputs >= inputs
    assert tally.answered >= inputs * fuzz.DISPATCHER_SHARE
    assert not bugs_logged(caplog)
    # Every method got past the decoder, and the handlers both carried out and refused requests.
    assert tally.codes[200] and tally.codes[201] and tally.codes[401] and tally.codes[404]
    assert set(tally.requests) == set(fuzz.METHODS)


# --- hypothesis: structured frames, shrunk to the smallest on failure -------------------------


def frame_strategy(pool: Pool) -> st.SearchStrategy[Any]:
    """Requests of every type in both dialects, every field of any type or a live value."""
    ids = sorted({a.id for a in pool.accounts} | set(pool.flow_ids) | set(pool.message_ids) | {1})
    tokens = sorted({t for ts in pool.tokens.values() for t in ts}) or ["x"]
    logins = [a.login for a in pool.accounts] or ["x"]
    passwords = [a.password for a in pool.accounts] or ["x"]
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False)
        | st.text(max_size=12)
        | st.sampled_from(fuzz.ODD_STRINGS)
        | st.sampled_from(fuzz.ODD_NUMBERS).map(Raw)
    )
    keys = st.sampled_from(fuzz.ALL_KEYS) | st.text(max_size=6)
    anything = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=8,
    )

    def odd(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        """Mostly a value of the right type, sometimes anything at all."""
        return st.one_of(good, good, good, anything)

    def obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({}, optional=fields)

    an_id = st.sampled_from(ids) | st.sampled_from(ids).map(str) | st.sampled_from([0, "0", ""])
    id_value = odd(an_id)
    text = st.text(max_size=20)
    attachment = odd(text | st.lists(st.integers(-1, 256), max_size=6))
    user = obj(
        id=id_value,
        uuid=id_value,
        auth_id=odd(st.sampled_from(tokens) | st.sampled_from(tokens).map(str.encode).map(list)),
        login=odd(st.sampled_from(logins) | st.text(max_size=70)),
        password=odd(st.sampled_from(passwords) | text),
        username=odd(st.none() | st.text(max_size=130)),
        email=odd(st.none() | text),
        bio=anything,
        is_bot=anything,
    )
    pairs = [(uid, t) for uid, ts in pool.tokens.items() for t in ts] or [(1, "x")]
    # a live token with its own user id (as a number or a string), then any other fields
    live_user = st.tuples(st.sampled_from(pairs), st.booleans(), user).map(
        lambda t: {**t[2], "uuid": str(t[0][0]) if t[1] else t[0][0], "auth_id": t[0][1]}
    )
    flow = obj(
        id=id_value,
        uuid=id_value,
        type=odd(st.sampled_from(["chat", "group", "channel"])),
        title=odd(st.text(max_size=130)),
        info=odd(st.none() | text),
        users=odd(st.lists(an_id | user, max_size=3)),
        owner=id_value,
    )
    message = obj(
        id=id_value,
        uuid=id_value,
        text=odd(st.text()),
        file=odd(obj(picture=attachment, video=attachment, audio=attachment, document=attachment)),
        file_picture=attachment,
        file_document=attachment,
        emoji=attachment,
        reply_to=id_value,
        client_id=id_value,
        time=anything,
    )

    def item(one: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        """One object (the document dialect), a list of them (the list dialect), anything."""
        return st.one_of(one, st.lists(one, min_size=1, max_size=3), anything)

    data = odd(
        obj(
            time=odd(st.floats() | st.integers()),
            user=item(st.one_of(live_user, live_user, user)),
            flow=item(flow),
            chat=item(flow),
            message=item(message),
            meta=anything,
        )
    )
    versions = st.sampled_from([1.0, "1.0", "1", 2, "2.0", "1.0.0", " 1.5", "x", -1, 1e300])
    jsonapi = odd(obj(version=odd(versions), revision=anything))
    request = st.fixed_dictionaries(
        {"type": odd(st.sampled_from(fuzz.METHODS)), "data": data},
        optional={"jsonapi": jsonapi, "meta": anything, "errors": anything},
    )
    return odd(request)


async def test_hypothesis_frames(
    open_server: Running, caplog: pytest.LogCaptureFixture, seed: int
) -> None:
    """Hypothesis builds the frames (and, on failure, shrinks them); each is sent as it is,
    mutated as a tree and mutated as text, to the decoder alone and to the dispatcher."""
    ctx = open_server.context
    gen = Generator(seed, Pool())
    await populate(ctx, gen, accounts=4)
    tally = Tally()
    token = trio.lowlevel.current_trio_token()

    async def answer(frames: list[str | bytes]) -> None:
        for frame in frames:
            tally.answered += 1
            check_reply(frame, await respond(frame, ctx), tally, gen.pool, seed)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        trees=st.lists(frame_strategy(gen.pool), min_size=8, max_size=30),
        mutation=st.integers(0, 2**32),
    )
    def example(trees: list[Any], mutation: int) -> None:
        gen.rng = rnd = random.Random(mutation)
        frames: list[str | bytes] = []
        for tree in trees:
            text = emit(tree, ascii_only=rnd.random() < 0.2)
            frames += [text, fuzz.wire_text(gen.mutate_text(text))]
            frames.append(fuzz.wire_text(gen.write(gen.mutate_tree(json.loads(text)))))
        for frame in frames:
            decode_one(frame, ctx.limits, tally, seed)
        trio.from_thread.run(answer, frames, trio_token=token)

    with trio.fail_after(300):
        await trio.to_thread.run_sync(example)
    print(tally)
    assert tally.inputs >= EXAMPLES * 6
    assert not bugs_logged(caplog)


# --- the same through a real WebSocket: serve_connection must survive every frame -------------


async def test_frames_over_a_websocket(
    open_server: Running, caplog: pytest.LogCaptureFixture, seed: int
) -> None:
    """Every frame gets its reply on the same connection, except one over the frame limit
    (mutations double a frame now and then), which gets close 1009, as the contract says."""
    gen = Generator(seed, Pool())
    await populate(open_server.context, gen)
    limit = open_server.context.limits.max_frame_bytes
    tally = Tally()
    too_big = 0
    with trio.fail_after(120):
        sent = 0
        while sent < WEBSOCKET_INPUTS:
            # Replies may be large (a listing of many big messages): the client's own 1 MiB
            # default closed the connection now and then.
            async with open_websocket_url(open_server.url, max_message_size=64 * 2**20) as ws:
                while sent < WEBSOCKET_INPUTS:
                    frame = gen.dispatcher_input()
                    sent += 1
                    await ws.send_message(frame)
                    if _utf8_size(frame) > limit:
                        with pytest.raises(ConnectionClosed) as closed:
                            await ws.get_message()
                        reason = closed.value.reason
                        assert reason is not None and reason.code == 1009, reason
                        too_big += 1
                        break
                    tally.answered += 1
                    reply = await ws.get_message()
                    while _pushed(reply):  # the connection subscribed: its updates come too
                        reply = await ws.get_message()
                    check_reply(frame, reply, tally, gen.pool, seed)
    assert tally.answered + too_big == WEBSOCKET_INPUTS
    assert not bugs_logged(caplog)


def _pushed(frame: str | bytes) -> bool:
    """A live update or a resync (a fuzzed subscribe may succeed), never any reply: a request
    of type "update" gets 400, and pushed frames are well-formed with code 200."""
    decoded = json.loads(frame)
    if decoded.get("type") not in ("update", "resync"):
        return False
    assert decoded.keys() == {"type", "data", "errors", "jsonapi", "meta"}, decoded
    return bool(decoded["errors"]["code"] == 200)


def _utf8_size(frame: str | bytes) -> int:
    return len(frame if isinstance(frame, bytes) else frame.encode("utf-8", "surrogatepass"))


# --- what the fuzzer found ---------------------------------------------------------------------


def nested(depth: int) -> str:
    return '{"type":"ping_pong","meta":' + "[" * depth + "]" * depth + "}"


async def test_deeply_nested_frame_is_a_400(
    open_server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    for frame in (nested(10_000), '{"type":' + "[" * 10_000 + "]" * 10_000 + "}"):
        reply = json.loads(await respond(frame, open_server.context))
        assert reply["errors"]["code"] in (400, 415), reply["errors"]
    assert not bugs_logged(caplog)


async def test_lone_surrogate_in_a_str_frame_is_a_400(
    open_server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    reply = json.loads(await respond('{"type":"ping_pong","meta":"\ud800"}', open_server.context))
    assert reply["errors"]["code"] == 400, reply["errors"]
    assert not bugs_logged(caplog)


def test_the_generators_write_valid_json_and_wire_text() -> None:
    """The fuzzer's own plumbing: valid frames are valid, mutations stay sendable text."""
    gen = Generator(7, Pool())
    for _ in range(2000):
        text = gen.seed_text()
        json.loads(text)
        frame = gen.dispatcher_input()
        if isinstance(frame, str):
            frame.encode()  # no lone surrogate: a WebSocket text frame could carry it
    assert math.isinf(json.loads(emit(Raw("1e999"))))
    assert emit(fuzz.Pairs([("a", 1), ("a", 2)])) == '{"a":1,"a":2}'
    assert emit("\ud800") == '"\\ud800"'

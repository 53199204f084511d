"""Nothing a client sent comes back in a detail, or reaches a log line raw or at length."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from morelia_trio.logtext import SHOWN_CHARS, for_log
from tests.wire import Client

from .helpers import Frame, exchange
from .test_errors import DIALECTS, DOC, LIST, me, ref, req

pytestmark = pytest.mark.spread

# A value nobody else writes: a login or password a person typed (with a quote, which one
# real client cannot read inside a detail), and an id no request in these tests names.
MARK = "Qz7'mark"
MARK_ID = 987654321


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def failing_frames(ann: Client, dialect: str) -> list[Frame]:
    """One frame per way each request type can fail, a marked value in every field it has."""
    user = me(ann, dialect)
    flow, message = ref(MARK_ID, dialect), ref(MARK_ID, dialect)
    marked_user = {"uuid": str(MARK_ID), "id": MARK_ID, "auth_id": MARK}
    general = ref(1, dialect)
    frames: list[Frame] = [
        req(dialect, "register_user", user={"login": MARK, "password": MARK, "username": MARK}),
        req(dialect, "register_user", user={"login": "fresh", "password": "pw", "username": 7}),
        req(dialect, "register_user", user={"login": "fresh", "password": "pw", "email": MARK}),
        req(dialect, "register_user", user={"login": MARK * 20, "password": MARK}),  # 413
        req(dialect, "register_user", user={"login": MARK + "\u0430", "password": MARK}),
        req(dialect, "register_user", user={"login": MARK_ID, "password": MARK}),  # 415
        req(dialect, "auth", user={"login": MARK + "x", "password": MARK}),  # 404
        req(dialect, "authentication", user={"login": MARK, "password": MARK + "x"}),  # 401
        req(dialect, "delete_user", user={"login": MARK + "x", "password": MARK}),
        req(dialect, "delete_user", user={"login": MARK, "password": MARK + "x"}),
        req(dialect, "send_message", user=user, flow=flow, message={"text": MARK}),
        req(dialect, "send_message", user=marked_user, flow=general, message={"text": MARK}),
        req(
            dialect,
            "send_message",
            user=user,
            flow=general,
            message={
                "text": MARK,
                "reply_to": MARK_ID,
                "client_id": MARK,
                "file_picture": MARK,
                "emoji": MARK,
            },
        ),
        req(dialect, "send_message", user=user, flow={"uuid": MARK}, message={"text": MARK}),
        req(dialect, "all_messages", user=user, flow=flow, time=0),
        req(dialect, "get_update", user=user, flow=flow, time=0),
        req(dialect, "all_flow", user=marked_user),
        req(
            dialect,
            "add_flow",
            user=user,
            flow={"type": "group", "title": MARK, "users": [MARK_ID]},
        ),
        req(dialect, "add_flow", user=user, flow={"type": MARK, "title": MARK, "info": MARK}),
        req(dialect, "edited_message", user=user, message={**message, "text": MARK}),
        req(dialect, "edited_message", user=user, message={**message, "text": MARK * 2000}),
        req(dialect, "delete_message", user=user, message=message),
        req(dialect, "delete_message", user=user, message={"uuid": MARK}),
        req(dialect, "ping_pong", user=marked_user),
        {**req(dialect, "ping_pong", user=user), "jsonapi": {"version": f"{MARK_ID}.0"}},
    ]
    if dialect == LIST:
        frames.append(req(LIST, "user_info", user=[user, {"uuid": str(MARK_ID)}]))
    return frames


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_no_detail_or_log_line_holds_a_value_the_client_sent(
    client: Client, caplog: pytest.LogCaptureFixture, dialect: str
) -> None:
    await client.register(MARK, MARK)
    caplog.set_level(logging.DEBUG)
    codes = set()
    for frame in failing_frames(client, dialect):
        _, reply = await exchange(client, frame)
        errors = reply["errors"]
        codes.add(errors["code"])
        assert errors["code"] >= 400, (frame, reply)
        for value in ("Qz7", str(MARK_ID)):
            assert value not in errors["detail"], (frame, errors)
    assert codes >= {401, 404, 409, 413, 415, 505}
    lines = logged(caplog)
    assert len(lines) >= 20  # one line per error reply
    for line in lines:
        assert "Qz7" not in line and str(MARK_ID) not in line, line


async def test_an_unknown_type_is_named_as_a_field(client: Client) -> None:
    _, reply = await exchange(client, req(DOC, "Qz7-no-such-type"))
    assert reply["type"] == "Qz7-no-such-type"  # the contract: the reply echoes the type
    assert reply["errors"]["code"] == 400
    assert "Qz7" not in reply["errors"]["detail"] and "type" in reply["errors"]["detail"]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_newline_in_the_type_forges_no_log_line(
    client: Client, caplog: pytest.LogCaptureFixture, dialect: str
) -> None:
    caplog.set_level(logging.INFO, "morelia_trio")
    forged = "x\nINFO morelia_trio.connection: 1.2.3.4:5 closed\r\x1b[2K\u2028"
    for frame in (
        req(dialect, forged),
        req(dialect, "ping_pong", user={"uuid": "x"}) | {"type": forged},
    ):
        _, reply = await exchange(client, frame)
        assert reply["type"] == forged and reply["errors"]["code"] == 400
    lines = [line for line in logged(caplog) if "INFO morelia" in line]
    assert len(lines) == 2
    for line in lines:
        assert not any(char in line for char in "\n\r\x1b\u2028"), line
        assert "x\\nINFO" in line


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("known", [False, True])
async def test_a_type_too_long_to_be_one_is_not_echoed(
    client: Client, caplog: pytest.LogCaptureFixture, dialect: str, known: bool
) -> None:
    caplog.set_level(logging.INFO, "morelia_trio")
    huge = ("ping_pong" if known else "") + "y" * 100_000
    frame: dict[str, Any] = req(dialect, "ping_pong", user={"uuid": "1"}) | {"type": huge}
    raw, reply = await exchange(client, frame)
    assert reply["type"] == "errors" and reply["errors"]["code"] == 400
    assert len(raw) < 1000
    assert sum(len(line) for line in logged(caplog)) < 1000
    # 64 characters still are a type, echoed as the contract says
    _, reply = await exchange(client, req(dialect, "z" * 64))
    assert reply["type"] == "z" * 64 and reply["errors"]["code"] == 400
    _, reply = await exchange(client, req(dialect, "z" * 65))
    assert reply["type"] == "errors" and reply["errors"]["code"] == 400


def test_for_log_escapes_what_does_not_print_and_cuts_the_rest() -> None:
    assert for_log("ping_pong") == "ping_pong"
    assert for_log("a\nb\r\x1b[2K\\n\u2028\u202e\U000e0001é") == (
        "a\\nb\\r\\x1b[2K\\\\n\\u2028\\u202e\\U000e0001é"
    )
    assert for_log("y" * 1_000_000) == "y" * SHOWN_CHARS + "... (1000000 characters)"
    assert for_log("\n" * 100, 3) == "\\n\\n\\n... (100 characters)"

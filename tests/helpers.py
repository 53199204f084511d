"""Checks every reply must pass, in the shape each kind of client insists on."""

from __future__ import annotations

import json
from typing import Any

from tests.wire import Client

Frame = dict[str, Any]
REPLY_KEYS = {"type", "data", "errors", "jsonapi", "meta"}


async def exchange(client: Client, frame: str | bytes | Frame) -> tuple[str, Frame]:
    """Send one frame; return the reply's raw text and the reply decoded."""
    if isinstance(frame, dict):
        frame = json.dumps(frame, ensure_ascii=False)
    raw = await client.exchange(frame)
    assert isinstance(raw, str), "replies are always text frames"
    return raw, json.loads(raw)


def check_common(reply: Frame, type_: str, code: int) -> None:
    assert set(reply) == REPLY_KEYS
    assert reply["type"] == type_
    assert reply["meta"] is None
    errors = reply["errors"]
    assert errors["code"] == code, errors
    assert isinstance(errors["status"], str)
    assert isinstance(errors["detail"], str) and errors["detail"]


def check_list_reply(reply: Frame, type_: str, code: int) -> Frame:
    """The list dialect as Android, Electron, Flutter and Qt parse it."""
    check_common(reply, type_, code)
    assert set(reply["errors"]) == {"code", "status", "time", "detail"}
    assert type(reply["errors"]["time"]) is int
    assert reply["jsonapi"] == {"version": "1.0"}
    data = reply["data"]
    assert isinstance(data, dict)
    assert data["meta"] is None
    assert type(data["time"]) is int
    for key in ("user", "flow", "message"):
        assert isinstance(data[key], list), f"data.{key} must be a list, never null"
    for item in data["user"] + data["flow"] + data["message"]:
        assert isinstance(item["uuid"], str) and item["uuid"].isdigit()
        assert item["id"] == item["uuid"]
        assert "password" not in item and "password_hash" not in item
    for flow in data["flow"]:
        assert type(flow["time"]) is int
        assert all(isinstance(u, str) for u in flow["users"])
    for message in data["message"]:
        assert type(message["time"]) is int
        for key in ("from_user", "from_user_uuid", "from_flow", "from_flow_id"):
            if key in message:
                assert isinstance(message[key], str) and message[key].isdigit()
    return data


def check_doc_reply(reply: Frame, type_: str, code: int) -> Frame | None:
    """The document dialect: integer ids, float times, errors.id, jsonapi 1.0 as a number."""
    check_common(reply, type_, code)
    errors = reply["errors"]
    assert set(errors) == {"id", "time", "status", "code", "detail"}
    assert type(errors["id"]) is int
    assert type(errors["time"]) is float
    assert reply["jsonapi"] == {"version": 1.0}
    assert type(reply["jsonapi"]["version"]) is float
    data: Frame | None = reply["data"]
    if data is not None:
        assert data["meta"] is None
        assert type(data["time"]) is float
    return data


def doc(type_: str, data: Frame | None = None, **extra: Any) -> Frame:
    """A request in the document dialect."""
    return {"type": type_, "data": data, "jsonapi": {"version": 1.0}, "meta": None, **extra}


def creds(client: Client) -> Frame:
    """A document-dialect user object carrying the client's token."""
    assert client.user_id is not None
    return {"id": int(client.user_id), "auth_id": client.token}

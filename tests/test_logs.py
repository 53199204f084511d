"""--log-format json: the real CLI's stderr, one JSON object a line, tagged by connection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.test_cli import without_settings
from tests.wire import open_client

Line = dict[str, Any]


def start(data_dir: Path, *options: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "morelia_trio", "serve", "--port", "0"]
    return subprocess.Popen(
        [*command, "--data-dir", str(data_dir), "--snapshot-interval", "inf", *options],
        stderr=subprocess.PIPE,
        text=True,
        env=without_settings(os.environ),
    )


def serve(data_dir: Path, *options: str) -> tuple[subprocess.Popen[str], str, list[Line]]:
    """A server process logging JSON; its URL, and the lines read until it said it."""
    process = start(data_dir, *options)
    assert process.stderr is not None
    lines = []
    for text in process.stderr:
        lines.append(json.loads(text))
        if lines[-1]["message"].startswith("Serving MoreliaTalk on "):
            return process, lines[-1]["message"].split(" on ")[-1], lines
    process.kill()
    raise AssertionError(f"the server never said where it serves: {lines}")


def stop(process: subprocess.Popen[str]) -> list[Line]:
    """SIGTERM it; every further line of stderr, each parsed as JSON."""
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=20)
    assert process.returncode == 0, rest
    return [json.loads(text) for text in rest.splitlines()]


async def converse(url: str) -> None:
    with trio.fail_after(20):
        async with open_client(url) as client:
            await client.register("logged", "logged-password")
            reply = await client.request('{"type": "forged\\n2026 INFO line", "data": {}}')
            assert reply["errors"]["code"] == 400
            reply = await client.request('{"type": "ping_pong"}')
            assert reply["errors"]["code"] == 401


def by_peer(lines: list[Line]) -> dict[str, list[Line]]:
    peers: dict[str, list[Line]] = {}
    for line in lines:
        if "peer" in line:
            peers.setdefault(line["peer"], []).append(line)
    return peers


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_json_logs_are_one_object_a_line_tagged_with_peer_and_request(
    tmp_path: Path, level: str
) -> None:
    process, url, lines = serve(tmp_path / "data", "--log-format", "json", "--log-level", level)
    try:
        trio.run(converse, url)
        with pytest.raises(urllib.error.HTTPError) as missing:  # logged: a 404 is an error
            urllib.request.urlopen(url.replace("ws://", "http://")[:-2] + "nowhere", timeout=10)
        assert missing.value.code == 404
        missing.value.close()
    finally:
        lines += stop(process)
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert line["level"] in {"DEBUG", "INFO", "WARNING", "ERROR"}
    if level == "INFO":
        assert "DEBUG" not in {line["level"] for line in lines}
    [websocket, http] = by_peer(lines).values()
    # Every line on the connection's behalf, trio-websocket's own included, names it.
    peer = next(line for line in websocket if line["logger"] == "morelia_trio.connection")
    assert {line["peer"] for line in websocket} == {peer["message"].split(": ")[0]}
    errors = [
        line for line in websocket if line["logger"] == peer["logger"] and "request_id" in line
    ]
    assert [line["message"].split(": ", 1)[1] for line in errors] == [
        "forged\\n2026 INFO line 400 The field type names no request this server knows.",
        "ping_pong 401 This request needs your user id and auth_id.",
    ]
    assert errors[0]["request_id"] < errors[1]["request_id"]
    assert http[0]["message"].endswith("HTTP GET /nowhere 404")
    assert "request_id" not in http[0]
    # Opening and closing a connection: DEBUG, never INFO.
    opened = [line for line in websocket if line["message"].endswith("connection opened")]
    closed = [line for line in websocket if "connection closed" in line["message"]]
    if level == "DEBUG":
        assert [line["level"] for line in opened + closed] == ["DEBUG", "DEBUG"]
        assert "request_id" not in closed[0]
    else:
        assert opened == closed == []


def test_text_stays_the_default(tmp_path: Path) -> None:
    process = start(tmp_path / "data")
    assert process.stderr is not None
    first = process.stderr.readline()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=20)
    assert " INFO morelia_trio.persistence.local: Loaded " in first
    assert not first.startswith("{")

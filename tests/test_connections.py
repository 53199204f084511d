"""Connections under attack: slowloris, silent peers, idlers, crowds and slow readers."""

from __future__ import annotations

import base64
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected

from morelia_trio import Running, serve
from morelia_trio.config import AbuseLimits, Config, Timeouts
from tests.wire import open_client

PING = '{"type": "ping_pong"}'


async def start(
    nursery: trio.Nursery, config: Config, abuse: AbuseLimits | None = None, **timeouts: Any
) -> Running:
    changed = msgspec.structs.replace(
        config, abuse=abuse, timeouts=msgspec.structs.replace(Timeouts(), **timeouts)
    )
    running: Running = await nursery.start(serve, changed)
    return running


async def still_served(running: Running) -> None:
    async with open_client(running.url) as client:
        assert (await client.request(PING))["errors"]["code"] == 401


async def closed_by_server(stream: trio.SocketStream) -> None:
    """Read (and drop) whatever comes until the server closes the socket."""
    try:
        while await stream.receive_some(65536):
            pass
    except trio.BrokenResourceError:  # reset instead of closed: gone all the same
        pass


def upgrade_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


@asynccontextmanager
async def raw_websocket(running: Running) -> AsyncIterator[trio.SocketStream]:
    """A WebSocket opened by hand, that then does only what the test makes it do."""
    stream = await trio.open_tcp_stream(running.host, running.port)
    async with stream:
        await stream.send_all(upgrade_request(running.port))
        response = b""
        while b"\r\n\r\n" not in response:
            response += await stream.receive_some(4096)
        assert response.startswith(b"HTTP/1.1 101"), response
        yield stream


def masked_text_frame(text: str) -> bytes:
    """One client-to-server text frame (clients must mask; a zero mask keeps it simple)."""
    payload = text.encode()
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + bytes(4) + payload


# --- the opening handshake -------------------------------------------------------------------


async def test_500_slowloris_sockets_are_gone_within_the_handshake_timeout(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    running = await start(nursery, morelia_config, handshake=1.0)
    sockets: list[trio.SocketStream] = []
    for n in range(500):
        stream = await trio.open_tcp_stream(running.host, running.port)
        if n % 2:  # half send part of a request, half send nothing at all
            await stream.send_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        sockets.append(stream)
    started = trio.current_time()
    await still_served(running)  # while they hang on, others are served
    with trio.fail_after(3.0):  # the 1 s timeout, with room for a loaded machine
        async with trio.open_nursery() as waiting:
            for stream in sockets:
                waiting.start_soon(closed_by_server, stream)
    assert trio.current_time() - started < 3.0
    for stream in sockets:
        await stream.aclose()
    await still_served(running)


# --- silent peers and idlers ----------------------------------------------------------------


async def test_a_peer_that_never_answers_pings_is_closed(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    running = await start(nursery, morelia_config, ping_interval=0.2, pong=0.3, close=0.3)
    async with raw_websocket(running) as silent:
        started = trio.current_time()
        received = b""
        with trio.fail_after(3):
            try:
                while chunk := await silent.receive_some(4096):
                    received += chunk
            except trio.BrokenResourceError:
                pass
        assert trio.current_time() - started >= 0.5
        assert received[:1] == b"\x89"  # a ping came first ...
        close = received[received.index(b"\x88") :]
        assert int.from_bytes(close[2:4], "big") == 1001  # ... then a close: going away


async def test_a_peer_that_answers_pings_stays(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    running = await start(nursery, morelia_config, ping_interval=0.1, pong=0.2)
    async with open_client(running.url) as client:
        await trio.sleep(1.0)  # ten pings, each answered by trio-websocket's reader
        assert (await client.request(PING))["errors"]["code"] == 401


async def test_an_idle_connection_is_closed(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    running = await start(nursery, morelia_config, ping_interval=0.1, idle=0.5)
    async with open_client(running.url) as client:
        await client.request(PING)
        started = trio.current_time()
        with pytest.raises(ConnectionClosed) as closed:
            await client.ws.get_message()
        assert trio.current_time() - started >= 0.45
        assert closed.value.reason is not None and closed.value.reason.code == 1001


async def test_frames_keep_a_connection_from_being_idle(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    running = await start(nursery, morelia_config, ping_interval=0.1, idle=0.5)
    async with open_client(running.url) as client:
        for _ in range(10):
            await trio.sleep(0.2)
            assert (await client.request(PING))["errors"]["code"] == 401


# --- crowds ----------------------------------------------------------------------------------


async def test_connections_per_address_are_capped(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    running = await start(nursery, morelia_config, AbuseLimits(connections_per_address=3))
    async with open_client(running.url), open_client(running.url), open_client(running.url):
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_client(running.url):
                pass
        assert rejected.value.status_code == 429
    await still_served(running)  # the count went down as they closed


async def test_all_connections_are_capped(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    running = await start(nursery, morelia_config, AbuseLimits(max_connections=2))
    async with open_client(running.url), open_client(running.url):
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_client(running.url):
                pass
        assert rejected.value.status_code == 503
    await still_served(running)


# --- slow readers -----------------------------------------------------------------------------


async def test_a_client_that_stops_reading_is_disconnected(
    deadline: None, nursery: trio.Nursery, morelia_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "morelia_trio")  # open and close: DEBUG
    running = await start(nursery, morelia_config, send=0.5)
    async with open_client(running.url) as writer:
        await writer.register("ann", "ann-password")
        general = (await writer.flows())[0]["uuid"]
        for n in range(50):
            await writer.send(general, f"{n:02} " + "x" * 9_000)
        history = msgspec.json.encode(
            {
                "type": "all_messages",
                "data": {
                    "user": [{"uuid": writer.user_id, "auth_id": writer.token}],
                    "flow": [{"uuid": general}],
                    "time": 0,
                },
            }
        ).decode()
    assert len(history) < 126 * 2  # fits the hand-made frame below (126: a 16-bit length)
    async with raw_websocket(running) as reader:
        reader.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        payload = history.encode()
        frame = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + bytes(4) + payload
        with trio.fail_after(10):
            # Ask for ~450 KB replies, read nothing: the server's socket buffer fills up.
            try:
                for _ in range(100):
                    await reader.send_all(frame)
                    await trio.sleep(0.02)
            except trio.BrokenResourceError:
                pass  # already dropped
            while not any("slow reader" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
                await trio.sleep(0.05)
        await still_served(running)
    assert any("slow reader" in r.getMessage() for r in caplog.records)


# --- frames that cannot be parsed ---------------------------------------------------------------


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The (opcode, payload) of each frame in ``data``, as a server sends them: unmasked."""
    frames = []
    while data:
        opcode, length, start = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(data[2:4], "big"), 4
        elif length == 127:
            length, start = int.from_bytes(data[2:10], "big"), 10
        frames.append((opcode, data[start : start + length]))
        data = data[start + length :]
    return frames


async def test_invalid_utf8_in_a_text_frame_is_closed_by_the_server_with_1007(
    deadline: None, morelia_server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "morelia_trio")  # open and close: DEBUG
    async with raw_websocket(morelia_server) as stream:
        port = stream.socket.getsockname()[1]
        await stream.send_all(masked_text_frame(PING))  # answered as ever
        reply = await stream.receive_some(65536)
        assert server_frames(reply)[0][0] == 0x1
        assert msgspec.json.decode(server_frames(reply)[0][1])["errors"]["code"] == 401
        invalid = b'{"type": "ping_pong", "x": "\xc3\x28"}'  # \xc3 must start two bytes
        await stream.send_all(bytes([0x81, 0x80 | len(invalid)]) + bytes(4) + invalid)
        received = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                received += chunk
    frames = server_frames(received)
    assert [opcode for opcode, _ in frames] == [0x8]  # a close frame, then the end
    assert int.from_bytes(frames[0][1][:2], "big") == 1007
    with trio.fail_after(5):
        while morelia_server.context.guard.connections:  # noqa: ASYNC110 (no event)
            await trio.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records]
    closed = [line for line in lines if f":{port}: connection closed" in line]
    assert closed and closed[0].endswith("connection closed: by the server: invalid UTF-8 (1007)")
    await still_served(morelia_server)


async def test_a_frame_the_protocol_forbids_is_closed_by_the_server_with_1002(
    deadline: None, morelia_server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "morelia_trio")  # open and close: DEBUG
    async with raw_websocket(morelia_server) as stream:
        await stream.send_all(bytes([0x81, len(PING)]) + PING.encode())  # clients must mask
        received = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                received += chunk
    frames = server_frames(received)
    assert [opcode for opcode, _ in frames] == [0x8]
    assert int.from_bytes(frames[0][1][:2], "big") == 1002
    with trio.fail_after(5):
        while not any("a malformed frame (1002)" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
            await trio.sleep(0.01)
    await still_served(morelia_server)


# --- logs ---------------------------------------------------------------------------------------


async def test_one_log_line_per_open_close_and_error(
    deadline: None, morelia_server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "morelia_trio")  # open and close: DEBUG
    async with open_client(morelia_server.url) as client:
        await client.request(PING)  # 401
        await client.request("not json")  # 400
        port = client.ws.local.port  # type: ignore[union-attr]
    with trio.fail_after(5):
        while not any("closed" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
            await trio.sleep(0.01)
    records = [r for r in caplog.records if f":{port}:" in r.getMessage()]
    lines = [r.getMessage() for r in records]
    assert len(lines) == 4, lines
    # One real client opens a connection per request: opening and closing are not news.
    assert [r.levelname for r in records] == ["DEBUG", "INFO", "INFO", "DEBUG"]
    assert lines[0].endswith("connection opened")
    assert "ping_pong 401" in lines[1]
    assert "errors 400" in lines[2]
    assert "connection closed: by the peer" in lines[3]


# --- the conformance aid ------------------------------------------------------------------------


@pytest.mark.parametrize("echo", [True, False])
async def test_echo_is_served_only_with_autobahn_echo(
    deadline: None, nursery: trio.Nursery, morelia_config: Config, echo: bool
) -> None:
    config = msgspec.structs.replace(morelia_config, autobahn_echo=echo)
    running: Running = await nursery.start(serve, config)
    url = running.url.removesuffix("/ws") + "/echo"
    if not echo:
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_client(url):
                pass
        assert rejected.value.status_code == 404
        return
    async with open_client(url) as client:
        for frame in ("not json at all", b"\x00\x01binary", PING):
            await client.ws.send_message(frame)
            assert await client.ws.get_message() == frame
    await still_served(running)

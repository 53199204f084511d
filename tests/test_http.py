"""Plain HTTP on the WebSocket's port: health endpoints, errors, timeouts and shared limits."""

from __future__ import annotations

import errno
import logging

import pytest
import trio
from trio_websocket import ConnectionRejected

from morelia_trio import Config, Running
from morelia_trio.config import AbuseLimits
from morelia_trio.persistence.journal_file import JournalFile
from tests.test_connections import PING, closed_by_server, start, still_served
from tests.wire import Client, RequestFailed, open_client


class Response:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split(" ")[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, value in (line.split(":", 1) for line in lines)
        }


async def exchange(running: Running, request: bytes) -> Response:
    """Send ``request`` on a new connection; read the response until the server closes."""
    stream = await trio.open_tcp_stream(running.host, running.port)
    async with stream:
        await stream.send_all(request)
        raw = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                raw += chunk
    return Response(raw)


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


async def test_healthz_says_alive(server: Running) -> None:
    response = await exchange(server, get("/healthz"))
    assert (response.status, response.body) == (200, b"alive\n")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["connection"] == "close"
    assert server.http_url == f"http://{server.host}:{server.port}/"


async def test_readyz_says_ready(server: Running) -> None:
    response = await exchange(server, get("/readyz?verbose"))
    assert (response.status, response.body) == (200, b"ready\n")
    assert response.headers["cache-control"] == "no-store"


async def test_readyz_is_503_while_the_disk_is_full(
    server: Running, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.register("writer", "pw")
    general = (await client.flows())[0]["uuid"]

    def write_all(journal: JournalFile, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(JournalFile, "_write_all", write_all)
    with pytest.raises(RequestFailed):
        await client.send(general, "refused")
    response = await exchange(server, get("/readyz"))
    assert response.status == 503
    assert response.body.startswith(b"not ready: the disk is full")
    assert response.body.count(b"\n") == 1 and response.body.endswith(b"\n")
    assert (await exchange(server, get("/healthz"))).status == 200  # alive all the same


async def test_an_unknown_path_is_404_and_a_post_is_405(server: Running) -> None:
    assert (await exchange(server, get("/nowhere"))).status == 404
    assert (await exchange(server, get("/app.js/../secrets"))).status == 404
    refused = await exchange(server, get("/healthz", "POST"))
    assert refused.status == 405
    assert refused.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("path", "kind", "begins"),
    [
        ("/", "text/html", b"<!doctype html>"),
        ("/index.html", "text/html", b"<!doctype html>"),
        ("/app.js", "text/javascript", b""),
        ("/style.css", "text/css", b""),
    ],
)
async def test_the_chat_page_is_served_with_a_policy_of_its_own_origin(
    server: Running, path: str, kind: str, begins: bytes
) -> None:
    response = await exchange(server, get(path))
    assert response.status == 200
    assert response.headers["content-type"].startswith(kind)
    assert response.body.lower().startswith(begins) and len(response.body) > 1000
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_head_has_the_headers_without_the_body(server: Running) -> None:
    response = await exchange(server, get("/healthz", "HEAD"))
    assert response.status == 200
    assert response.headers["content-length"] == str(len(b"alive\n"))
    assert response.body == b""


async def test_a_malformed_request_is_400_and_closed(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "morelia_trio")
    assert (await exchange(server, b"NOT HTTP AT ALL \x00\xff\r\n\r\n")).status == 400
    assert b"\xff" not in caplog.text.encode("utf-8", "surrogateescape")


async def test_a_request_head_too_large_is_400(server: Running) -> None:
    huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 20_000 + b"\r\n\r\n"
    assert (await exchange(server, huge)).status == 400


async def test_a_slow_request_head_is_dropped_at_the_handshake_timeout(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    running = await start(nursery, morelia_config, handshake=0.5)
    stream = await trio.open_tcp_stream(running.host, running.port)
    async with stream:
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        started = trio.current_time()
        with trio.fail_after(3):
            await closed_by_server(stream)
        assert trio.current_time() - started >= 0.4
    await still_served(running)


async def test_http_and_websocket_connections_share_the_limit_per_address(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    running = await start(nursery, morelia_config, AbuseLimits(connections_per_address=2))
    async with open_client(running.url), open_client(running.url):
        refused = await exchange(running, get("/healthz"))
        assert refused.status == 429
        assert refused.body == b"Too many connections from this address.\n"
    # An HTTP connection still sending its request holds a place, as a WebSocket does.
    waiting = await trio.open_tcp_stream(running.host, running.port)
    async with waiting, open_client(running.url) as client:
        await waiting.send_all(b"GET /healthz HTTP/1.1\r\n")
        await trio.sleep(0.1)
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_client(running.url):
                pass
        assert rejected.value.status_code == 429
        assert (await client.request(PING))["errors"]["code"] == 401
    await still_served(running)  # the count went down as they closed
    assert (await exchange(running, get("/healthz"))).status == 200

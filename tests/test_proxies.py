"""Behind a reverse proxy: X-Forwarded-For names the client, but only from a trusted proxy.

127.0.0.2 plays the trusted proxy and 127.0.0.3 a client that is not one; every 127.x.y.z
reaches the server on 127.0.0.1, so the server sees them as different peers.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import pytest
import trio
from trio_websocket import ConnectionRejected, wrap_client_stream

from morelia_trio import Config, Running
from morelia_trio.config import AbuseLimits
from morelia_trio.proxies import TrustedProxies, parse_networks
from morelia_trio.server import serve
from tests.test_cli import without_settings
from tests.test_connections import PING
from tests.test_http import Response
from tests.wire import Client

PROXY, STRANGER = "127.0.0.2", "127.0.0.3"


@asynccontextmanager
async def connect_from(
    running: Running, local_address: str, forwarded_for: str | None = None
) -> AsyncIterator[Client]:
    """A WebSocket from ``local_address``, saying X-Forwarded-For if given."""
    headers = [] if forwarded_for is None else [(b"X-Forwarded-For", forwarded_for.encode())]
    stream = await trio.open_tcp_stream(running.host, running.port, local_address=local_address)
    try:
        async with stream, trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery, stream, running.host, urlsplit(running.url).path, extra_headers=headers
            )
            try:
                yield Client(ws)
            finally:
                await ws.aclose()
    except BaseExceptionGroup as group:  # the nursery's: a refusal is the one thing inside
        rejected, _ = group.split(ConnectionRejected)
        if rejected is None:
            raise
        raise rejected.exceptions[0] from None


async def healthz_from(running: Running, local_address: str, forwarded_for: str) -> Response:
    stream = await trio.open_tcp_stream(running.host, running.port, local_address=local_address)
    async with stream:
        await stream.send_all(
            f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {forwarded_for}\r\n\r\n".encode()
        )
        raw = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                raw += chunk
    return Response(raw)


@pytest.fixture
async def behind_proxy(deadline: None, nursery: trio.Nursery, morelia_config: Config) -> Running:
    """One connection per address; 127.0.0.2 trusted as a proxy."""
    config = msgspec.structs.replace(
        morelia_config, abuse=AbuseLimits(connections_per_address=1), trusted_proxy=(PROXY,)
    )
    running: Running = await nursery.start(serve, config)
    return running


async def test_the_connection_limit_counts_the_forwarded_client(
    behind_proxy: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "morelia_trio")
    async with connect_from(behind_proxy, PROXY, "203.0.113.7") as first:
        assert (await first.request(PING))["errors"]["code"] == 401
        # The same client again through the proxy: its one connection is taken.
        with pytest.raises(ConnectionRejected) as rejected:
            async with connect_from(behind_proxy, PROXY, "198.51.100.1, 203.0.113.7"):
                pass
        assert rejected.value.status_code == 429
        # Another client through the same proxy: the proxy's own address is not the limit.
        async with connect_from(behind_proxy, PROXY, "203.0.113.8") as second:
            assert (await second.request(PING))["errors"]["code"] == 401
        refused = await healthz_from(behind_proxy, PROXY, "203.0.113.7")
        assert refused.status == 429
    assert "203.0.113.7:0: connection opened" in caplog.text
    assert "203.0.113.7:0: connection refused (429)" in caplog.text
    assert f"{PROXY}:" not in caplog.text  # every line names the client, not the proxy


async def test_a_forged_header_from_an_untrusted_peer_is_ignored(behind_proxy: Running) -> None:
    # Claiming to be a client whose place is taken changes nothing for a stranger...
    async with (
        connect_from(behind_proxy, PROXY, "203.0.113.7"),
        connect_from(behind_proxy, STRANGER, "203.0.113.7") as stranger,
    ):
        assert (await stranger.request(PING))["errors"]["code"] == 401
        # ...nor does claiming to be someone else free it of its own address's limit.
        with pytest.raises(ConnectionRejected) as rejected:
            async with connect_from(behind_proxy, STRANGER, "192.0.2.99"):
                pass
        assert rejected.value.status_code == 429


@pytest.mark.parametrize(
    "header", ["not an address", "203.0.113.7,", "203.0.113.7:1234", "", "203.0.113.7\xe9"]
)
async def test_a_malformed_header_counts_the_proxy_itself(
    behind_proxy: Running, header: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "morelia_trio")
    async with (
        connect_from(behind_proxy, PROXY, "203.0.113.9"),
        connect_from(behind_proxy, PROXY, header) as held,
    ):
        # The proxy's own place is taken by the malformed one, not the forwarded client's.
        assert (await held.request(PING))["errors"]["code"] == 401
        with pytest.raises(ConnectionRejected) as rejected:
            async with connect_from(behind_proxy, PROXY, "garbage"):
                pass
        assert rejected.value.status_code == 429
    assert f"{PROXY}:" in caplog.text


def trusted(*networks: str) -> TrustedProxies:
    return TrustedProxies(parse_networks(networks))


def test_the_right_most_address_not_a_trusted_proxy_is_the_client() -> None:
    proxies = trusted("10.0.0.0/8", "::1")
    assert proxies.client("10.0.0.1", [b"1.1.1.1, 2.2.2.2"]) == "2.2.2.2"
    assert proxies.client("10.0.0.1", [b"1.1.1.1, 2.2.2.2, 10.9.9.9"]) == "2.2.2.2"
    assert proxies.client("10.0.0.1", [b"1.1.1.1", b"2.2.2.2"]) == "2.2.2.2"  # two lines
    assert proxies.client("::1", [b" 2001:db8::1 "]) == "2001:db8::1"
    assert proxies.client("10.0.0.1", [b"10.1.1.1, 10.2.2.2"]) == "10.1.1.1"  # all proxies
    assert proxies.client("::ffff:10.0.0.1", [b"2.2.2.2"]) == "2.2.2.2"


def test_only_a_trusted_peer_is_heard_and_a_bad_header_is_no_header() -> None:
    proxies = trusted("10.0.0.1")
    assert proxies.client("10.0.0.2", [b"2.2.2.2"]) == "10.0.0.2"
    assert proxies.client("10.0.0.1", []) == "10.0.0.1"
    assert proxies.client("10.0.0.1", [b"2.2.2.2, nonsense"]) == "10.0.0.1"
    assert proxies.client("10.0.0.1", [b"\xff"]) == "10.0.0.1"
    assert not trusted()
    assert trusted().client("10.0.0.1", [b"2.2.2.2"]) == "10.0.0.1"


def test_a_proxy_that_is_no_address_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'proxy\.example' is not an IP address or network"):
        parse_networks(["proxy.example"])


def print_config(*options: str, environ: dict[str, str] | None = None) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "morelia_trio", "serve", "--print-config", *options],
        capture_output=True,
        text=True,
        timeout=30,
        env={**without_settings(os.environ), **(environ or {})},
    )
    return done.returncode, done.stdout + done.stderr


def test_trusted_proxies_from_options_variable_and_file(tmp_path: Path) -> None:
    assert "trusted_proxy = []" in print_config()[1]  # none by default
    code, printed = print_config("--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1")
    assert code == 0
    assert 'trusted_proxy = ["10.0.0.0/8", "::1"]' in printed.splitlines()
    code, printed = print_config(environ={"MORELIA_TRUSTED_PROXY": "127.0.0.2, 10.0.0.0/8"})
    assert 'trusted_proxy = ["127.0.0.2", "10.0.0.0/8"]' in printed
    config_file = tmp_path / "morelia.toml"
    config_file.write_text('trusted_proxy = ["192.0.2.1"]\n')
    code, printed = print_config("--config", str(config_file))
    assert 'trusted_proxy = ["192.0.2.1"]' in printed
    # Read back, the printed file gives the same.
    config_file.write_text(printed)
    assert print_config("--config", str(config_file))[1] == printed


@pytest.mark.parametrize(
    ("options", "environ", "named"),
    [
        (["--trusted-proxy", "proxy.example"], {}, "--trusted-proxy"),
        ([], {"MORELIA_TRUSTED_PROXY": "10.0.0.0/33"}, "MORELIA_TRUSTED_PROXY"),
    ],
)
def test_a_trusted_proxy_that_is_no_address_stops_start_up(
    options: list[str], environ: dict[str, str], named: str
) -> None:
    code, said = print_config(*options, environ=environ)
    assert code == 2
    assert said.startswith(f"morelia-trio: {named}: '")
    assert "is not an IP address or network" in said

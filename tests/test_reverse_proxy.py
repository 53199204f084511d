"""The README's nginx snippet, for real: nginx on loopback terminating TLS in front of the
server, a WebSocket session through it, and the server seeing the client's own address.

Skipped when nginx is not installed, unless ``REQUIRED_TEST_TOOLS`` names it (CI does).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import trio
import trustme
from trio_websocket import wrap_client_stream

from morelia_trio import Config, Running
from morelia_trio.server import serve
from tests.test_connections import PING
from tests.test_packaging import REPO, required_tools
from tests.test_tls import trusting, write_certificate
from tests.wire import Client

CLIENT = "127.0.0.9"  # not the address nginx connects to the server from (127.0.0.1)


def readme_snippet(language: str) -> str:
    """The README's one code block in ``language``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert len(blocks) == 1, f"the README should hold one {language} block"
    return str(blocks[0])


def nginx_binary() -> str:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which("nginx", path=path)
    if found is None:
        if "nginx" in required_tools():
            pytest.fail("nginx is not installed, and REQUIRED_TEST_TOOLS requires it")
        pytest.skip("nginx is not installed: the README's nginx snippet is not tried")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nginx_config(
    snippet: str, directory: Path, ca: trustme.CA, server_port: int, listen_port: int
) -> str:
    """The snippet as it would be deployed, but on loopback ports and a test certificate."""
    certfile, keyfile = write_certificate(ca, directory / "tls")
    replaced = (
        snippet.replace("listen 443 ssl;", f"listen 127.0.0.1:{listen_port} ssl;")
        .replace("127.0.0.1:8000", f"127.0.0.1:{server_port}")
        .replace("/etc/letsencrypt/live/chat.example.org/fullchain.pem", str(certfile))
        .replace("/etc/letsencrypt/live/chat.example.org/privkey.pem", str(keyfile))
    )
    for changed in (certfile, keyfile, listen_port, server_port):
        assert str(changed) in replaced, f"the README's nginx block no longer has {changed}'s place"
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"pid {directory / 'nginx.pid'};\ndaemon off;\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temp}\n{replaced}}}\n"
    )


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[int, int, ssl.SSLContext]]:
    """nginx from the README's snippet: (its port, the server's port it proxies to, trust)."""
    binary = nginx_binary()
    directory = tmp_path / "nginx"
    directory.mkdir()
    listen_port, server_port = free_port(), free_port()
    ca = trustme.CA()
    config = directory / "nginx.conf"
    snippet = readme_snippet("nginx")
    config.write_text(nginx_config(snippet, directory, ca, server_port, listen_port))
    process = subprocess.Popen(
        [binary, "-p", str(directory), "-c", str(config), "-e", str(directory / "error.log")],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield listen_port, server_port, trusting(ca)
    finally:
        process.terminate()
        _, said = process.communicate(timeout=10)
        assert "[emerg]" not in said, said


async def test_a_websocket_session_through_nginx_names_the_real_client(
    deadline: None,
    nursery: trio.Nursery,
    morelia_config: Config,
    nginx: tuple[int, int, ssl.SSLContext],
    caplog: pytest.LogCaptureFixture,
) -> None:
    listen_port, server_port, trust = nginx
    caplog.set_level(logging.DEBUG, "morelia_trio")
    config = msgspec.structs.replace(morelia_config, port=server_port, trusted_proxy=("127.0.0.1",))
    running: Running = await nursery.start(serve, config)
    assert running.port == server_port
    for _ in range(100):  # nginx starts alongside
        try:
            tcp = await trio.open_tcp_stream("127.0.0.1", listen_port, local_address=CLIENT)
            break
        except OSError:
            await trio.sleep(0.05)
    else:
        raise AssertionError("nginx never listened")
    stream = trio.SSLStream(tcp, trust, server_hostname="127.0.0.1", https_compatible=True)
    async with stream, trio.open_nursery() as inner:
        ws = await wrap_client_stream(inner, stream, "127.0.0.1", "/ws")
        client = Client(ws)
        assert (await client.request(PING))["errors"]["code"] == 401
        await client.register("through-nginx", "pw")
        await ws.aclose()
    assert f"{CLIENT}:0: connection opened" in caplog.text
    assert "127.0.0.1:" not in caplog.text.replace(running.url, "").replace(running.http_url, "")

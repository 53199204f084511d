"""Servers sharing one stream, in-process: the nodes of a cluster test.

``Nodes`` starts servers with ``--event-log`` on a real nats-server (tests/nats.py), each
with a data directory of its own, in a nursery of their own, so a test can stop one (an
orderly shutdown, as SIGTERM) and start it again, or start a newcomer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from morelia_trio import Running
from morelia_trio.config import Config
from morelia_trio.server import serve
from morelia_trio.testing import CHEAP_ARGON2
from tests.nats import NatsCluster, NatsServer

_streams = itertools.count(1)


def event_log_url(nats: NatsServer | NatsCluster | Sequence[str], stream: str) -> str:
    urls = nats if isinstance(nats, Sequence) else _urls(nats)
    hosts = ",".join(url.removeprefix("nats://") for url in urls)
    return f"nats://{hosts}/{stream}"


def _urls(nats: NatsServer | NatsCluster) -> list[str]:
    return nats.urls if isinstance(nats, NatsCluster) else [nats.url]


class Node:
    """One server of the cluster, which a test may stop and start again."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.running: Running | None = None
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()

    @property
    def url(self) -> str:
        assert self.running is not None
        return self.running.url

    async def start(self, nursery: trio.Nursery) -> Running:
        self._stopped = trio.Event()
        self.running = await nursery.start(self._serve)
        return self.running

    async def _serve(self, task_status: trio.TaskStatus[Running]) -> None:
        try:
            with trio.CancelScope() as self._scope:
                await serve(self.config, task_status=task_status)
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        """An orderly stop, as SIGTERM makes one: the node writes its last snapshot."""
        assert self._scope is not None
        self._scope.cancel()
        await self._stopped.wait()
        self.running = None


class Nodes:
    """Servers sharing one stream of a nats-server (or cluster of them)."""

    def __init__(
        self,
        nursery: trio.Nursery,
        directory: Path,
        nats: NatsServer | NatsCluster,
        **settings: Any,
    ) -> None:
        self.nursery = nursery
        self.directory = directory
        self.stream = f"S{next(_streams)}"
        self.url = event_log_url(nats, self.stream)
        self.settings = settings
        self.nodes: list[Node] = []

    def config(self, index: int, **settings: Any) -> Config:
        base = Config(
            port=0,
            data_dir=self.directory / f"node{index}",
            snapshot_interval=math.inf,
            abuse=None,
            argon2=CHEAP_ARGON2,
            hash_workers=1,
            event_log=self.url,
        )
        return msgspec.structs.replace(base, **{**self.settings, **settings})

    async def add(self, **settings: Any) -> Node:
        """Start one more server (a newcomer with an empty data directory)."""
        node = Node(self.config(len(self.nodes), **settings))
        await node.start(self.nursery)
        self.nodes.append(node)
        return node

    def __getitem__(self, index: int) -> Node:
        return self.nodes[index]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes if node.running is not None]


@pytest.fixture
async def nodes(nursery: trio.Nursery, tmp_path: Path, nats_server: NatsServer) -> Nodes:
    """Servers on one nats-server's stream; none started yet: ``await nodes.add()``."""
    return Nodes(nursery, tmp_path, nats_server)

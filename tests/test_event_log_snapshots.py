"""The stream's bucket of snapshots, kept by several servers at once (a real nats-server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from morelia_trio.cluster.address import parse_event_log
from morelia_trio.cluster.bridge import AsyncioThread
from morelia_trio.cluster.stream import Listener, SharedStream
from tests.nats import NatsServer


@pytest.fixture
async def two_servers(
    deadline: None, nats_server: NatsServer
) -> AsyncIterator[tuple[SharedStream, SharedStream]]:
    """Two servers' connections to one stream (on one asyncio thread, so that one's
    coroutines may await the other's)."""
    address = parse_event_log(f"{nats_server.url}/SNAPSHOTS")
    ignore = Listener()
    bridge = AsyncioThread("event-log")
    bridge.start()
    streams = [
        SharedStream(address, bridge, ignore, replicas=1, credentials=None, ca_file=None, name=n)
        for n in "ab"
    ]
    try:
        for stream in streams:
            await stream.open()
        yield streams[0], streams[1]
    finally:
        for stream in streams:
            await stream.close()
        await trio.to_thread.run_sync(bridge.close)


async def test_a_snapshot_the_other_server_deleted_first_is_no_error(
    two_servers: tuple[SharedStream, SharedStream],
) -> None:
    a, b = two_servers
    await a.keep_snapshot(10, b"at ten")
    listing = b._snapshot_names  # runs on b's loop, inside keep_snapshot

    async def listed_as_a_deletes() -> list[str]:
        names = await listing()
        # a keeps a newer snapshot meanwhile, and deletes the one b has just listed
        assert a._bucket is not None
        await a._bucket.delete(f"{10:020d}")
        return names

    b._snapshot_names = listed_as_a_deletes  # type: ignore[method-assign]
    await b.keep_snapshot(20, b"at twenty")
    assert await a.newest_snapshot() == (20, b"at twenty")


async def test_a_snapshot_replaced_while_a_server_reads_it_gives_the_newer_one(
    two_servers: tuple[SharedStream, SharedStream],
) -> None:
    a, b = two_servers
    await a.keep_snapshot(10, b"at ten")
    listing = a._snapshot_names
    replaced = False

    async def listed_as_b_replaces() -> list[str]:
        nonlocal replaced
        names = await listing()
        if not replaced:  # b keeps a newer snapshot, deleting the one a has just listed
            replaced = True
            await b._keep_snapshot(20, b"at twenty")
        return names

    a._snapshot_names = listed_as_b_replaces  # type: ignore[method-assign]
    assert await a.newest_snapshot() == (20, b"at twenty")


async def test_a_snapshot_deleted_while_a_server_downloads_it_gives_the_newer_one(
    two_servers: tuple[SharedStream, SharedStream],
) -> None:
    a, b = two_servers
    await a.keep_snapshot(10, b"at ten")
    assert a._bucket is not None
    described = a._bucket.get_info
    replaced = False

    async def described_as_b_replaces(name: str, show_deleted: bool | None = False) -> Any:
        nonlocal replaced
        info = await described(name, show_deleted)
        if not replaced:  # between a's look at the object and its read of the chunks
            replaced = True
            await b._keep_snapshot(20, b"at twenty")
        return info

    a._bucket.get_info = described_as_b_replaces  # type: ignore[method-assign]
    with trio.fail_after(10):  # the chunks a waits for are gone: it waited for ever
        assert await a.newest_snapshot() == (20, b"at twenty")

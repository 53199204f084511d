"""Disk trouble is fail-stop: no acknowledged change is lost, nothing unstored is acknowledged."""

from __future__ import annotations

import errno

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed

from morelia_trio import Config, Running, serve
from morelia_trio.client import open_client
from morelia_trio.journal import Journal, StorageFailed


async def test_a_full_disk_stops_the_server_and_loses_nothing_acknowledged(
    morelia_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = msgspec.structs.replace(morelia_config, snapshot_interval=0.05)
    acknowledged: list[str] = []
    real_write_all = Journal._write_all
    disk_full = False

    def write_all(journal: Journal, data: bytes) -> None:
        if disk_full and data:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(journal, data)

    monkeypatch.setattr(Journal, "_write_all", write_all)
    with trio.fail_after(20):
        with pytest.RaisesGroup(StorageFailed, flatten_subgroups=True):
            async with trio.open_nursery() as nursery:
                running: Running = await nursery.start(serve, config)
                async with open_client(running.url) as client:
                    await client.register("writer", "pw")
                    general = (await client.flows())[0]["uuid"]
                    for n in range(20):
                        await client.send(general, f"stored {n}")
                        acknowledged.append(f"stored {n}")
                    await trio.sleep(0.2)  # let a snapshot or two happen meanwhile
                    disk_full = True
                    try:
                        reply = await client.request(
                            {
                                "type": "send_message",
                                "data": {
                                    "flow": [{"uuid": general}],
                                    "message": [{"text": "never stored"}],
                                    "user": [{"uuid": client.user_id, "auth_id": client.token}],
                                },
                            }
                        )
                    except ConnectionClosed:
                        pass  # the server stopped before it could say 503
                    else:  # it may say 503 before it goes, but never 200
                        assert reply["errors"]["code"] == 503
                    await trio.sleep_forever()  # the server stops by itself

    monkeypatch.setattr(Journal, "_write_all", real_write_all)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve, config)
            async with open_client(running.url) as client:
                await client.login("writer", "pw")
                texts = [m["text"] for m in await client.messages()]
            nursery.cancel_scope.cancel()
    assert texts == acknowledged

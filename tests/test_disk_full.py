"""Disk trouble. A full disk degrades: changes are refused with 503 while reads go on, and
writes resume by themselves once there is room. Any other failure (EIO, a failed fsync) is
fail-stop. Either way no acknowledged change is lost and no refused one is ever stored."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any, cast

import msgspec
import outcome
import pytest
import trio
from trio_websocket import ConnectionClosed

from morelia_trio import Config, Running, serve
from morelia_trio.core.journal_format import journal_name
from morelia_trio.persistence.journal_file import JournalFile
from morelia_trio.persistence.journal_writer import Journal
from morelia_trio.persistence.port import StorageFailed
from morelia_trio.persistence.recovery import recover
from tests.test_journal import make_events
from tests.wire import Client, RequestFailed, open_client

REFUSED = "The server cannot store changes right now."


async def _send(client: Client, flow: str, text: str) -> int:
    """Send a message; return the reply's code (200, or 503 with the refusal's detail)."""
    try:
        await client.send(flow, text)
    except RequestFailed as failed:
        reply = failed.reply
    else:
        return 200
    assert reply["errors"]["code"] == 503, reply
    assert reply["errors"]["detail"] == REFUSED
    return 503


async def _stored_texts(config: Config) -> list[str]:
    """Start the server again on the same data and list every message it holds."""
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(serve, config)
        async with open_client(running.url) as client:
            await client.login("writer", "pw")
            texts = [m["text"] for m in await client.messages()]
        nursery.cancel_scope.cancel()
    return texts


def _journal_is_whole(directory: Path) -> None:
    """Every journal file ends with a whole record: nothing half-written is left behind."""
    _, report = recover(directory, repair=False)
    assert report.torn == []


def _lines(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


async def test_a_full_disk_refuses_changes_keeps_reads_and_recovers_by_itself(
    morelia_config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = msgspec.structs.replace(morelia_config, snapshot_interval=0.1)
    real_write_all = JournalFile._write_all
    disk_full = False

    def write_all(journal: JournalFile, data: bytes) -> None:
        if disk_full and data:  # half of the batch gets in, as when the last block runs out
            real_write_all(journal, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(journal, data)

    monkeypatch.setattr(JournalFile, "_write_all", write_all)
    acknowledged: list[str] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(serve, config)
            async with open_client(running.url) as client:
                await client.register("writer", "pw")
                general = (await client.flows())[0]["uuid"]
                for n in range(20):
                    await client.send(general, f"stored {n}")
                    acknowledged.append(f"stored {n}")
                await trio.sleep(0.2)  # let a snapshot or two happen meanwhile
                async with AsyncExitStack() as stack:
                    others = [
                        await stack.enter_async_context(open_client(running.url)) for _ in range(5)
                    ]
                    for other in others:
                        await other.login("writer", "pw")
                    disk_full = True
                    codes: list[int] = []

                    async def send(other: Client, n: int) -> None:  # their records fail together
                        codes.append(await _send(other, general, f"refused {n}"))

                    async with trio.open_nursery() as writers:
                        for n, other in enumerate(others):
                            writers.start_soon(send, other, n)
                        await trio.sleep(0.05)
                        codes.append(await _send(client, general, "refused while they wait"))
                assert codes == [503] * 6
                _journal_is_whole(config.data_dir)  # the half-written batch was cut off

                for n in range(10):  # no probe is due yet: each is refused at once
                    assert await _send(client, general, f"refused again {n}") == 503
                # Reads, pings and the state in memory: as on disk, nothing refused in it.
                await client.ping()
                assert [m["text"] for m in await client.messages()] == acknowledged
                # Opening a session is a change too.
                with pytest.raises(RequestFailed) as login:
                    await client.login("writer", "pw")
                assert login.value.code == 503
                assert login.value.reply["errors"]["detail"] == REFUSED
                await trio.sleep(1.2)  # a probe is due, and fails: still refused
                assert await _send(client, general, "probe refused") == 503
                assert [m["text"] for m in await client.messages()] == acknowledged
                await trio.sleep(0.3)  # a snapshot is tried meanwhile: it holds no refusals

                disk_full = False  # room again: within a second or so a change gets through
                for n in range(30):
                    if await _send(client, general, f"after {n}") == 200:
                        acknowledged.append(f"after {n}")
                        break
                    await trio.sleep(0.1)
                else:
                    pytest.fail("writes did not resume")
                for n in range(5):  # and then every change does
                    await client.send(general, f"resumed {n}")
                    acknowledged.append(f"resumed {n}")
                await client.login("writer", "pw")
                assert [m["text"] for m in await client.messages()] == acknowledged
            nursery.cancel_scope.cancel()

    # One line when it degraded, naming the file and the error; one when it recovered.
    full = _lines(caplog, "No space left on device")
    assert len(full) == 1, full
    assert "journal-" in full[0] and str(config.data_dir) in full[0]
    assert len(_lines(caplog, "has room again")) == 1
    _journal_is_whole(config.data_dir)
    monkeypatch.setattr(JournalFile, "_write_all", real_write_all)
    with trio.fail_after(20):
        assert await _stored_texts(config) == acknowledged


@pytest.mark.parametrize("fsync", ["batch", "off"])
async def test_other_fsync_modes_degrade_and_recover_too(
    morelia_config: Config, monkeypatch: pytest.MonkeyPatch, fsync: str
) -> None:
    config = msgspec.structs.replace(morelia_config, fsync=fsync, fsync_batch_ms=20.0)
    real_write_all = JournalFile._write_all
    disk_full = False

    def write_all(journal: JournalFile, data: bytes) -> None:
        if disk_full and data:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        real_write_all(journal, data)

    monkeypatch.setattr(JournalFile, "_write_all", write_all)
    acknowledged: list[str] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(serve, config)
            async with open_client(running.url) as client:
                await client.register("writer", "pw")
                general = (await client.flows())[0]["uuid"]
                await client.send(general, "first")
                acknowledged.append("first")
                await trio.sleep(0.1)
                disk_full = True
                codes = [await _send(client, general, f"maybe {n}") for n in range(3)]
                await trio.sleep(0.1)  # "off" answers before it writes: let the write fail
                # "off" promises nothing: what it acknowledged before the write failed is gone.
                assert await _send(client, general, "refused") == 503
                disk_full = False
                for _ in range(30):
                    if await _send(client, general, "after") == 200:
                        acknowledged.append("after")
                        break
                    await trio.sleep(0.1)
                texts = [m["text"] for m in await client.messages()]
            nursery.cancel_scope.cancel()
    if fsync == "batch":
        assert codes == [503] * 3
    assert texts == acknowledged
    monkeypatch.setattr(JournalFile, "_write_all", real_write_all)
    with trio.fail_after(20):
        assert await _stored_texts(config) == acknowledged


@pytest.mark.parametrize("fails", ["creating the new file", "writing the new file"])
async def test_a_batch_that_fails_after_a_rotation_keeps_the_records_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    # Records 1-3, a new file for record 4, records 4-5: all in one batch of the writer.
    new_file = journal_name(4)
    real_open, real_write_all = os.open, JournalFile._write_all

    def open_(path: Any, flags: int, mode: int = 0o777) -> int:
        if fails == "creating the new file" and Path(path).name == new_file:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, mode)

    def write_all(journal: JournalFile, data: bytes) -> None:
        if fails == "writing the new file" and journal.path.name == new_file and data:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(journal, data)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(JournalFile, "_write_all", write_all)
    journal = Journal(tmp_path, 1)
    heard: dict[int, bool] = {}
    all_heard = trio.Event()

    def hear(seq: int, result: outcome.Outcome[Any]) -> None:
        heard[seq] = isinstance(result, outcome.Value)
        if len(heard) == 5:
            all_heard.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for n, event in enumerate(make_events()[:5]):
                if n == 3:
                    journal.rotate(lambda result: None, outcome.Value(None))
                seq = journal.append(event)
                journal.deliver(partial(hear, seq), outcome.Value(0), seq)
            await nursery.start(journal.run)
            await all_heard.wait()
            nursery.cancel_scope.cancel()
    assert heard == {1: True, 2: True, 3: True, 4: False, 5: False}
    assert journal.durable == journal.appended == 3
    assert journal.degraded is not None
    state, report = recover(tmp_path, repair=False)
    assert (state.seq, report.torn) == (3, [])


async def _fail_stop(config: Config, break_disk: object) -> list[str]:
    """Store 20 messages, break the disk with ``break_disk(running)``, expect the server to
    stop by itself; return what was acknowledged."""
    acknowledged: list[str] = []
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
                    assert callable(break_disk)
                    break_disk(running)
                    try:
                        code = await _send(client, general, "never stored")
                    except ConnectionClosed:
                        pass  # the server stopped before it could say 503
                    else:  # it may say 503 before it goes, but never 200
                        assert code == 503
                    await trio.sleep_forever()  # the server stops by itself
    return acknowledged


async def test_an_io_error_stops_the_server_and_loses_nothing_acknowledged(
    morelia_config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = msgspec.structs.replace(morelia_config, snapshot_interval=0.05)
    real_write_all = JournalFile._write_all
    broken = False

    def write_all(journal: JournalFile, data: bytes) -> None:
        if broken and data:
            raise OSError(errno.EIO, "Input/output error")
        real_write_all(journal, data)

    def break_disk(_: Running) -> None:
        nonlocal broken
        broken = True

    monkeypatch.setattr(JournalFile, "_write_all", write_all)
    acknowledged = await _fail_stop(config, break_disk)
    monkeypatch.setattr(JournalFile, "_write_all", real_write_all)
    with trio.fail_after(20):
        assert await _stored_texts(config) == acknowledged


async def test_a_failed_fsync_stops_the_server_even_for_a_full_disk(
    morelia_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After a failed fsync the page cache can no longer be trusted, whatever the error.
    real_fsync = os.fsync
    journal_fd: int | None = None

    def fsync(fd: int) -> None:
        if fd == journal_fd:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    def break_disk(running: Running) -> None:
        nonlocal journal_fd
        journal_fd = cast(Journal, running.store.event_log)._file.fd

    monkeypatch.setattr(os, "fsync", fsync)
    acknowledged = await _fail_stop(morelia_config, break_disk)
    monkeypatch.setattr(os, "fsync", real_fsync)
    with trio.fail_after(20):
        stored = await _stored_texts(morelia_config)
    # Its caller never heard 200; whether the record whose sync failed is there, nobody
    # can know: the file took it, the sync did not confirm it.
    assert stored in (acknowledged, [*acknowledged, "never stored"])


# --- a real, small filesystem ------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 384 KiB tmpfs, mounted for the test (as root) and unmounted after it."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here to make a small filesystem")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=384k,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def _fill(path: Path, leave: int) -> None:
    """Fill the filesystem of ``path`` with one file, leaving about ``leave`` bytes free."""
    free = shutil.disk_usage(path.parent).free
    path.write_bytes(b"\0" * max(free - leave, 0))


async def test_a_real_full_disk_degrades_then_writes_resume_once_room_is_made(
    morelia_config: Config, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = msgspec.structs.replace(
        morelia_config, data_dir=small_disk / "data", snapshot_interval=0.3
    )
    ballast = small_disk / "ballast"
    acknowledged: list[str] = []
    refused: list[str] = []
    text = "x" * 900

    async def fill_until_refused(client: Client, general: str, tag: str) -> None:
        for n in range(1000):  # far more than fits
            if await _send(client, general, f"{tag} {n} {text}") == 200:
                acknowledged.append(f"{tag} {n} {text}")
            else:
                refused.append(f"{tag} {n} {text}")
                return
        pytest.fail("the disk never filled")

    _fill(ballast, leave=96 * 1024)
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(serve, config)
            async with open_client(running.url) as client:
                await client.register("writer", "pw")
                general = (await client.flows())[0]["uuid"]
                await fill_until_refused(client, general, "first")
                for n in range(3):
                    assert await _send(client, general, f"later {n}") == 503
                    refused.append(f"later {n}")
                await client.ping()  # reads and pings go on
                assert [m["text"] for m in await client.messages()] == acknowledged
                await trio.sleep(0.7)  # snapshots are tried on the full disk, and skipped

                ballast.unlink()  # room again: writes resume without a restart
                for n in range(40):
                    if await _send(client, general, f"after {n}") == 200:
                        acknowledged.append(f"after {n}")
                        break
                    refused.append(f"after {n}")
                    await trio.sleep(0.1)
                else:
                    pytest.fail("writes did not resume")
                for n in range(5):
                    await client.send(general, f"resumed {n}")
                    acknowledged.append(f"resumed {n}")
                assert [m["text"] for m in await client.messages()] == acknowledged

                _fill(ballast, leave=32 * 1024)  # full once more, and stopped while full
                await fill_until_refused(client, general, "second")
                assert [m["text"] for m in await client.messages()] == acknowledged
            nursery.cancel_scope.cancel()  # the final snapshot fails: the exit must not
    assert _lines(caplog, "Final snapshot at record")  # "... failed: ... No space left"
    assert len(_lines(caplog, "has room again")) == 1
    _journal_is_whole(config.data_dir)

    ballast.unlink()
    with trio.fail_after(30):
        stored = await _stored_texts(config)
    assert stored == acknowledged
    assert not set(stored) & set(refused)

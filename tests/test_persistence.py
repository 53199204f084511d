"""Durability through real WebSockets: restarts, crashes, damaged files, ``data info``.

A crash is simulated by copying the data directory while the server runs, right after the
writes were acknowledged: the files then hold exactly what a kill -9 at that moment leaves.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from morelia_trio import Config, Running, serve
from morelia_trio.admin_socket import SOCKET_NAME
from morelia_trio.core import snapshot_format
from morelia_trio.core.events import MessageSent
from morelia_trio.core.journal_format import (
    DataDamaged,
    encode_end,
    encode_record,
    journal_files,
    journal_name,
    scan,
)
from morelia_trio.core.records import Message
from morelia_trio.persistence import snapshots
from morelia_trio.persistence.journal_file import JournalFile
from morelia_trio.persistence.lock import DirectoryInUse
from morelia_trio.persistence.recovery import recover
from morelia_trio.persistence.snapshots import write_snapshot
from tests.wire import Client, RequestFailed, open_client

from .helpers import Frame, creds, doc

SNAPSHOT = snapshot_format.SNAPSHOT_NAME


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[Running]:
    """A server for the block; leaving the block stops it in order (final snapshot)."""
    async with trio.open_nursery() as nursery:
        server: Running = await nursery.start(serve, config)
        yield server
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def session(url: str, user_id: str, token: str) -> AsyncIterator[Client]:
    """A connection that uses a token it already has, as a client app does after a restart."""
    async with open_client(url) as client:
        client.user_id, client.token = user_id, token
        yield client


class People(msgspec.Struct, kw_only=True):
    """What the history below created, as the clients heard it."""

    ids: dict[str, str]  # login -> user id
    tokens: dict[str, list[str]]  # login -> every token it holds
    dead_tokens: list[tuple[str, str]]  # (user id, token) of a deleted user
    general: str
    chat: str
    group: str
    writes: int  # acknowledged changes (journal records), the bootstrap flow included


async def populate(url: str) -> People:
    """Users, extra logins, a deleted user, a chat, a group, messages sent, edited, deleted."""
    async with open_client(url) as ann, open_client(url) as bob, open_client(url) as cid:
        ids = {
            "ann": await ann.register("ann", "ann-pw", username="Ann", email="ann@example.org"),
            "bob": await bob.register("bob", "bob-pw", username="Bob"),
            "cid": await cid.register("cid", "cid-pw"),
        }
        tokens = {"ann": [ann.token or ""], "bob": [bob.token or ""]}
        for _ in range(2):
            async with open_client(url) as again:
                await again.login("ann", "ann-pw")
                tokens["ann"].append(again.token or "")
        dead = (ids["cid"], cid.token or "")
        await cid.delete_user("cid", "cid-pw")
        general = (await ann.flows())[0]["uuid"]
        chat = (await ann.add_flow("chat", "ann & bob", [ids["ann"], ids["bob"]]))["uuid"]
        group = (await bob.add_flow("group", "Project", [ids["bob"], ids["ann"]], "plans"))["uuid"]
        hello = (await ann.send(general, "hello everyone"))["uuid"]
        await bob.send(chat, "hi ann, привет ✓")
        plan = (await bob.send(group, "the plan", client_id="draft-1"))["uuid"]
        await ann.send(group, "sounds good", reply_to=plan, file_picture="aGVsbG8=")
        oops = (await ann.send(chat, "oops"))["uuid"]
        await ann.edit(hello, "hello everyone (edited)")
        await ann.delete_message(oops)
        await bob.edit(plan, "the plan, v2")
    assert len(set(tokens["ann"])) == 3
    return People(
        ids=ids,
        tokens=tokens,
        dead_tokens=[dead],
        general=general,
        chat=chat,
        group=group,
        # bootstrap, 3 registrations, 2 logins, 1 deletion, 2 flows, 5 sends, 2 edits, 1 delete
        writes=17,
    )


async def doc_data(client: Client, type_: str, **data: Any) -> Frame:
    """A document-dialect query (float times, full precision), without the reply's own time."""
    reply = await client.request(doc(type_, {"user": creds(client), "meta": None, **data}))
    assert reply["errors"]["code"] == 200, reply
    result: Frame = reply["data"]
    del result["time"]
    return result


async def view(client: Client, others: list[str]) -> Frame:
    """Everything one user can read, in both dialects."""
    update = await client.update()
    del update["time"]
    return {
        "all_flow": await doc_data(client, "all_flow"),
        "all_messages": await doc_data(client, "all_messages", time=0),
        "get_update": await doc_data(client, "get_update", time=0),
        "user_info": await doc_data(client, "user_info"),
        "list_flows": await client.flows(),
        "list_messages": await client.messages(),
        "list_update": update,
        "list_users": await client.user_info(*others),
    }


async def views(url: str, people: People) -> dict[str, Frame]:
    """What every live token sees; each must still work."""
    seen = {}
    for login, tokens in people.tokens.items():
        for token in tokens:
            async with session(url, people.ids[login], token) as client:
                seen[token] = await view(client, list(people.ids.values())[:2])
    return seen


def check_views(seen: dict[str, Frame], people: People) -> None:
    """The views hold what populate did (so equal views are not equal by being empty)."""
    ann = seen[people.tokens["ann"][0]]
    assert all(seen[token] == ann for token in people.tokens["ann"])
    assert [f["title"] for f in ann["list_flows"]] == ["General", "ann & bob", "Project"]
    assert [m["text"] for m in ann["list_messages"]] == [
        "hello everyone (edited)",
        "hi ann, привет ✓",
        "the plan, v2",
        "sounds good",
    ]
    assert ann["list_messages"][3]["reply_to"] == ann["list_messages"][2]["uuid"]
    assert ann["list_messages"][3]["file_picture"] == "aGVsbG8="
    assert ann["list_messages"][2]["client_id"] == "draft-1"
    assert ann["list_messages"][0]["edited_status"] is True
    assert [u["login"] for u in ann["list_update"]["user"]] == ["ann", "bob"]
    assert ann["user_info"]["user"]["email"] == "ann@example.org"
    bob = seen[people.tokens["bob"][0]]
    assert [m["text"] for m in bob["list_messages"]] == [m["text"] for m in ann["list_messages"]]


async def check_dead_tokens(url: str, people: People) -> None:
    for user_id, token in [*people.dead_tokens, (people.ids["ann"], "not-a-token")]:
        async with session(url, user_id, token) as client:
            with pytest.raises(RequestFailed) as info:
                await client.flows()
            assert info.value.code == 401


def in_copy(config: Config, directory: Path) -> Config:
    return msgspec.structs.replace(config, data_dir=directory)


async def copy_directory(source: Path, target: Path) -> None:
    """What a kill -9 right now would leave on disk, less the admin socket: a socket cannot
    be copied, and the stale one a crash leaves is replaced at the next start (test_admin)."""
    skip_socket = shutil.ignore_patterns(SOCKET_NAME)
    await trio.to_thread.run_sync(lambda: shutil.copytree(source, target, ignore=skip_socket))


# --- (a) an orderly restart -------------------------------------------------------------------


async def test_a_restart_keeps_users_tokens_flows_and_messages(morelia_config: Config) -> None:
    directory = morelia_config.data_dir
    with trio.fail_after(20):
        async with running(morelia_config) as server:
            people = await populate(server.url)
            before = await views(server.url, people)
        check_views(before, people)

        snapshot = snapshots.read(directory / SNAPSHOT)  # the final snapshot covers it all
        assert snapshot is not None and snapshot.seq == people.writes

        async with running(morelia_config) as server:
            assert await views(server.url, people) == before
            await check_dead_tokens(server.url, people)
            # passwords still work, and new ids follow on from the old ones, never reusing one
            async with open_client(server.url) as ann:
                await ann.login("ann", "ann-pw")
                sent = await ann.send(people.chat, "after the restart")
                assert sent["uuid"] == "6"  # 5 were sent before, one of them deleted
                flow = await ann.add_flow("group", "Second")
                assert flow["uuid"] == "4"
                async with open_client(server.url) as dan:
                    assert await dan.register("dan", "dan-pw") == "4"  # 3 was cid's
                people.tokens["ann"].append(ann.token or "")
            after_second_run = await views(server.url, people)

        # a third start, from the second run's snapshot; the file it covers alone was kept
        snapshot = snapshots.read(directory / SNAPSHOT)
        assert snapshot is not None and snapshot.seq == people.writes + 4
        assert [path.name for _, path in journal_files(directory)] == [
            journal_name(people.writes + 1)
        ]
        async with running(morelia_config) as server:
            assert await views(server.url, people) == after_second_run
    messages = after_second_run[people.tokens["ann"][0]]["list_messages"]
    assert messages[-1]["text"] == "after the restart"


# --- (b) a crash: no final snapshot ----------------------------------------------------------


def last_journal(directory: Path) -> Path:
    return journal_files(directory)[-1][1]


async def test_a_crash_loses_nothing_acknowledged(morelia_config: Config, tmp_path: Path) -> None:
    journal_only, with_snapshot, torn = tmp_path / "crash-1", tmp_path / "crash-2", tmp_path / "t"
    with trio.fail_after(20):
        async with running(morelia_config) as server:
            people = await populate(server.url)
            await copy_directory(morelia_config.data_dir, journal_only)
            first = await views(server.url, people)

            # a periodic snapshot, exactly as snapshot_forever takes one, then more changes
            await write_snapshot(await server.store.capture(), morelia_config.data_dir)
            async with session(server.url, people.ids["bob"], people.tokens["bob"][0]) as bob:
                await bob.send(people.group, "after the snapshot")
                await bob.edit((await bob.messages(people.group))[0]["uuid"], "the plan, v3")
                await bob.delete_message((await bob.messages(people.chat))[0]["uuid"])
                await bob.add_flow("chat", "bob alone")
                await bob.login("bob", "bob-pw")
                people.tokens["bob"].append(bob.token or "")
            await copy_directory(morelia_config.data_dir, with_snapshot)
            second = await views(server.url, people)

        assert not (journal_only / SNAPSHOT).exists()
        snapshot = snapshots.read(with_snapshot / SNAPSHOT)
        assert snapshot is not None and snapshot.seq == people.writes
        assert last_journal(with_snapshot).name == journal_name(people.writes + 1)

        first_people = msgspec.structs.replace(
            people, tokens={"ann": people.tokens["ann"], "bob": people.tokens["bob"][:1]}
        )
        async with running(in_copy(morelia_config, journal_only)) as server:
            assert await views(server.url, first_people) == first
            await check_dead_tokens(server.url, people)
            async with session(server.url, people.ids["bob"], people.tokens["bob"][1]) as bob:
                with pytest.raises(RequestFailed) as info:  # that login came after the crash
                    await bob.flows()
                assert info.value.code == 401
        check_views(first, first_people)

        # kill -9 in the middle of writing a record: half of one more is on disk
        await copy_directory(with_snapshot, torn)
        newest = last_journal(torn)
        whole = newest.read_bytes()
        assert scan(whole, newest).records[-1][0] == people.writes + 5
        half = encode_record(people.writes + 6, msgspec.msgpack.encode(unsent()))
        newest.write_bytes(whole + half[: len(half) // 2])

        for directory in (with_snapshot, torn):
            async with running(in_copy(morelia_config, directory)) as server:
                seen = await views(server.url, people)
                assert seen == second
        assert newest.read_bytes() == whole  # the half record was cut off

    bob_view = second[people.tokens["bob"][0]]
    assert [f["title"] for f in bob_view["list_flows"]] == [
        "General",
        "ann & bob",
        "Project",
        "bob alone",
    ]
    assert [m["text"] for m in bob_view["list_messages"]] == [
        "hello everyone (edited)",
        "the plan, v3",
        "sounds good",
        "after the snapshot",
    ]


def unsent() -> MessageSent:
    return MessageSent(time=2e9, message=Message(id=99, flow_id=1, author_id=1, time=2e9))


@pytest.mark.parametrize("fsync", ["always", "batch"])
async def test_no_reply_comes_before_what_it_shows_is_on_disk(
    morelia_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: str
) -> None:
    """On a slow disk, one client reads another's message while it is being written: that
    reply, and the writer's own, must wait for the disk (a crash right after either keeps it).

    With fsync "batch" (synced only every 10 s here) "the disk" is the journal file: what a
    crash of the process leaves, the copy below. Only a power loss may take more."""
    morelia_config = msgspec.structs.replace(morelia_config, fsync=fsync, fsync_batch_ms=10_000)
    real_write = JournalFile.write

    def slow_write(file: JournalFile, items: list[Any], first: int, sync: bool) -> None:
        time.sleep(0.03)
        real_write(file, items, first, sync)

    monkeypatch.setattr(JournalFile, "write", slow_write)
    seen_early = 0
    with trio.fail_after(20):
        async with (
            running(morelia_config) as server,
            open_client(server.url) as ann,
            open_client(server.url) as bob,
        ):
            await ann.register("ann", "ann-pw")
            await bob.register("bob", "bob-pw")
            general = (await ann.flows())[0]["uuid"]
            for n in range(6):
                text = f"slow {n}"
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(ann.send, general, text)
                    await trio.sleep(0.01)  # ann's message is in memory, still being written
                    read = [m["text"] for m in await bob.messages(general)]
                    crashed = tmp_path / f"after-read-{n}"
                    await copy_directory(morelia_config.data_dir, crashed)
                if text in read:
                    seen_early += 1
                    state, _ = recover(crashed)
                    assert text in [m.text for m in state.messages.values()], n
                crashed = tmp_path / f"after-send-{n}"
                await copy_directory(morelia_config.data_dir, crashed)
                state, _ = recover(crashed)
                assert [m.text for m in state.messages.values()][-1] == text
    assert seen_early > 0, "bob never read a message that was still being written"


async def test_an_event_the_journal_cannot_encode_fails_alone(
    morelia_config: Config, tmp_path: Path
) -> None:
    """An event msgpack cannot hold (a number past 2**64, as an unchecked attachment byte
    once made) fails its request alone: nothing applied, no gap in the journal's sequence,
    and the server serves on. It used to stop the state owner, and the server with it."""
    picture = [1, 2**70]
    bad = Message(id=99, flow_id=1, author_id=1, time=2e9, text="never", picture=picture)
    with trio.fail_after(20):
        async with running(morelia_config) as server, open_client(server.url) as ann:
            await ann.register("ann", "ann-pw")
            general = (await ann.flows())[0]["uuid"]
            with pytest.raises(OverflowError):
                await server.store.call(lambda state: MessageSent(time=2e9, message=bad))
            await ann.send(general, "after the bad event")
            assert [m["text"] for m in await ann.messages(general)] == ["after the bad event"]
            crashed = tmp_path / "crashed"
            await copy_directory(morelia_config.data_dir, crashed)
    state, _ = recover(crashed)  # replays the journal: a gap in it would be damage
    assert [m.text for m in state.messages.values()] == ["after the bad event"]


# --- client ids keep their type ---------------------------------------------------------------

CLIENT_IDS: list[int | str] = [1, "1", -(2**63), 2**63 - 1, "draft-2"]


async def client_ids_seen(url: str, user_id: str, token: str) -> list[list[Any]]:
    """Every message's client_id as each reply shows it, both dialects."""
    async with session(url, user_id, token) as ann:
        listed = await ann.messages()
        update = await ann.update()
        documents = await doc_data(ann, "all_messages", time=0)
        doc_update = await doc_data(ann, "get_update", time=0)
    return [
        [m["client_id"] for m in found]
        for found in (listed, update["message"], documents["message"], doc_update["message"])
    ]


async def test_a_client_id_comes_back_as_it_was_sent(
    morelia_config: Config, tmp_path: Path
) -> None:
    """An integer stays an integer, a string a string: in the reply to the send, in every
    listing of either dialect, after a restart from the snapshot and from the journal alone
    (where a string, all that data written before held, still loads)."""
    crashed = tmp_path / "crashed"
    with trio.fail_after(20):
        async with running(morelia_config) as server, open_client(server.url) as ann:
            await ann.register("ann", "ann-pw")
            general = (await ann.flows())[0]["uuid"]
            for client_id in CLIENT_IDS:
                assert (await ann.send(general, "x", client_id=client_id))["client_id"] == client_id
                sent = await ann.request(
                    doc(
                        "send_message",
                        {
                            "user": creds(ann),
                            "flow": {"id": 1},
                            "message": {"text": "y", "client_id": client_id},
                        },
                    )
                )
                assert sent["data"]["message"]["client_id"] == client_id
            expected = [[c for c in CLIENT_IDS for _ in range(2)]] * 4
            assert await client_ids_seen(server.url, ann.user_id or "", ann.token or "") == expected
            await copy_directory(morelia_config.data_dir, crashed)
            too_big = {"text": "z", "client_id": 2**64}
            reply = await ann.request(
                {
                    "type": "send_message",
                    "data": {
                        "user": [{"uuid": ann.user_id, "auth_id": ann.token}],
                        "flow": [{"uuid": general}],
                        "message": [too_big],
                    },
                }
            )
            assert reply["errors"]["code"] == 415 and "client_id" in reply["errors"]["detail"]
        for directory in (morelia_config.data_dir, crashed):
            async with running(in_copy(morelia_config, directory)) as server:
                seen = await client_ids_seen(server.url, ann.user_id or "", ann.token or "")
                assert seen == expected


# --- (c) damage stops start-up ----------------------------------------------------------------


def leaves(group: BaseExceptionGroup[Any]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from leaves(exc)
        else:
            yield exc


async def start_fails(config: Config) -> DataDamaged:
    """Start a server that must refuse to start; return why it refused."""
    before = {path.name: path.read_bytes() for path in config.data_dir.iterdir()}
    failures: list[BaseException] = []
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve, config)
            nursery.cancel_scope.cancel()  # it started: the assertion below says so
    except* DataDamaged as group:
        failures += leaves(group)
    assert len(failures) == 1, "the server started on damaged data"
    assert isinstance(failures[0], DataDamaged)
    # nothing was written: no empty snapshot over the damaged one, no new journal
    assert {path.name: path.read_bytes() for path in config.data_dir.iterdir()} == before
    return failures[0]


def flip(data: bytes, offset: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 0x5A
    return bytes(changed)


def unknown_format(data: bytes) -> bytes:
    start = len(snapshot_format.MAGIC) + snapshot_format.HEADER.size
    root = msgspec.msgpack.decode(data[start:])
    root["format"] += 1
    payload = msgspec.msgpack.encode(root)
    return (
        snapshot_format.MAGIC
        + snapshot_format.HEADER.pack(len(payload), zlib.crc32(payload))
        + payload
    )


def damaged(data: bytes, damage: str) -> bytes:
    match damage:
        case "flipped":
            return flip(data, len(data) // 2)
        case "truncated":
            return data[: len(data) - 1]
        case "wrong magic":
            return b"X" + data[1:]
        case "unknown format":
            return unknown_format(data)
        case "empty":
            return b""
        case "extra bytes":
            return data + b"\x00"
    raise AssertionError(damage)


@pytest.mark.parametrize(
    "damage",
    ["flipped", "truncated", "wrong magic", "unknown format", "empty", "extra bytes"],
)
async def test_a_damaged_snapshot_stops_start_up(morelia_config: Config, damage: str) -> None:
    path = morelia_config.data_dir / SNAPSHOT
    with trio.fail_after(20):
        async with running(morelia_config) as server, open_client(server.url) as ann:
            await ann.register("ann", "ann-pw")
            await ann.send((await ann.flows())[0]["uuid"], "keep me")
        path.write_bytes(damaged(path.read_bytes(), damage))
        exc = await start_fails(morelia_config)
    assert exc.path == path and str(path) in str(exc)


async def test_damage_inside_the_journal_stops_start_up(
    morelia_config: Config, tmp_path: Path
) -> None:
    crashed = in_copy(morelia_config, tmp_path / "crashed")
    with trio.fail_after(20):
        async with running(morelia_config) as server:
            await populate(server.url)
            await copy_directory(morelia_config.data_dir, crashed.data_dir)
        journal = last_journal(crashed.data_dir)
        data = journal.read_bytes()
        found = scan(data, journal)
        start = len(encode_record(*found.records[0])) + len(encode_record(*found.records[1]))
        journal.write_bytes(flip(data, start + 25))  # in the payload of record 3
        exc = await start_fails(crashed)
    assert exc.path == journal and exc.offset == start
    assert "record 3" in str(exc) and str(journal) in str(exc)


async def test_a_snapshot_is_answered_only_once_its_journal_file_is_on_disk(
    morelia_config: Config,
) -> None:
    """The capture a snapshot is written from comes back only after the journal has moved
    on to journal-<seq+1>.log and marked the file it left, so a snapshot on disk is always
    followed by its journal file, whenever a crash comes."""
    directory = morelia_config.data_dir
    with trio.fail_after(20):
        async with running(morelia_config) as server, open_client(server.url) as ann:
            await ann.register("ann", "ann-pw")
            capture = await server.store.capture()
            follows = directory / journal_name(capture.seq + 1)
            assert follows.exists()
            left = directory / journal_name(1)
            assert left.read_bytes().endswith(encode_end(capture.seq + 1))
            assert scan(left.read_bytes(), left).follows == capture.seq + 1


async def run_and_crash(config: Config, people: People, crashed: Path, text: str) -> Config:
    """Serve ``config``, send a message, and leave what a kill -9 then leaves in ``crashed``."""
    async with running(config) as server:
        async with session(server.url, people.ids["ann"], people.tokens["ann"][0]) as ann:
            await ann.send(people.general, text)
        await copy_directory(config.data_dir, crashed)
    return in_copy(config, crashed)


@pytest.mark.parametrize("lost", ["after the snapshot", "newest, after a restart", "middle"])
async def test_a_missing_journal_file_stops_start_up(
    morelia_config: Config, tmp_path: Path, lost: str
) -> None:
    """A deleted journal file used to lose what it held without a word."""
    config = morelia_config
    with trio.fail_after(30):
        async with running(config) as server:
            people = await populate(server.url)
            if lost == "after the snapshot":  # a periodic snapshot, then more changes
                await write_snapshot(await server.store.capture(), config.data_dir)
            if lost == "middle":  # a crash: no final snapshot
                await copy_directory(config.data_dir, tmp_path / "first")
                config = in_copy(config, tmp_path / "first")
        if lost == "middle":  # each start after a stop or a crash starts a file
            config = await run_and_crash(config, people, tmp_path / "second", "second run")
        config = await run_and_crash(config, people, tmp_path / "crashed", "last run")
        files = [path for _, path in journal_files(config.data_dir)]
        assert len(files) == {"after the snapshot": 1, "newest, after a restart": 2}.get(lost, 3)
        victim = files[1] if lost == "middle" else files[-1]
        assert scan(victim.read_bytes(), victim).records, "the lost file held records"
        victim.unlink()
        exc = await start_fails(config)
        code, info, _ = await data_info(config.data_dir)
    assert code == 1 and info["damage"] == str(exc)
    if lost == "middle":
        assert exc.path == files[2] and exc.offset == 0
        assert exc.reason == "record 18 is missing: no journal file holds it"
    else:
        assert exc.path == victim and exc.offset is None
        assert exc.reason.startswith("missing: ")


async def test_a_stop_under_load_leaves_a_journal_that_reaches_the_final_snapshot(
    morelia_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes applied but not yet written when the server stops are written before the
    final snapshot, which says the journal reaches it."""
    real_write = JournalFile.write

    def slow_write(file: JournalFile, items: list[Any], first: int, sync: bool) -> None:
        time.sleep(0.05)
        real_write(file, items, first, sync)

    monkeypatch.setattr(JournalFile, "write", slow_write)
    with trio.fail_after(20):
        async with running(morelia_config) as server:
            async with open_client(server.url) as ann:
                await ann.register("ann", "ann-pw")
                general = (await ann.flows())[0]["uuid"]
            async with AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(session(server.url, ann.user_id or "", token))
                    for token in [ann.token or ""] * 8
                ]
                async with trio.open_nursery() as nursery:
                    for client in clients[:4]:
                        nursery.start_soon(client.send, general, "being written at the stop")
                    await trio.sleep(0.02)  # they are being written, slowly
                    written = server.store.event_log.appended
                    for client in clients[4:]:
                        nursery.start_soon(client.send, general, "waiting at the stop")
                    await trio.sleep(0.01)  # applied, waiting for the first write to end
                    appended = server.store.event_log.appended
                    nursery.cancel_scope.cancel()
        monkeypatch.undo()
        snapshot = snapshots.read(morelia_config.data_dir / SNAPSHOT)
        assert appended > written > 2, "no change was waiting for the disk at the stop"
        assert snapshot is not None and snapshot.seq == appended
        state, _ = recover(morelia_config.data_dir)  # the journal reaches the snapshot
        assert state.seq == snapshot.seq
        async with running(morelia_config):
            pass


# --- (d) morelia-trio data info ---------------------------------------------------------------


async def data_info(directory: Path) -> tuple[int, dict[str, str], str]:
    """Run the command; return its exit code, its ``name: value`` lines, and stderr."""
    result = await trio.run_process(
        [sys.executable, "-m", "morelia_trio", "data", "info", str(directory)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    lines: dict[str, str] = {}
    for line in result.stdout.decode().splitlines():
        name, _, value = line.partition(":")
        lines.setdefault(name, value.strip())  # "torn tail" may come more than once
    return result.returncode, lines, result.stderr.decode()


async def test_data_info_counts_and_reports_damage(morelia_config: Config, tmp_path: Path) -> None:
    crashed = tmp_path / "crashed"
    with trio.fail_after(20):
        async with running(morelia_config) as server:
            people = await populate(server.url)
            await copy_directory(morelia_config.data_dir, crashed)

        # after a crash: everything comes from the journal
        code, info, _ = await data_info(crashed)
        assert code == 0
        assert info["snapshot"] == "none"
        assert info["journal files"] == journal_name(1)
        assert info["journal records"] == f"{people.writes} ({people.writes} after the snapshot)"
        assert info["last record"] == str(people.writes)
        assert (info["users"], info["sessions"], info["flows"], info["messages"]) == (
            "2",
            "4",
            "3",
            "4",
        )
        assert info["damage"] == "none" and "torn tail" not in info

        # after an orderly stop: everything comes from the snapshot
        code, info, _ = await data_info(morelia_config.data_dir)
        assert code == 0
        assert info["snapshot"].startswith(f"record {people.writes}, taken ")
        assert info["journal records"] == f"{people.writes} (0 after the snapshot)"
        assert (info["users"], info["sessions"], info["flows"], info["messages"]) == (
            "2",
            "4",
            "3",
            "4",
        )

        # a torn tail is reported, and left alone: data info only reads
        journal = last_journal(crashed)
        whole = journal.read_bytes()
        journal.write_bytes(whole + encode_record(people.writes + 1, b"\x81\xa1a\x01")[:7])
        code, info, _ = await data_info(crashed)
        assert code == 0
        assert info["torn tail"].startswith(f"{journal.name} at offset {len(whole)}: ")
        assert info["damage"] == "a torn tail only"
        assert info["messages"] == "4"
        assert journal.read_bytes()[len(whole) :] != b""

        # damage: the first record's payload
        journal.write_bytes(flip(whole, 30))
        code, info, _ = await data_info(crashed)
        assert code == 1
        assert info["damage"] == f"{journal}: record 1 fails its checksum at byte offset 0"

        # a damaged snapshot
        snapshot = morelia_config.data_dir / SNAPSHOT
        snapshot.write_bytes(flip(snapshot.read_bytes(), 3))
        code, info, _ = await data_info(morelia_config.data_dir)
        assert code == 1
        assert info["damage"].startswith(f"{snapshot}: ")

        code, info, err = await data_info(tmp_path / "nothing here")
        assert code == 1 and info == {} and "not a directory" in err


# --- (e) one server per data directory ----------------------------------------------------------


async def test_a_second_server_on_the_same_directory_is_refused(morelia_config: Config) -> None:
    with trio.fail_after(20):
        async with running(morelia_config) as server, open_client(server.url) as ann:
            await ann.register("ann", "ann-pw")
            refused: list[BaseException] = []
            try:
                async with running(morelia_config):
                    raise AssertionError("a second server started on a directory in use")
            except* DirectoryInUse as group:
                refused += leaves(group)
            assert len(refused) == 1 and isinstance(refused[0], DirectoryInUse)
            assert str(morelia_config.data_dir) in str(refused[0])
            assert refused[0].holder == os.getpid()
            await ann.send((await ann.flows())[0]["uuid"], "still served")
        # stopped: the same process may serve the directory again
        async with running(morelia_config) as server, open_client(server.url) as ann:
            await ann.login("ann", "ann-pw")
            assert [m["text"] for m in await ann.messages()] == ["still served"]

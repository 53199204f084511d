"""Moderation and the admin tool through the surface: WebSocket clients of the in-process
server, and the real ``morelia-trio admin`` as a subprocess, live over the admin socket and
offline on a stopped server's directory."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from morelia_trio import Running
from morelia_trio.admin_socket import SOCKET_NAME
from morelia_trio.config import Config
from morelia_trio.persistence.lock import DirectoryLock
from morelia_trio.server import serve
from tests.test_cli import without_settings
from tests.wire import Client, RequestFailed, open_client

pytestmark = pytest.mark.spread
ADMIN_TOOL = "runs the admin tool on its one server's data directory"

Connect = Callable[[], AbstractAsyncContextManager[Client]]


@pytest.fixture
def data_dir(morelia_config: Config) -> Path:
    """The data directory of the test's server (``server``)."""
    return morelia_config.data_dir


async def admin(directory: Path, *args: str, ok: bool = True) -> tuple[str, str]:
    """Run ``morelia-trio admin`` on ``directory``; return its stdout and stderr."""
    done = await trio.run_process(
        [sys.executable, "-m", "morelia_trio", "admin", "--data-dir", str(directory), *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=without_settings(os.environ),
    )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert (done.returncode == 0) == ok, (done.returncode, out, err)
    return out, err


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


async def code_of(call: Any) -> int:
    try:
        await call
    except RequestFailed as failed:
        return failed.code
    return 200


# --- moderation over the WebSocket ------------------------------------------------------------


async def test_the_owner_of_a_group_deletes_others_messages_in_it(ann: Client, bob: Client) -> None:
    group = (await ann.add_flow("group", "Ann's"))["uuid"]
    from_bob = (await bob.send(group, "spam"))["uuid"]
    await ann.delete_message(from_bob)
    assert await bob.messages(group) == []
    general = (await bob.flows())[0]["uuid"]
    from_ann = (await ann.send(general, "hello"))["uuid"]
    assert await code_of(bob.delete_message(from_ann)) == 403  # General is nobody's
    assert await code_of(ann.edit(from_bob, "x")) == 404  # gone
    again = (await bob.send(group, "mine"))["uuid"]
    assert await code_of(ann.edit(again, "rewritten")) == 403  # the owner never edits


@pytest.mark.one_node(ADMIN_TOOL)
async def test_a_server_admin_deletes_in_any_flow_it_sees(
    server: Running, data_dir: Path, ann: Client, bob: Client
) -> None:
    general = (await ann.flows())[0]["uuid"]
    from_ann = (await ann.send(general, "hello"))["uuid"]
    assert await code_of(bob.delete_message(from_ann)) == 403
    await admin(data_dir, "make-admin", "bob")
    await bob.delete_message(from_ann)
    assert await ann.messages(general) == []
    await admin(data_dir, "unmake-admin", "bob")
    other = (await ann.send(general, "again"))["uuid"]
    assert await code_of(bob.delete_message(other)) == 403


@pytest.mark.one_node(ADMIN_TOOL)
async def test_a_suspended_account_is_logged_out_and_cannot_log_in_until_restored(
    server: Running, data_dir: Path, ann: Client, connect: Connect
) -> None:
    general = (await ann.flows())[0]["uuid"]
    await ann.send(general, "stays")
    await admin(data_dir, "suspend", "ann")
    assert await code_of(ann.ping()) == 401
    async with connect() as again:
        with pytest.raises(RequestFailed) as refused:
            await again.login("ann", "ann-password")
        assert refused.value.code == 403
        assert refused.value.reply["errors"]["detail"] == "this account is suspended"
        with pytest.raises(RequestFailed) as wrong:  # a wrong password tells nothing more
            await again.login("ann", "not-her-password")
        assert wrong.value.code == 401
        await again.register("cy", "cy-password")
        assert [m["text"] for m in await again.messages(general)] == ["stays"]
    await admin(data_dir, "restore", "ann")
    assert await code_of(ann.ping()) == 401  # old tokens stay ended
    async with connect() as again:
        await again.login("ann", "ann-password")
        await again.ping()


# --- the admin tool on a live server ----------------------------------------------------------


@pytest.mark.one_node(ADMIN_TOOL)
async def test_the_admin_tool_lists_finds_counts_and_deletes_on_a_live_server(
    server: Running, data_dir: Path, ann: Client, bob: Client
) -> None:
    directory = data_dir
    socket_mode = (directory / SOCKET_NAME).stat().st_mode
    assert stat.S_ISSOCK(socket_mode) and stat.S_IMODE(socket_mode) == 0o600
    out, _ = await admin(directory, "users")
    users = lines(out)
    assert sorted((u["login"], u["admin"], u["suspended"]) for u in users) == [
        ("ann", False, False),
        ("bob", False, False),
    ]
    assert all("password" not in key for user in users for key in user)
    out, _ = await admin(directory, "find", "BO")
    assert [u["login"] for u in lines(out)] == ["bob"]
    general = (await ann.flows())[0]["uuid"]
    sent = (await ann.send(general, "to go"))["uuid"]
    await admin(directory, "delete-message", sent)
    assert await ann.messages(general) == []
    _, err = await admin(directory, "delete-message", sent, ok=False)
    assert "No message has this id." in err
    await admin(directory, "delete-user", str(bob.user_id))
    assert await code_of(bob.ping()) == 401
    out, _ = await admin(directory, "stats")
    (counted,) = lines(out)
    assert (counted["users"], counted["flows"], counted["messages"]) == (1, 1, 0)
    _, err = await admin(directory, "make-admin", "nobody", ok=False)
    assert "No user has this login or id." in err


@pytest.mark.one_node(ADMIN_TOOL)
async def test_a_backup_taken_while_serving_restores_by_serving_it(
    server: Running, data_dir: Path, ann: Client, tmp_path: Path, morelia_config: Config
) -> None:
    general = (await ann.flows())[0]["uuid"]
    await ann.send(general, "backed up")
    await admin(data_dir, "make-admin", "ann")
    target = tmp_path / "backup"
    await admin(data_dir, "backup", str(target))
    await ann.send(general, "after the backup")
    assert sorted(p.name for p in target.iterdir()) == ["snapshot.msgpack"]
    _, err = await admin(data_dir, "backup", str(target), ok=False)
    assert "not empty" in err
    restored = msgspec.structs.replace(morelia_config, data_dir=target)
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(serve, restored)
        async with open_client(running.url) as client:
            await client.login("ann", "ann-password")
            assert [m["text"] for m in await client.messages(general)] == ["backed up"]
        out, _ = await admin(target, "users")
        assert [u["admin"] for u in lines(out)] == [True]
        nursery.cancel_scope.cancel()


@pytest.mark.one_node(ADMIN_TOOL)
async def test_an_export_holds_users_without_secrets_flows_and_messages(
    server: Running, data_dir: Path, ann: Client
) -> None:
    general = (await ann.flows())[0]["uuid"]
    await ann.send(general, "exported")
    out, err = await admin(data_dir, "export")
    exported = lines(out)
    assert [e["kind"] for e in exported] == ["user", "flow", "message"]
    assert exported[0]["user"]["login"] == "ann" and "password_hash" not in exported[0]["user"]
    assert exported[2]["message"]["text"] == "exported"
    assert "3 records exported" in err
    assert "ann-password" not in out and "$argon2" not in out


# --- the socket's life, and the tool offline -----------------------------------------------------


@pytest.mark.one_node("the admin socket in its one server's data directory")
async def test_the_socket_replaces_a_stale_one_and_is_removed_on_shutdown(
    morelia_config: Config,
) -> None:
    directory = morelia_config.data_dir
    directory.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(directory / SOCKET_NAME))  # as a crash leaves it: nobody listens
    stale.close()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve, morelia_config)
            out, _ = await admin(directory, "stats")
            assert lines(out)[0]["flows"] == 1
            nursery.cancel_scope.cancel()
    assert not (directory / SOCKET_NAME).exists()


@pytest.mark.one_node("the admin tool on one server's data directory, offline")
async def test_offline_the_tool_takes_the_lock_and_its_changes_are_journaled(
    morelia_config: Config,
) -> None:
    directory = morelia_config.data_dir
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(serve, morelia_config)
            async with open_client(running.url) as client:
                await client.register("ann", "ann-password")
            nursery.cancel_scope.cancel()
        _, err = await admin(directory, "suspend", "ann")
        assert "suspended" in err
        out, _ = await admin(directory, "users")
        assert lines(out)[0]["suspended"] is True
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve, morelia_config)
            async with open_client(running.url) as client:
                with pytest.raises(RequestFailed) as refused:
                    await client.login("ann", "ann-password")
                assert refused.value.code == 403
            nursery.cancel_scope.cancel()
    held = DirectoryLock(directory)  # a server that holds the lock but answers no socket
    try:
        _, err = await admin(directory, "users", ok=False)
        assert "in use" in err
    finally:
        held.release()

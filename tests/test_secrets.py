"""Passwords, tokens and message texts stay out of replies, logs and data files."""

from __future__ import annotations

import base64
import contextlib
import logging
from pathlib import Path

import msgspec
import pytest
import trio

from morelia_trio import Running, serve
from morelia_trio.config import Config
from tests.wire import Client, open_client

from .helpers import Frame

ANN_PASSWORD = "ann-secret-Zq8#pw"
BOB_PASSWORD = "bob-secret-Xv3!pw"
TEXT = "a private message text 7f3a9c"


def encodings(secret: str) -> list[bytes]:
    """The ways a secret could sit in a file: as text, and as the bytes a token encodes."""
    found = [secret.encode()]
    with contextlib.suppress(ValueError):
        found.append(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4)))
    return found


def data_files(directory: Path) -> tuple[list[str], bytes]:
    """The names of the files in a data directory, and all their bytes."""
    files = sorted(path for path in directory.iterdir() if path.is_file())
    return [path.name for path in files], b"".join(path.read_bytes() for path in files)


async def session(url: str, replies: list[str]) -> tuple[str, str, str]:
    """A busy session of two users; every reply kept. Returns ann's and bob's tokens."""

    async def kept(client: Client, frame: Frame) -> Frame:
        text = msgspec.json.encode(frame).decode()
        await client.ws.send_message(text)
        raw = await client.ws.get_message()
        assert isinstance(raw, str)
        replies.append(raw)
        reply: Frame = msgspec.json.decode(raw)
        return reply

    async with open_client(url) as ann, open_client(url) as bob:
        await ann.register("ann", ANN_PASSWORD)
        await bob.register("bob", BOB_PASSWORD)
        first_token = ann.token or ""
        await ann.login("ann", ANN_PASSWORD)  # a second session: two tokens to look for
        general = (await ann.flows())[0]["uuid"]
        await ann.send(general, TEXT)
        me = {"uuid": ann.user_id, "auth_id": ann.token}
        them = {"uuid": bob.user_id}
        for type_, data in [
            ("user_info", {"user": [me, them]}),
            ("get_update", {"user": [me], "time": 0}),
            ("all_messages", {"user": [me], "flow": [{"uuid": general}], "time": 0}),
            ("all_flow", {"user": [me]}),
            ("auth", {"user": [{"login": "ann", "password": "wrong " + ANN_PASSWORD}]}),
            ("register_user", {"user": [{"login": "ann", "password": ANN_PASSWORD}]}),
            ("ping_pong", {"user": [{"uuid": ann.user_id, "auth_id": "x" + (bob.token or "")}]}),
        ]:
            await kept(ann, {"type": type_, "data": data})
        bob_me = {"uuid": bob.user_id, "auth_id": bob.token}
        await kept(bob, {"type": "get_update", "data": {"user": [bob_me], "time": 0}})
        await kept(bob, {"type": "user_info", "data": {"user": [bob_me, {"uuid": ann.user_id}]}})
        return first_token, ann.token or "", bob.token or ""


async def test_no_reply_log_line_or_data_file_holds_a_secret(
    deadline: None,
    morelia_config: Config,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    replies: list[str] = []
    config = msgspec.structs.replace(morelia_config, snapshot_interval=0.05)
    async with trio.open_nursery() as own:
        running: Running = await own.start(serve, config)
        tokens = await session(running.url, replies)
        await trio.sleep(0.2)  # a periodic snapshot or two
        own.cancel_scope.cancel()  # and a final one, as serve() returns
    ann_first, ann_token, bob_token = tokens

    # Replies: a token only in the reply that issued it, never a password or a hash.
    for raw in replies:
        for secret in (ANN_PASSWORD, BOB_PASSWORD, "$argon2"):
            assert secret not in raw
        assert bob_token not in raw  # ann's connection, and bob's own replies never echo it
        assert ann_first not in raw and ann_token not in raw

    # Logs, at every level: no password, token or message text.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "connection opened" in logged  # the logs were captured
    for secret in (ANN_PASSWORD, BOB_PASSWORD, ann_first, ann_token, bob_token, TEXT):
        assert secret not in logged

    # Data files: argon2id hashes and SHA-256 digests only.
    names, contents = data_files(Path(config.data_dir))
    assert any(name.startswith("snapshot") for name in names)
    assert any(name.startswith("journal") for name in names)
    assert b"$argon2id$" in contents
    for secret in (ANN_PASSWORD, BOB_PASSWORD, ann_first, ann_token, bob_token):
        for form in encodings(secret):
            assert form not in contents, (secret, form)


async def test_delete_user_revokes_every_token(deadline: None, morelia_server: Running) -> None:
    async with open_client(morelia_server.url) as ann, open_client(morelia_server.url) as other:
        await ann.register("ann", ANN_PASSWORD)
        await other.login("ann", ANN_PASSWORD)
        tokens = [ann.token, other.token]
        await ann.delete_user("ann", ANN_PASSWORD)
        for token in tokens:
            frame = {
                "type": "ping_pong",
                "data": {"user": [{"uuid": other.user_id, "auth_id": token}]},
            }
            assert (await other.request(frame))["errors"]["code"] == 401

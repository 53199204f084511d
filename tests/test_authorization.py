"""Who may do what (CONTRACT §5), and what never leaves the server."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
import trio

from morelia_trio import Running
from tests.wire import Client, RequestFailed

pytestmark = pytest.mark.spread

Connect = Callable[[], AbstractAsyncContextManager[Client]]


async def fails(code: int, request: object) -> RequestFailed:
    with pytest.raises(RequestFailed) as caught:
        await request  # type: ignore[misc]
    assert caught.value.code == code, caught.value
    return caught.value


async def test_fresh_server_has_general(ann: Client) -> None:
    flows = await ann.flows()
    assert [(f["title"], f["type"], f["owner"]) for f in flows] == [("General", "group", None)]


async def test_groups_are_public(ann: Client, bob: Client) -> None:
    group = await ann.add_flow("group", "Friends")
    assert group["uuid"] in [f["uuid"] for f in await bob.flows()]
    await bob.send(group["uuid"], "bob writes too")
    assert [m["text"] for m in await ann.messages(group["uuid"])] == ["bob writes too"]


async def test_channels_are_read_by_all_and_written_by_the_owner(ann: Client, bob: Client) -> None:
    channel = await ann.add_flow("channel", "Ann's news")
    await ann.send(channel["uuid"], "news")
    assert [m["text"] for m in await bob.messages(channel["uuid"])] == ["news"]
    await fails(403, bob.send(channel["uuid"], "not mine to write"))


async def test_chats_are_private_to_their_two_members(
    ann: Client, bob: Client, connect: Connect
) -> None:
    chat = await ann.add_flow("chat", "ann+bob", users=[ann.user_id or "", bob.user_id or ""])
    await bob.send(chat["uuid"], "for ann only")
    async with connect() as eve:
        await eve.register("eve", "eve-password")
        assert chat["uuid"] not in [f["uuid"] for f in await eve.flows()]
        # reported as missing, so its existence does not leak
        await fails(404, eve.messages(chat["uuid"]))
        await fails(404, eve.send(chat["uuid"], "let me in"))
        message = (await ann.messages(chat["uuid"]))[0]
        await fails(404, eve.edit(message["uuid"], "changed"))
        await fails(404, eve.delete_message(message["uuid"]))
        assert all(m["text"] != "for ann only" for m in await eve.messages())
        assert all(f["uuid"] != chat["uuid"] for f in (await eve.update(0))["flow"])
        # a chat is created only by one of its members, and has at most two
        await fails(
            403, eve.add_flow("chat", "theirs", users=[ann.user_id or "", bob.user_id or ""])
        )
        await fails(
            400,
            eve.add_flow(
                "chat", "three", users=[ann.user_id or "", bob.user_id or "", eve.user_id or ""]
            ),
        )
        await fails(404, eve.add_flow("chat", "ghost", users=[eve.user_id or "", "999999"]))


async def test_only_the_author_edits_or_deletes(ann: Client, bob: Client) -> None:
    general = (await ann.flows())[0]["uuid"]
    sent = await ann.send(general, "ann's words")
    await fails(403, bob.edit(sent["uuid"], "bob's words"))
    await fails(403, bob.delete_message(sent["uuid"]))
    assert [m["text"] for m in await bob.messages(general)] == ["ann's words"]
    await ann.edit(sent["uuid"], "ann's better words")
    await ann.delete_message(sent["uuid"])
    await fails(404, ann.delete_message(sent["uuid"]))


async def test_delete_user_acts_only_on_oneself_and_checks_the_password(
    ann: Client, bob: Client
) -> None:
    # bob's token with ann's login and password: forbidden
    frame = {
        "type": "delete_user",
        "data": {
            "user": [
                {
                    "login": "ann",
                    "password": "ann-password",
                    "uuid": bob.user_id,
                    "auth_id": bob.token,
                }
            ]
        },
    }
    reply = await bob.request(frame)
    assert reply["errors"]["code"] == 403
    await fails(401, ann.delete_user("ann", "wrong password"))
    await fails(404, ann.delete_user("nobody", "ann-password"))
    await ann.ping()  # still there
    general = (await bob.flows())[0]["uuid"]
    await ann.send(general, "my last words")
    ann_id = ann.user_id
    await ann.delete_user("ann", "ann-password")
    messages = await bob.messages(general)  # the messages stay, credited to the deleted user
    assert [(m["text"], m["from_user"]) for m in messages] == [("my last words", ann_id)]
    await fails(404, bob.user_info(ann_id or ""))


async def test_tokens_work_only_for_their_user(ann: Client, bob: Client) -> None:
    frame = {"type": "ping_pong", "data": {"user": [{"uuid": ann.user_id, "auth_id": bob.token}]}}
    assert (await ann.request(frame))["errors"]["code"] == 401
    assert ann.token != bob.token and len(ann.token or "") >= 22


async def test_secrets_never_leave_the_server(connect: Connect) -> None:
    password = "correct horse battery staple"
    async with connect() as one, connect() as two:
        await one.register("secretive", password, email="s@example.org")
        await two.register("nosy", "nosy-password")
        general = (await one.flows())[0]["uuid"]
        await one.send(general, "hello")
        replies = [
            await two.request(
                {
                    "type": "user_info",
                    "data": {
                        "user": [{"uuid": two.user_id, "auth_id": two.token}, {"uuid": one.user_id}]
                    },
                }
            ),
            await two.request(
                {
                    "type": "get_update",
                    "data": {"time": 0, "user": [{"uuid": two.user_id, "auth_id": two.token}]},
                }
            ),
            await two.request(
                {
                    "type": "all_messages",
                    "data": {"time": 0, "user": [{"uuid": two.user_id, "auth_id": two.token}]},
                }
            ),
            await one.request(
                {
                    "type": "user_info",
                    "data": {"user": [{"uuid": one.user_id, "auth_id": one.token}]},
                }
            ),
        ]
    text = repr(replies)
    assert password not in text
    assert "argon2" not in text
    assert str(one.token) not in text
    assert "s@example.org" not in repr(replies[:3])  # another user's email stays private
    assert "s@example.org" in repr(replies[3])


@pytest.mark.one_node("reads its one server's data files")
async def test_passwords_are_stored_only_as_argon2id_hashes(
    morelia_config: object, nursery: trio.Nursery
) -> None:
    from morelia_trio import serve
    from morelia_trio.config import Config
    from tests.wire import open_client

    assert isinstance(morelia_config, Config)
    password = "a-very-particular-password"
    with trio.fail_after(20):
        async with trio.open_nursery() as inner:
            running: Running = await inner.start(serve, morelia_config)
            async with open_client(running.url) as client:
                await client.register("hashed", password)
                token = client.token or ""
            inner.cancel_scope.cancel()
    stored = b"".join(p.read_bytes() for p in morelia_config.data_dir.iterdir())
    assert password.encode() not in stored
    assert token.encode() not in stored  # tokens too are kept only as SHA-256 digests
    assert b"$argon2id$" in stored

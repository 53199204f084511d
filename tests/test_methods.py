"""Every method of the contract, in both dialects, through a real WebSocket."""

from __future__ import annotations

from typing import Any

import pytest

from tests.wire import Client

from .helpers import Frame, check_doc_reply, check_list_reply, creds, doc, exchange

pytestmark = pytest.mark.spread


async def doc_request(client: Client, type_: str, data: Frame | None, code: int = 200) -> Any:
    _, reply = await exchange(client, doc(type_, data))
    return check_doc_reply(reply, type_, code)


async def list_request(client: Client, type_: str, code: int = 200, **data: Any) -> Frame:
    _, reply = await exchange(client, {"type": type_, "data": data, "jsonapi": {"version": "1.0"}})
    return check_list_reply(reply, type_, code)


async def register_doc(client: Client, login: str) -> Client:
    data = await doc_request(
        client,
        "register_user",
        {
            "user": {
                "password": "ds45ds45fd45fd",
                "login": login,
                "email": f"{login}@example.org",
                "username": login.title(),
            },
            "meta": None,
        },
    )
    assert type(data["user"]["id"]) is int
    client.user_id, client.token = str(data["user"]["id"]), data["user"]["auth_id"]
    return client


# --- the document dialect: the seed document's own examples ---------------------------------


@pytest.mark.parametrize("login_type", ["authentication", "auth"])
async def test_doc_register_and_login(client: Client, login_type: str) -> None:
    await register_doc(client, "vasya")
    assert len(client.token or "") >= 22  # at least 128 random bits
    data = await doc_request(
        client,
        login_type,
        {
            "user": {"password": "ds45ds45fd45fd", "login": "vasya", "username": "User1"},
            "meta": None,
        },
    )
    assert data["user"]["id"] == int(client.user_id or 0)
    assert set(data["user"]) == {"id", "auth_id"}


async def test_doc_user_info(client: Client) -> None:
    await register_doc(client, "vasya")
    data = await doc_request(client, "user_info", {"user": creds(client), "meta": None})
    assert data["user"] == {
        "id": int(client.user_id or 0),
        "login": "vasya",
        "username": "Vasya",
        "email": "vasya@example.org",
        "is_bot": False,
        "bio": None,
        "avatar": None,
    }


async def test_doc_messages_flows_and_updates(client: Client) -> None:
    await register_doc(client, "vasya")
    me = creds(client)
    flows = (await doc_request(client, "all_flow", {"user": me, "meta": None}))["flow"]
    assert [(type(f["id"]), f["title"], f["type"]) for f in flows] == [(int, "General", "group")]
    general = flows[0]["id"]
    # The document's send_message example, with everything the server must ignore in it.
    sent = await doc_request(
        client,
        "send_message",
        {
            "flow": {"id": general, "time": 1594492370.5225992, "type": "chat"},
            "message": {
                "id": 858585,
                "text": "Hello!",
                "from_user": {"id": 1, "username": "User"},
                "time": 1594492370.5225992,
                "from_flow": {"id": 5656565656, "type": "chat"},
                "file": {
                    "picture": "jkfikdkdsd",
                    "video": "sdfsdfsdf",
                    "audio": "fgfsdfsdfsdf",
                    "document": "adgdfhfgth",
                },
                "emoji": "sfdfsdfsdf",
                "edited_message": {"time": 1.5, "status": True},
                "reply_to": None,
            },
            "user": me,
            "meta": None,
        },
    )
    message_id = sent["message"]["id"]
    assert type(message_id) is int and type(sent["message"]["time"]) is float

    listed = (await doc_request(client, "all_messages", {"time": 0, "user": me}))["message"]
    assert listed == [
        {
            "id": message_id,
            "text": "Hello!",
            "from_user": {"id": int(client.user_id or 0), "username": "Vasya"},
            "time": sent["message"]["time"],
            "from_flow": {"id": general, "type": "group"},
            "file": {
                "picture": "jkfikdkdsd",
                "video": "sdfsdfsdf",
                "audio": "fgfsdfsdfsdf",
                "document": "adgdfhfgth",
            },
            "emoji": "sfdfsdfsdf",
            "edited_message": None,
            "reply_to": None,
            "client_id": None,
        }
    ]

    assert (
        await doc_request(
            client,
            "edited_message",
            {
                "flow": {"id": general},
                "message": {"id": message_id, "text": "Hello, all!", "time": 1594492370.5},
                "user": me,
            },
        )
        is None
    )
    update = await doc_request(
        client,
        "get_update",
        {"time": sent["message"]["time"], "flow": {"id": general}, "user": me, "meta": None},
    )
    assert [(m["id"], m["text"], m["edited_message"]["status"]) for m in update["message"]] == [
        (message_id, "Hello, all!", True)
    ]
    assert update["message"][0]["edited_message"]["time"] >= sent["message"]["time"]

    flow = (
        await doc_request(
            client,
            "add_flow",
            {"flow": {"type": "channel", "title": "News", "info": "Only news"}, "user": me},
        )
    )["flow"]
    assert (type(flow["id"]), flow["type"], flow["owner"], flow["users"]) == (
        int,
        "channel",
        int(client.user_id or 0),
        [int(client.user_id or 0)],
    )

    assert (
        await doc_request(
            client,
            "delete_message",
            {"flow": {"id": general}, "message": {"id": message_id, "time": 1.0}, "user": me},
        )
        is None
    )
    assert (await doc_request(client, "all_messages", {"time": 0, "user": me}))["message"] == []


@pytest.mark.parametrize("type_", ["ping_pong", "ping-pong"])
async def test_doc_ping(client: Client, type_: str) -> None:
    await register_doc(client, "pinger")
    assert await doc_request(client, type_, {"user": creds(client)}) is None


async def test_doc_delete_user_needs_only_the_password(client: Client) -> None:
    await register_doc(client, "leaver")
    old = creds(client)
    user = {"password": "ds45ds45fd45fd", "login": "leaver", "username": "User1"}
    assert await doc_request(client, "delete_user", {"user": user, "meta": None}) is None
    await doc_request(client, "ping_pong", {"user": old}, code=401)  # its sessions ended
    await doc_request(client, "authentication", {"user": user}, code=404)
    await register_doc(client, "leaver")  # the login is free again; the id is new
    assert int(client.user_id or 0) != old["id"]


# --- the list dialect ------------------------------------------------------------------------


async def test_list_every_method(ann: Client, bob: Client) -> None:
    me = [{"uuid": ann.user_id, "auth_id": ann.token}]
    users = (await list_request(ann, "user_info", user=[*me, {"uuid": bob.user_id}]))["user"]
    assert [(u["login"], u["username"], u["email"]) for u in users] == [
        ("ann", "Ann", "ann@example.org"),
        ("bob", "Bob", None),
    ]  # no one else's email
    assert all(
        set(u) == {"uuid", "id", "login", "username", "email", "is_bot", "bio", "avatar"}
        for u in users
    )

    chat = (
        await list_request(
            ann,
            "add_flow",
            user=me,
            flow=[{"type": "chat", "title": "ann & bob", "users": [ann.user_id, bob.user_id]}],
        )
    )["flow"][0]
    assert sorted(chat["users"]) == sorted([str(ann.user_id), str(bob.user_id)])
    sent = (
        await list_request(
            ann,
            "send_message",
            user=me,
            flow=[{"uuid": chat["uuid"]}],
            message=[{"text": "hi bob", "client_id": "c-1", "file_picture": "cGljdHVyZQ=="}],
        )
    )["message"][0]
    assert sent["client_id"] == "c-1" and sent["from_flow"] == chat["uuid"]
    reply = await list_request(
        bob,
        "send_message",
        user=[{"uuid": bob.user_id, "auth_id": bob.token}],
        flow=[{"id": chat["id"]}],
        message=[{"text": "hi ann", "reply_to": sent["uuid"]}],
    )

    messages = (
        await list_request(ann, "all_messages", user=me, flow=[{"uuid": chat["uuid"]}], time=0)
    )["message"]
    assert [(m["text"], m["from_user"], m["reply_to"], m["file_picture"]) for m in messages] == [
        ("hi bob", ann.user_id, None, "cGljdHVyZQ=="),
        ("hi ann", bob.user_id, sent["uuid"], None),
    ]
    assert messages[1]["uuid"] == reply["message"][0]["uuid"]

    update = await list_request(ann, "get_update", user=me, time=sent["time"])
    assert {m["text"] for m in update["message"]} == {"hi bob", "hi ann"}
    assert chat["uuid"] in {f["uuid"] for f in update["flow"]}

    for type_ in ("edited_message", "edited"):
        empty = await list_request(
            ann, type_, user=me, message=[{"uuid": sent["uuid"], "text": f"{type_}!"}]
        )
        assert (empty["user"], empty["flow"], empty["message"]) == ([], [], [])
    edited = await list_request(ann, "all_messages", user=me, flow=[{"uuid": chat["uuid"]}])
    assert edited["message"][0]["text"] == "edited!"
    assert edited["message"][0]["edited_status"] is True
    assert type(edited["message"][0]["edited_time"]) is int

    flows = (
        await list_request(bob, "all_flow", user=[{"uuid": bob.user_id, "auth_id": bob.token}])
    )["flow"]
    assert [f["title"] for f in flows] == ["General", "ann & bob"]
    await list_request(ann, "delete_message", user=me, message=[{"uuid": sent["uuid"]}])
    await list_request(ann, "ping_pong", user=me)
    await list_request(ann, "ping-pong", user=me)
    await list_request(
        ann,
        "delete_user",
        user=[
            {"login": "ann", "password": "ann-password", "uuid": ann.user_id, "auth_id": ann.token}
        ],
    )
    after = (
        await list_request(
            bob,
            "all_messages",
            user=[{"uuid": bob.user_id, "auth_id": bob.token}],
            flow=[{"uuid": chat["uuid"]}],
        )
    )["message"]
    assert [(m["text"], m["from_user"]) for m in after] == [("hi ann", bob.user_id)]


async def test_get_update_returns_what_changed_since(ann: Client, bob: Client) -> None:
    general = (await ann.flows())[0]["uuid"]
    first = await ann.send(general, "first")
    second = await bob.send(general, "second")
    everything = await bob.update(0)
    assert [m["text"] for m in everything["message"]] == ["first", "second"]
    assert {u["login"] for u in everything["user"]} == {"ann", "bob"}
    later = await bob.update(second["time"] + 1)
    assert later["message"] == []
    await ann.edit(first["uuid"], "first, edited")
    edited = await bob.update(second["time"])
    assert "first, edited" in [m["text"] for m in edited["message"]]
    assert len({m["uuid"] for m in edited["message"]}) == len(edited["message"])  # no repeats


async def test_all_messages_without_flow_reads_every_readable_flow(
    ann: Client, bob: Client
) -> None:
    general = (await ann.flows())[0]["uuid"]
    chat = await ann.add_flow("chat", "private", users=[ann.user_id or "", bob.user_id or ""])
    await ann.send(general, "public")
    await ann.send(chat["uuid"], "private")
    assert [m["text"] for m in await ann.messages()] == ["public", "private"]
    assert [m["text"] for m in await ann.messages(since=10**10)] == []


async def test_register_is_200_in_the_document_dialect_and_201_in_the_list(client: Client) -> None:
    await list_request(client, "register_user", 201, user=[{"login": "l", "password": "p"}])
    await doc_request(client, "register_user", {"user": {"login": "d", "password": "p"}})


async def test_many_connections_of_one_user_share_the_state(ann: Client, connect: Any) -> None:
    general = (await ann.flows())[0]["uuid"]
    async with connect() as second:
        await second.login("ann", "ann-password")
        await second.send(general, "from the second connection")
        await ann.ping()  # the first token still works
    assert [m["text"] for m in await ann.messages(general)] == ["from the second connection"]

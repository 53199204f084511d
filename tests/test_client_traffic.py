"""The frames real MoreliaTalk clients send, verbatim, and what each reads from the reply."""
# ruff: noqa: E501  (the real clients' frames stay verbatim, one per line)

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from tests.wire import Client

from .helpers import check_list_reply, exchange

pytestmark = pytest.mark.spread

Connect = Callable[[], AbstractAsyncContextManager[Client]]

# client-traffic.md, verbatim but for the placeholders L, P, U, E, A, T, I, X, C and ids.
ANDROID_MASTER = [
    '{"type":"register_user","data":{"time":0,"user":[{"login":"L","password":"P","username":"U","email":"E"}]}}',
    '{"type":"auth","data":{"time":0,"user":[{"login":"L","password":"P"}]}}',
    '{"type":"user_info","data":{"time":0,"user":[{"uuid":9,"auth_id":"A"}]}}',
    '{"type":"all_flow","data":{"time":0,"user":[{"uuid":9,"auth_id":"A"}]}}',
    '{"type":"add_flow","data":{"time":0,"flow":[{"id":0,"type":"chat","title":"T","info":"I"}],"user":[{"uuid":9,"auth_id":"A"}]}}',
    '{"type":"send_message","data":{"time":0,"flow":[{"id":2}],"message":[{"id":0,"text":"X","time":0}],"user":[{"uuid":9,"auth_id":"A"}]}}',
    '{"type":"all_messages","data":{"time":0,"flow":[{"id":2}],"user":[{"uuid":9,"auth_id":"A"}]}}',
]
ELECTRON = [
    '{"type":"register_user","data":{"user":[{"login":"L","password":"P"}]},"errors":null,"jsonapi":null,"meta":null}',
    '{"type":"auth","data":{"user":[{"login":"L","password":"P"}]},"errors":null,"jsonapi":null,"meta":null}',
]
FLUTTER_REGISTER = '{"type":"register_user","data":{"time":null,"user":[{"uuid":null,"login":"L","username":null,"bio":null,"avatar":null,"password":"P","is_bot":null,"auth_id":null,"token_ttl":null,"email":null,"time_created":null}],"flow":null,"message":null,"meta":null},"errors":null,"jsonapi":{"version":"1.0","revision":"17"},"meta":null}'


def fill(template: str, **values: object) -> str:
    """Put real values where the placeholders are: strings by name, ids by their number."""
    for name, value in values.items():
        if name.startswith("id_"):  # id_9="12": every bare 9 used as an id
            number = name[3:]
            for key in ("uuid", "id"):
                template = template.replace(f'"{key}":{number}', f'"{key}":{value}')
        else:
            template = template.replace(f'"{name}"', json.dumps(value))
    return template


async def test_android_master_session(client: Client) -> None:
    who = {"L": "andrei", "P": "pass-word", "U": "Andrei", "E": "andrei@example.org"}
    raw, reply = await exchange(client, fill(ANDROID_MASTER[0], **who))
    user = check_list_reply(reply, "register_user", 201)["user"][0]
    uid, token = user["uuid"], user["auth_id"]
    assert "\\u" not in raw

    _, reply = await exchange(client, fill(ANDROID_MASTER[1], **who))
    logged_in = check_list_reply(reply, "auth", 200)["user"][0]
    assert logged_in["uuid"] == uid and logged_in["auth_id"] != token

    ids = {"A": token, "id_9": int(uid)}
    _, reply = await exchange(client, fill(ANDROID_MASTER[2], **ids))
    profile = check_list_reply(reply, "user_info", 200)["user"][0]
    assert profile["login"] == "andrei" and profile["email"] == "andrei@example.org"

    _, reply = await exchange(client, fill(ANDROID_MASTER[3], **ids))
    flows = check_list_reply(reply, "all_flow", 200)["flow"]
    assert [f["title"] for f in flows] == ["General"]

    _, reply = await exchange(client, fill(ANDROID_MASTER[4], T="Notes", I="mine", **ids))
    chat = check_list_reply(reply, "add_flow", 200)["flow"][0]
    assert (chat["type"], chat["title"], chat["info"]) == ("chat", "Notes", "mine")
    assert chat["users"] == [uid] and chat["owner"] == uid

    text = 'Привет, "мир" 👋'
    _, reply = await exchange(
        client, fill(ANDROID_MASTER[5], X=text, **ids).replace('"id":2', f'"id":{chat["id"]}')
    )
    sent = check_list_reply(reply, "send_message", 200)["message"][0]

    raw, reply = await exchange(
        client, fill(ANDROID_MASTER[6], **ids).replace('"id":2', f'"id":{chat["id"]}')
    )
    messages = check_list_reply(reply, "all_messages", 200)["message"]
    assert "Привет" in raw and "\\u" not in raw  # non-ASCII written raw, never escaped
    assert [
        (m["uuid"], m["text"], m["from_user"], m["from_user_uuid"], m["from_flow_id"])
        for m in messages
    ] == [(sent["uuid"], text, uid, uid, chat["id"])]


async def test_android_develop_string_ids_and_second_connection(
    client: Client, connect: Connect
) -> None:
    """develop sends ids as strings, names flows by uuid, and logs in again on a second
    connection for a chat window while the first keeps its token."""
    uid = await client.register("dev", "pw")
    first_token = client.token
    general = (await client.flows())[0]["uuid"]
    async with connect() as window:
        await window.login("dev", "pw")
        frame = {
            "type": "send_message",
            "data": {
                "time": 0,
                "flow": [{"uuid": general}],
                "message": [{"text": "from the window", "time": 0}],
                "user": [{"uuid": uid, "auth_id": window.token}],
            },
        }
        _, reply = await exchange(window, frame)
        check_list_reply(reply, "send_message", 200)
    frame = {
        "type": "user_info",
        "data": {"time": 0, "user": [{"uuid": uid, "auth_id": first_token}, {"uuid": uid}]},
    }
    _, reply = await exchange(client, frame)
    users = check_list_reply(reply, "user_info", 200)["user"]
    assert [u["uuid"] for u in users] == [uid, uid]
    assert users[0]["email"] is None or "@" in users[0]["email"]
    frame = {
        "type": "all_messages",
        "data": {
            "time": 0,
            "flow": [{"uuid": general}],
            "user": [{"uuid": uid, "auth_id": first_token}],
        },
    }
    _, reply = await exchange(client, frame)
    assert [m["text"] for m in check_list_reply(reply, "all_messages", 200)["message"]] == [
        "from the window"
    ]


async def test_electron_register_and_login(client: Client) -> None:
    who = {"L": "electron", "P": "secret"}
    _, reply = await exchange(client, fill(ELECTRON[0], **who))
    registered = check_list_reply(reply, "register_user", 201)["user"][0]
    _, reply = await exchange(client, fill(ELECTRON[1], **who))
    assert check_list_reply(reply, "auth", 200)["user"][0]["uuid"] == registered["uuid"]
    _, reply = await exchange(client, fill(ELECTRON[0], **who))
    check_list_reply(reply, "register_user", 409)  # Electron shows "login taken"
    _, reply = await exchange(client, fill(ELECTRON[1], L="electron", P="wrong"))
    check_list_reply(reply, "auth", 401)
    _, reply = await exchange(client, fill(ELECTRON[1], L="nobody", P="secret"))
    check_list_reply(reply, "auth", 404)


async def test_flutter_every_request(connect: Connect) -> None:
    """Flutter sends every key, nulls included, one request per connection."""

    async def once(frame: dict[str, object] | str) -> dict[str, object]:
        async with connect() as fresh:
            return (await exchange(fresh, frame))[1]

    reply = await once(fill(FLUTTER_REGISTER, L="flutter", P="pw"))
    user = check_list_reply(reply, "register_user", 201)["user"][0]
    me = {
        "uuid": user["uuid"],
        "login": None,
        "username": None,
        "bio": None,
        "avatar": None,
        "password": None,
        "is_bot": None,
        "auth_id": user["auth_id"],
        "token_ttl": None,
        "email": None,
        "time_created": None,
    }

    def frame(type_: str, **data: object) -> dict[str, object]:
        body: dict[str, object] = {
            "time": None,
            "user": [me],
            "flow": None,
            "message": None,
            "meta": None,
        }
        body.update(data)
        return {
            "type": type_,
            "data": body,
            "errors": None,
            "jsonapi": {"version": "1.0", "revision": "17"},
            "meta": None,
        }

    reply = await once(
        frame(
            "authentication", user=[{**me, "login": "flutter", "password": "pw", "auth_id": None}]
        )
    )
    check_list_reply(reply, "authentication", 200)
    flow_id = check_list_reply(await once(frame("all_flow")), "all_flow", 200)["flow"][0]["uuid"]
    group = check_list_reply(
        await once(
            frame(
                "add_flow",
                flow=[
                    {
                        "type": "group",
                        "title": "Flutter devs",
                        "info": None,
                        "owner": user["uuid"],
                        "users": [user["uuid"]],
                    }
                ],
            )
        ),
        "add_flow",
        200,
    )["flow"][0]
    assert group["type"] == "group" and group["owner"] == user["uuid"]
    sent = check_list_reply(
        await once(
            frame(
                "send_message",
                time=0,
                flow=[{"uuid": flow_id}],
                message=[{"client_id": 77, "text": "hi"}],
            )
        ),
        "send_message",
        200,
    )["message"][0]
    assert sent["client_id"] == 77  # as sent: its schema wants an integer back
    messages = check_list_reply(
        await once(frame("all_messages", time=0, flow=[{"uuid": flow_id}])), "all_messages", 200
    )["message"]
    assert [m["text"] for m in messages] == ["hi"]
    assert [m["client_id"] for m in messages] == [77]
    update = check_list_reply(await once(frame("get_update", time=0)), "get_update", 200)
    assert [m["uuid"] for m in update["message"]] == [sent["uuid"]]
    assert [m["client_id"] for m in update["message"]] == [77]
    assert {f["uuid"] for f in update["flow"]} == {flow_id, group["uuid"]}
    check_list_reply(
        await once(frame("edited_message", message=[{"uuid": sent["uuid"], "text": "hi there"}])),
        "edited_message",
        200,
    )
    check_list_reply(
        await once(frame("user_info", user=[me, {"uuid": user["uuid"]}])), "user_info", 200
    )
    check_list_reply(await once(frame("ping_pong")), "ping_pong", 200)
    check_list_reply(
        await once(
            frame("delete_message", flow=[{"uuid": flow_id}], message=[{"uuid": sent["uuid"]}])
        ),
        "delete_message",
        200,
    )
    messages = check_list_reply(
        await once(frame("all_messages", time=0, flow=[{"uuid": flow_id}])), "all_messages", 200
    )["message"]
    assert messages == []
    check_list_reply(
        await once(
            frame(
                "delete_user",
                user=[
                    {
                        "login": "flutter",
                        "password": "pw",
                        "uuid": user["uuid"],
                        "auth_id": user["auth_id"],
                    }
                ],
            )
        ),
        "delete_user",
        200,
    )
    check_list_reply(await once(frame("ping_pong")), "ping_pong", 401)

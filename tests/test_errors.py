"""Every error row of CONTRACT §6, through a real WebSocket, in both dialects.

Each bad frame must earn exactly one reply with the right code, status and reply shape, a
plain-words detail, and leave the connection answering the next good request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed

from morelia_trio import handlers
from morelia_trio.auth import new_token
from morelia_trio.config import Config, Limits
from tests.wire import Client

from .helpers import Frame, check_doc_reply, check_list_reply, creds, doc, exchange

pytestmark = pytest.mark.spread

Connect = Callable[[], AbstractAsyncContextManager[Client]]

DOC, LIST = "document", "list"
DIALECTS = [DOC, LIST]
ERRORS = "errors"
LIMITS = Limits()
MIB = 1024 * 1024

STATUS = {
    200: "OK",
    201: "Created",
    206: "Partial Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    505: "Version Not Supported",
}
# Words that would betray a traceback or a library's own message in a detail.
LEAKS = ("Traceback", "msgspec", "`$", "Expected `", 'File "', "Error(")


# --- building frames --------------------------------------------------------------------------


def req(dialect: str, type_: str, **data: Any) -> Frame:
    """A request in either dialect: the list dialect wraps every object in a one-item array."""
    if dialect == LIST:
        listed = {k: [v] if isinstance(v, dict) else v for k, v in data.items()}
        return {"type": type_, "data": listed, "jsonapi": {"version": "1.0"}, "meta": None}
    return doc(type_, data)


def me(client: Client, dialect: str) -> Frame:
    """The client's token, as each dialect writes it."""
    if dialect == DOC:
        return creds(client)
    return {"uuid": client.user_id, "auth_id": client.token}


def ref(id_: str | int, dialect: str) -> Frame:
    """A reference to a flow or message: an integer id, or a numeric-string uuid."""
    return {"id": int(id_)} if dialect == DOC else {"uuid": str(id_)}


# --- checking replies -------------------------------------------------------------------------


def plain(reply: Frame) -> str:
    detail = reply["errors"]["detail"]
    assert isinstance(detail, str) and detail.strip(), reply
    for leak in LEAKS:
        assert leak not in detail, detail
    return detail


def check(reply: Frame, dialect: str, type_: str, code: int) -> Frame:
    if dialect == LIST:
        check_list_reply(reply, type_, code)
    else:
        check_doc_reply(reply, type_, code)
    assert reply["errors"]["status"] == STATUS[code], reply["errors"]
    if code >= 400:
        plain(reply)
        if dialect == DOC:
            assert reply["data"] is None
        else:
            assert (reply["data"]["user"], reply["data"]["flow"], reply["data"]["message"]) == (
                [],
                [],
                [],
            )
    return reply


async def expect(
    client: Client, frame: str | bytes | Frame, dialect: str, type_: str, code: int
) -> Frame:
    """Send one frame and check its one reply."""
    _, reply = await exchange(client, frame)
    return check(reply, dialect, type_, code)


async def still_serving(client: Client) -> None:
    """The connection answers a good request after whatever came before."""
    _, reply = await exchange(client, req(LIST, "ping_pong", user=me(client, LIST)))
    check(reply, LIST, "ping_pong", 200)
    assert reply["errors"]["detail"] == "successfully"


async def bad(
    client: Client, frame: str | bytes | Frame, dialect: str, type_: str, code: int
) -> str:
    """A bad frame: its error reply, then proof the connection lives on. Returns the detail."""
    reply = await expect(client, frame, dialect, type_, code)
    await still_serving(client)
    return str(reply["errors"]["detail"])


async def general_id(client: Client) -> str:
    flows = await client.flows()
    assert flows[0]["title"] == "General"
    return str(flows[0]["uuid"])


# --- 400 Bad Request --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "",
        " ",
        "{",
        '{"type": "ping_pong"',
        '{"type": "ping_pong"} trailing',
        "{'type': 'ping_pong'}",
        '{"type": "ping_pong",}',
        "NaN",
        "\ufeff{}",
    ],
)
async def test_400_non_json_text(ann: Client, text: str) -> None:
    detail = await bad(ann, text, DOC, ERRORS, 400)
    assert "JSON" in detail


@pytest.mark.parametrize(
    "text", ["[]", '[{"type": "ping_pong"}]', "5", "-1.5", '"ping_pong"', "null", "true"]
)
async def test_400_json_that_is_not_an_object(ann: Client, text: str) -> None:
    detail = await bad(ann, text, DOC, ERRORS, 400)
    assert "object" in detail


@pytest.mark.parametrize("frame", [b'{"type": "ping_pong"}', b"\x00\xff\xfe", b""])
async def test_400_binary_frame(ann: Client, frame: bytes) -> None:
    detail = await bad(ann, frame, DOC, ERRORS, 400)
    assert "text" in detail.lower() or "binary" in detail.lower()


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("type_", ["no_such_method", "PING_PONG", "пинг", "errors", ""])
async def test_400_unknown_type_echoes_the_type(ann: Client, dialect: str, type_: str) -> None:
    raw, reply = await exchange(ann, req(dialect, type_, user=me(ann, dialect)))
    check(reply, dialect, type_, 400)
    assert "\\u" not in raw  # the echoed type is written raw, like every non-ASCII text
    await still_serving(ann)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_400_unknown_type_with_invalid_fields_still_echoes_the_type(
    ann: Client, dialect: str
) -> None:
    frame = req(dialect, "no_such_method", user=me(ann, dialect), time="soon")
    await bad(ann, frame, dialect, "no_such_method", 400)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_400_semantically_impossible_a_chat_of_three(
    ann: Client, bob: Client, connect: Connect, dialect: str
) -> None:
    async with connect() as eve:
        await eve.register("eve", "eve-password")
        members = [ann.user_id, bob.user_id, eve.user_id]
        flow = {"type": "chat", "title": "three", "users": [ref(m or "", dialect) for m in members]}
        await bad(
            ann,
            req(dialect, "add_flow", user=me(ann, dialect), flow=flow),
            dialect,
            "add_flow",
            400,
        )


# --- 401 Unauthorized -------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("type_", ["ping_pong", "all_flow", "all_messages", "user_info"])
async def test_401_no_user(ann: Client, dialect: str, type_: str) -> None:
    frame = req(dialect, type_, user=[]) if dialect == LIST else doc(type_, None)
    await bad(ann, frame, dialect, type_, 401)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_401_user_without_auth_id(ann: Client, dialect: str) -> None:
    user = me(ann, dialect)
    del user["auth_id"]
    await bad(ann, req(dialect, "ping_pong", user=user), dialect, "ping_pong", 401)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("token", ["wrong", "", "0" * 43])
async def test_401_wrong_auth_id(ann: Client, dialect: str, token: str) -> None:
    user = {**me(ann, dialect), "auth_id": token}
    detail = await bad(ann, req(dialect, "ping_pong", user=user), dialect, "ping_pong", 401)
    assert token == "" or token not in detail


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_401_auth_id_of_another_user(ann: Client, bob: Client, dialect: str) -> None:
    user = {**me(ann, dialect), "auth_id": bob.token}
    general = await general_id(ann)
    frame = req(
        dialect, "send_message", user=user, flow=ref(general, dialect), message={"text": "hi"}
    )
    detail = await bad(ann, frame, dialect, "send_message", 401)
    assert str(bob.token) not in detail
    assert await ann.messages(general) == []


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("type_", ["auth", "authentication", "delete_user"])
async def test_401_wrong_password(ann: Client, dialect: str, type_: str) -> None:
    user = {"login": "ann", "password": "not-ann-password"}
    detail = await bad(ann, req(dialect, type_, user=user), dialect, type_, 401)
    assert "not-ann-password" not in detail and "ann-password" not in detail
    await ann.login("ann", "ann-password")  # the account is untouched


# --- 403 Forbidden ----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_403_writing_to_someone_elses_channel(ann: Client, bob: Client, dialect: str) -> None:
    channel = await ann.add_flow("channel", "Ann's news")
    frame = req(
        dialect,
        "send_message",
        user=me(bob, dialect),
        flow=ref(channel["uuid"], dialect),
        message={"text": "not mine to write"},
    )
    await bad(bob, frame, dialect, "send_message", 403)
    assert await bob.messages(channel["uuid"]) == []


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_403_editing_or_deleting_anothers_message(
    ann: Client, bob: Client, dialect: str
) -> None:
    general = await general_id(ann)
    sent = await ann.send(general, "ann's words")
    edit = req(
        dialect,
        "edited_message",
        user=me(bob, dialect),
        message={**ref(sent["uuid"], dialect), "text": "bob's words"},
    )
    await bad(bob, edit, dialect, "edited_message", 403)
    delete = req(
        dialect, "delete_message", user=me(bob, dialect), message=ref(sent["uuid"], dialect)
    )
    await bad(bob, delete, dialect, "delete_message", 403)
    assert [m["text"] for m in await ann.messages(general)] == ["ann's words"]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_403_delete_user_with_another_users_token(
    ann: Client, bob: Client, dialect: str
) -> None:
    user = {**me(bob, dialect), "login": "ann", "password": "ann-password"}
    await bad(bob, req(dialect, "delete_user", user=user), dialect, "delete_user", 403)
    await still_serving(ann)  # ann's account and session survive
    await ann.login("ann", "ann-password")


# --- 404 Not Found ----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("type_", ["auth", "authentication", "delete_user"])
async def test_404_unknown_login(ann: Client, dialect: str, type_: str) -> None:
    user = {"login": "nobody-at-all", "password": "whatever"}
    await bad(ann, req(dialect, type_, user=user), dialect, type_, 404)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_404_unknown_flow(ann: Client, dialect: str) -> None:
    flow = ref(999_999, dialect)
    send = req(dialect, "send_message", user=me(ann, dialect), flow=flow, message={"text": "x"})
    await bad(ann, send, dialect, "send_message", 404)
    for type_ in ("all_messages", "get_update"):
        frame = req(dialect, type_, user=me(ann, dialect), flow=flow, time=0)
        await bad(ann, frame, dialect, type_, 404)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_404_unknown_message(ann: Client, dialect: str) -> None:
    message = ref(999_999, dialect)
    edit = req(dialect, "edited_message", user=me(ann, dialect), message={**message, "text": "y"})
    await bad(ann, edit, dialect, "edited_message", 404)
    delete = req(dialect, "delete_message", user=me(ann, dialect), message=message)
    await bad(ann, delete, dialect, "delete_message", 404)
    general = await general_id(ann)
    reply = req(
        dialect,
        "send_message",
        user=me(ann, dialect),
        flow=ref(general, dialect),
        message={"text": "re: nothing", "reply_to": message.get("id", "999999")},
    )
    await bad(ann, reply, dialect, "send_message", 404)


async def test_404_unknown_user_in_user_info(ann: Client) -> None:
    # only the list dialect can name other users: data.user is then an array
    frame = req(LIST, "user_info", user=[me(ann, LIST), {"uuid": "999999"}])
    detail = await bad(ann, frame, LIST, "user_info", 404)
    assert "user[1]" in detail and "999999" not in detail


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_404_not_403_for_a_private_chat_of_others(
    ann: Client, bob: Client, connect: Connect, dialect: str
) -> None:
    chat = await ann.add_flow("chat", "ann+bob", users=[ann.user_id or "", bob.user_id or ""])
    sent = await bob.send(chat["uuid"], "for ann only")
    async with connect() as eve:
        await eve.register("eve", "eve-password")
        user, flow, message = (
            me(eve, dialect),
            ref(chat["uuid"], dialect),
            ref(sent["uuid"], dialect),
        )
        frames = {
            "send_message": req(
                dialect, "send_message", user=user, flow=flow, message={"text": "let me in"}
            ),
            "all_messages": req(dialect, "all_messages", user=user, flow=flow, time=0),
            "get_update": req(dialect, "get_update", user=user, flow=flow, time=0),
            "edited_message": req(
                dialect, "edited_message", user=user, message={**message, "text": "changed"}
            ),
            "delete_message": req(dialect, "delete_message", user=user, message=message),
        }
        for type_, frame in frames.items():
            await bad(eve, frame, dialect, type_, 404)
    assert [m["text"] for m in await ann.messages(chat["uuid"])] == ["for ann only"]


# --- 409 Conflict -----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_409_login_taken(ann: Client, dialect: str) -> None:
    user = {"login": "ann", "password": "another-password"}
    detail = await bad(ann, req(dialect, "register_user", user=user), dialect, "register_user", 409)
    assert "another-password" not in detail
    fresh = {"login": f"ann-{dialect}", "password": "pw"}
    await expect(
        ann,
        req(dialect, "register_user", user=fresh),
        dialect,
        "register_user",
        201 if dialect == LIST else 200,
    )
    await ann.login("ann", "ann-password")  # the original account kept its password


# --- 413 Payload Too Large --------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_413_message_text_above_the_limit(ann: Client, dialect: str) -> None:
    general = await general_id(ann)
    flow = ref(general, dialect)

    def send(text: str) -> Frame:
        return req(
            dialect, "send_message", user=me(ann, dialect), flow=flow, message={"text": text}
        )

    assert LIMITS.max_text_chars == 10_000
    detail = await bad(ann, send("я" * 10_001), dialect, "send_message", 413)
    assert "message.text" in detail
    await expect(ann, send("я" * 10_000), dialect, "send_message", 200)
    sent = await ann.messages(general)
    assert [len(m["text"]) for m in sent] == [10_000]
    edit = req(
        dialect,
        "edited_message",
        user=me(ann, dialect),
        message={**ref(sent[0]["uuid"], dialect), "text": "x" * 10_001},
    )
    await bad(ann, edit, dialect, "edited_message", 413)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("kind", ["picture", "document"])
async def test_413_attachment_above_the_limit(ann: Client, dialect: str, kind: str) -> None:
    general = await general_id(ann)
    blob = "A" * (LIMITS.max_attachment_chars + 1)
    message = {f"file_{kind}": blob} if dialect == LIST else {"file": {kind: blob}}
    frame = req(
        dialect, "send_message", user=me(ann, dialect), flow=ref(general, dialect), message=message
    )
    assert len(msgspec.json.encode(frame)) < LIMITS.max_frame_bytes  # a reply, not a close
    detail = await bad(ann, frame, dialect, "send_message", 413)
    assert kind in detail
    assert await ann.messages(general) == []


# --- 415 Unsupported Media Type ---------------------------------------------------------------

# name -> (type, data, field named in the document dialect, field named in the list dialect);
# data is built per dialect by a function of (ann's credentials, the General flow's reference).
Case = tuple[str, Callable[[Frame, Frame], Frame], str, str]


def _picture_with_byte(value: int, user: Frame, flow: Frame) -> Frame:
    return {"user": user, "flow": flow, "message": {"text": "x", "file_picture": [1, value]}}


CASES_415: dict[str, Case] = {
    "login of the wrong type": (
        "register_user",
        lambda user, flow: {"user": {"login": 12345, "password": "pw"}},
        "user.login",
        "user[0].login",
    ),
    "password missing": (
        "register_user",
        lambda user, flow: {"user": {"login": "zed"}},
        "user.password",
        "user.password",
    ),
    "login null": (
        "register_user",
        lambda user, flow: {"user": {"login": None, "password": "pw"}},
        "user.login",
        "user.login",
    ),
    "auth password empty": (
        "auth",
        lambda user, flow: {"user": {"login": "ann", "password": ""}},
        "user.password",
        "user.password",
    ),
    "text of the wrong type": (
        "send_message",
        lambda user, flow: {"user": user, "flow": flow, "message": {"text": 5}},
        "message.text",
        "message[0].text",
    ),
    "message missing": (
        "send_message",
        lambda user, flow: {"user": user, "flow": flow},
        "message",
        "message",
    ),
    "message without text or attachment": (
        "send_message",
        lambda user, flow: {"user": user, "flow": flow, "message": {"text": None}},
        "message.text",
        "message.text",
    ),
    "flow null": (
        "send_message",
        lambda user, flow: {"user": user, "flow": None, "message": {"text": "x"}},
        "flow.id",
        "flow.id",
    ),
    "flow id not numeric": (
        "send_message",
        lambda user, flow: {"user": user, "flow": {"id": "general"}, "message": {"text": "x"}},
        "flow.id",
        "flow.id",
    ),
    "flow id negative": (
        "all_messages",
        lambda user, flow: {"user": user, "flow": {"id": -3}},
        "flow.id",
        "flow.id",
    ),
    "reply_to not numeric": (
        "send_message",
        lambda user, flow: {
            "user": user,
            "flow": flow,
            "message": {"text": "x", "reply_to": "the last one"},
        },
        "message.reply_to",
        "message.reply_to",
    ),
    "user id not numeric": (
        "ping_pong",
        lambda user, flow: {"user": {"id": "ann", "uuid": "ann", "auth_id": user["auth_id"]}},
        "user.id",
        "user.id",
    ),
    "message id not numeric": (
        "delete_message",
        lambda user, flow: {"user": user, "message": {"id": "first", "uuid": "first"}},
        "message.id",
        "message.id",
    ),
    "edit without text": (
        "edited_message",
        lambda user, flow: {"user": user, "message": {"id": "1", "text": None}},
        "message.text",
        "message.text",
    ),
    "flow type not chat, group or channel": (
        "add_flow",
        lambda user, flow: {"user": user, "flow": {"type": "dm", "title": "x"}},
        "flow.type",
        "flow.type",
    ),
    "flow title missing": (
        "add_flow",
        lambda user, flow: {"user": user, "flow": {"type": "group"}},
        "flow.title",
        "flow.title",
    ),
    "flow member not an id": (
        "add_flow",
        lambda user, flow: {
            "user": user,
            "flow": {"type": "group", "title": "x", "users": ["ann"]},
        },
        "flow.users[0]",
        "flow.users[0]",
    ),
    # Bytes as an array of integers (the Flutter client's way): each must be a byte. A number
    # past 2**64 once reached the journal, which cannot encode it, and stopped the server.
    **{
        f"attachment byte {value}": (
            "send_message",
            partial(_picture_with_byte, value),
            "message.file_picture[1] must be a whole number at ",
            "file_picture[1] must be a whole number at ",
        )
        for value in (256, -1, 2**70)
    },
    "time of the wrong type": (
        "all_messages",
        lambda user, flow: {"user": user, "time": "yesterday"},
        "time",
        "time",
    ),
    "auth_id of the wrong type": (
        "ping_pong",
        lambda user, flow: {"user": {**user, "auth_id": {"token": "x"}}},
        "auth_id",
        "auth_id",
    ),
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("case", sorted(CASES_415))
async def test_415_the_object_fails_validation(ann: Client, dialect: str, case: str) -> None:
    type_, build, doc_field, list_field = CASES_415[case]
    general = await general_id(ann)
    frame = req(dialect, type_, **build(me(ann, dialect), ref(general, dialect)))
    detail = await bad(ann, frame, dialect, type_, 415)
    assert (doc_field if dialect == DOC else list_field) in detail, detail
    assert await ann.messages(general) == []  # nothing half-done


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("type_", [5, None, True, ["ping_pong"], {"name": "ping_pong"}, "MISSING"])
async def test_415_type_not_a_string_replies_errors(
    ann: Client, dialect: str, type_: object
) -> None:
    frame = req(dialect, "ping_pong", user=me(ann, dialect))
    if type_ == "MISSING":
        del frame["type"]
    else:
        frame["type"] = type_
    detail = await bad(ann, frame, dialect, ERRORS, 415)
    assert "type" in detail


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("data", [5, "data", [], True])
async def test_415_data_not_an_object(ann: Client, dialect: str, data: object) -> None:
    frame = req(dialect, "ping_pong", user=me(ann, dialect))
    frame["data"] = data
    # with data no object, nothing can be an array inside it: the document dialect it is
    detail = await bad(ann, frame, DOC, "ping_pong", 415)
    assert "data" in detail


# --- 429 Too Many Requests --------------------------------------------------------------------


async def test_429_user_info_naming_101_other_users(ann: Client, bob: Client) -> None:
    assert LIMITS.max_named_users == 100
    named = [{"uuid": bob.user_id}] * 100
    reply = await expect(
        ann, req(LIST, "user_info", user=[me(ann, LIST), *named]), LIST, "user_info", 200
    )
    assert [u["login"] for u in reply["data"]["user"]] == ["ann"] + ["bob"] * 100
    frame = req(LIST, "user_info", user=[me(ann, LIST), *named, {"uuid": bob.user_id}])
    detail = await bad(ann, frame, LIST, "user_info", 429)
    assert "100" in detail


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_429_add_flow_naming_101_members(ann: Client, dialect: str) -> None:
    flow = {"type": "group", "title": "crowd", "users": [ref(ann.user_id or "", dialect)] * 101}
    await bad(
        ann, req(dialect, "add_flow", user=me(ann, dialect), flow=flow), dialect, "add_flow", 429
    )
    assert [f["title"] for f in await ann.flows()] == ["General"]


# --- 206 Partial Content ----------------------------------------------------------------------


@pytest.fixture
def morelia_config(request: pytest.FixtureRequest, morelia_config: Config) -> Config:
    """The server of a test using ``capped``: all_messages and get_update hold 3 items."""
    if "capped" not in request.fixturenames:
        return morelia_config
    return msgspec.structs.replace(morelia_config, limits=Limits(reply_cap=3))


@pytest.fixture
def capped(connect: Connect) -> Connect:
    """Connections to a server whose all_messages and get_update replies hold 3 items."""
    return connect


async def five_messages(client: Client) -> tuple[str, list[str]]:
    await client.register("pager", "pager-password")
    general = await general_id(client)
    for n in range(5):
        await client.send(general, f"m{n}")
    return general, [f"m{n}" for n in range(5)]


@pytest.mark.parametrize("named_flow", [True, False])
async def test_206_all_messages_sends_the_oldest_then_the_rest(
    capped: Connect, named_flow: bool
) -> None:
    async with capped() as client:
        general, texts = await five_messages(client)
        flow = {"flow": {"id": int(general)}} if named_flow else {}
        first = await expect(
            client,
            req(DOC, "all_messages", user=creds(client), time=0, **flow),
            DOC,
            "all_messages",
            206,
        )
        page = first["data"]["message"]
        assert [m["text"] for m in page] == texts[:3]
        last = page[-1]["time"]
        assert type(last) is float
        # "ask again from the last time received": time >= last, so the last one comes again
        second = await expect(
            client,
            req(DOC, "all_messages", user=creds(client), time=last, **flow),
            DOC,
            "all_messages",
            200,
        )
        assert [m["text"] for m in second["data"]["message"]] == texts[2:]
        await still_serving(client)


async def start_of_a_second() -> None:
    """Keep what follows (a few quick requests) inside one wall-clock second."""
    if time.time() % 1 > 0.5:
        await trio.sleep(1 - time.time() % 1)


async def test_206_in_the_list_dialect_never_splits_a_second(capped: Connect) -> None:
    # List-dialect times are whole seconds, and the client asks again from the last one
    # received: a page cut inside a second could repeat forever. So it takes the whole second.
    async with capped() as client:
        await client.register("pager", "pager-password")
        general = await general_id(client)
        await start_of_a_second()
        texts = [(await client.send(general, f"m{n}"))["uuid"] for n in range(5)]
        frame = req(LIST, "all_messages", user=me(client, LIST), flow={"uuid": general}, time=0)
        reply = await expect(client, frame, LIST, "all_messages", 200)
        assert [m["uuid"] for m in reply["data"]["message"]] == texts
        assert len({m["time"] for m in reply["data"]["message"]}) == 1


async def test_206_get_update(capped: Connect) -> None:
    async with capped() as client:
        await five_messages(client)
        frame = req(DOC, "get_update", user=me(client, DOC), time=0)
        reply = await expect(client, frame, DOC, "get_update", 206)
        data = reply["data"]
        assert len(data["user"]) + len(data["flow"]) + len(data["message"]) == 3


async def test_206_get_update_in_the_list_dialect_never_splits_a_second(
    capped: Connect,
) -> None:
    async with capped() as client:
        await start_of_a_second()
        await five_messages(client)  # the user, and five messages, all in one second
        frame = req(LIST, "get_update", user=me(client, LIST), time=0)
        reply = await expect(client, frame, LIST, "get_update", 200)
        data = reply["data"]
        assert [m["text"] for m in data["message"]] == [f"m{n}" for n in range(5)]
        assert [u["login"] for u in data["user"]] == ["pager"]


async def test_206_list_dialect_pages_reach_the_end(capped: Connect) -> None:
    async with capped() as client:
        await client.register("pager", "pager-password")
        general = await general_id(client)
        await start_of_a_second()
        sent = [(await client.send(general, f"m{n}"))["uuid"] for n in range(5)]
        seen: list[str] = []
        since = 0
        for _ in range(5):
            frame = req(
                LIST, "all_messages", user=me(client, LIST), flow={"uuid": general}, time=since
            )
            _, reply = await exchange(client, frame)
            messages = reply["data"]["message"]
            seen += [m["uuid"] for m in messages if m["uuid"] not in seen]
            if reply["errors"]["code"] == 200:
                break
            since = messages[-1]["time"]
        assert seen == sent


# --- 500 Internal Server Error ----------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_500_a_bug_answers_500_and_the_connection_lives_on(
    ann: Client, dialect: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = new_token
    calls: list[int] = []

    def broken_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom: internal secret state")
        return real()

    monkeypatch.setattr(handlers, "new_token", broken_once)
    frame = req(dialect, "auth", user={"login": "ann", "password": "ann-password"})
    with caplog.at_level(logging.ERROR):
        detail = await bad(ann, frame, dialect, "auth", 500)
    assert "boom" not in detail and "RuntimeError" not in detail
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert len(logged) == 1  # the traceback goes to the log, not to the client
    reply = await expect(ann, frame, dialect, "auth", 200)  # the same request works again
    assert reply["data"]["user"]


# --- 505 Version Not Supported ----------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("version", [2.0, "2.0", 2, "2", 0.9, "3.1", "0"])
async def test_505_major_version_not_1(ann: Client, dialect: str, version: object) -> None:
    frame = req(dialect, "ping_pong", user=me(ann, dialect))
    frame["jsonapi"] = {"version": version}
    await bad(ann, frame, dialect, "ping_pong", 505)


MISSING = object()


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "jsonapi",
    [
        {"version": 1.0},
        {"version": "1.0"},
        {"version": "1.0", "revision": "17"},
        {"version": 1},
        {"version": "1"},
        {"version": "1.1"},
        {"version": None},
        {},
        None,
        MISSING,
    ],
)
async def test_505_not_for_version_1_in_any_spelling(
    ann: Client, dialect: str, jsonapi: object
) -> None:
    frame = req(dialect, "ping_pong", user=me(ann, dialect))
    if jsonapi is MISSING:
        del frame["jsonapi"]
    else:
        frame["jsonapi"] = jsonapi
    await expect(ann, frame, dialect, "ping_pong", 200)


# --- 1009: a frame above the size limit ------------------------------------------------------


def padded_ping(client: Client, size: int, pad: str = "x") -> str:
    """A list-dialect ping_pong of exactly ``size`` UTF-8 bytes, padded in an unknown key."""
    head = msgspec.json.encode(req(LIST, "ping_pong", user=me(client, LIST)))[:-1]
    head += b',"pad":"'
    room = size - len(head) - 2
    count, rest = divmod(room, len(pad.encode()))
    frame = (head + (pad * count + "x" * rest).encode() + b'"}').decode()
    assert len(frame.encode()) == size
    return frame


async def send_and_receive(client: Client, frame: str) -> None:
    await client.ws.send_message(frame)
    await client.ws.get_message()


async def test_frame_of_exactly_the_limit_is_answered(ann: Client) -> None:
    await expect(ann, padded_ping(ann, LIMITS.max_frame_bytes), LIST, "ping_pong", 200)


async def test_1009_frame_above_the_limit_closes_only_that_connection(
    ann: Client, connect: Connect
) -> None:
    async with connect() as big:
        await big.login("ann", "ann-password")
        with pytest.raises(ConnectionClosed) as closed:
            await send_and_receive(big, padded_ping(big, LIMITS.max_frame_bytes + 1))
        reason = closed.value.reason
        assert reason is not None and reason.code == 1009
    await still_serving(ann)  # every other connection keeps being served
    async with connect() as fresh:
        await fresh.login("ann", "ann-password")
        await still_serving(fresh)


async def test_1009_limit_is_in_bytes_not_characters(ann: Client, connect: Connect) -> None:
    async with connect() as big:
        await big.login("ann", "ann-password")
        frame = padded_ping(big, MIB + MIB // 2, pad="я")
        assert len(frame) < MIB < len(frame.encode())
        with pytest.raises(ConnectionClosed) as closed:
            await send_and_receive(big, frame)
        reason = closed.value.reason
        assert reason is not None and reason.code == 1009
    await still_serving(ann)


# --- numbers the server cannot hold ----------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_huge_numeric_string_id_is_a_client_error(ann: Client, dialect: str) -> None:
    user = {"uuid": "1" * 5000, "id": "1" * 5000, "auth_id": ann.token}
    _, reply = await exchange(ann, req(dialect, "ping_pong", user=user))
    await still_serving(ann)
    assert reply["type"] == "ping_pong"
    assert reply["errors"]["code"] in {401, 404, 415}


async def test_huge_version_number_is_505(ann: Client) -> None:
    frame = req(LIST, "ping_pong", user=me(ann, LIST))
    frame["jsonapi"] = {"version": "9" * 5000}
    _, reply = await exchange(ann, frame)
    await still_serving(ann)
    check(reply, LIST, "ping_pong", 505)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_out_of_range_number_in_a_field_is_415_with_the_type(
    ann: Client, dialect: str
) -> None:
    good = msgspec.json.encode(req(dialect, "all_messages", user=me(ann, dialect), time=0))
    frame = good.decode().replace('"time":0', '"time":1e999')
    assert frame.count("1e999") == 1
    _, reply = await exchange(ann, frame)
    await still_serving(ann)
    check(reply, dialect, "all_messages", 415)
    assert "time" in reply["errors"]["detail"]

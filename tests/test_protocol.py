"""morelia_trio.protocol without sockets: dialects, leniency, aliases, plain words, and
property tests that no frame, however broken, gets anything but a Request or a FrameError."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morelia_trio.config import Limits
from morelia_trio.core.answers import Answer
from morelia_trio.core.errors import UnsupportedMediaType
from morelia_trio.core.frames import Dialect, Envelope
from morelia_trio.core.parsers import PARSERS, parse_id
from morelia_trio.core.plain_words import plain_words
from morelia_trio.core.protocol import ERRORS_TYPE, FrameError, decode_request
from morelia_trio.core.records import Credentials
from morelia_trio.core.replies import render
from morelia_trio.core.requests import (
    AllMessages,
    Authentication,
    DeleteMessage,
    EditMessage,
    GetUpdate,
    PingPong,
    RegisterUser,
    Request,
    SendMessage,
    Subscribe,
    Unsubscribe,
    UserInfo,
)

from .helpers import check_doc_reply, check_list_reply

Frame = dict[str, Any]
LIMITS = Limits()
LEAKS = ("Traceback", "msgspec", "`", "$.", "Expected ")
LIST_KEYS = ("user", "flow", "message", "chat")


def decode(frame: Frame | str | bytes) -> Request:
    if isinstance(frame, dict):
        frame = json.dumps(frame, ensure_ascii=False)
    return decode_request(frame, LIMITS)


def fails(frame: Frame | str | bytes) -> FrameError:
    with pytest.raises(FrameError) as caught:
        decode(frame)
    return caught.value


# --- dialect detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "dialect"),
    [
        (None, Dialect.DOCUMENT),
        ({}, Dialect.DOCUMENT),
        ({"user": {"id": 1, "auth_id": "t"}}, Dialect.DOCUMENT),
        ({"user": None, "flow": None, "message": None, "chat": None}, Dialect.DOCUMENT),
        ({"user": {"id": 1}, "flow": {"id": 2}, "message": {"id": 3}}, Dialect.DOCUMENT),
        ({"user": [{"uuid": "1", "auth_id": "t"}]}, Dialect.LIST),
        ({"user": []}, Dialect.LIST),
        ({"flow": []}, Dialect.LIST),
        ({"message": [{"text": "x"}]}, Dialect.LIST),
        ({"chat": [{"id": "2"}]}, Dialect.LIST),
        ({"user": {"id": 1}, "flow": [{"id": 2}]}, Dialect.LIST),  # any one array decides
        ({"time": 0, "meta": [1, 2]}, Dialect.DOCUMENT),  # other arrays do not count
    ],
)
def test_dialect_is_decided_by_the_shape(data: Frame | None, dialect: Dialect) -> None:
    request = decode({"type": "all_messages", "data": data})
    assert request.dialect is dialect
    assert fails({"type": "no_such_type", "data": data}).dialect is dialect
    if data is not None:  # a validation failure elsewhere keeps the request's dialect
        failed = fails({"type": "all_messages", "data": {**data, "time": "now"}})
        assert (failed.dialect, failed.reply_type, failed.error.code) == (
            dialect,
            "all_messages",
            415,
        )


def test_frames_without_a_usable_shape_are_the_document_dialect() -> None:
    for frame in ("nope", "[]", b"{}", '{"type": 5, "data": 5}', '{"type": "x", "data": []}'):
        assert fails(frame).dialect is Dialect.DOCUMENT


# --- id leniency ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (7, 7),
        ("7", 7),
        ("0007", 7),
        (2**31 - 1, 2**31 - 1),
        (0, None),
        ("0", None),
        ("000", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_id_accepts_numbers_and_numeric_strings(
    value: int | str | None, expected: int | None
) -> None:
    assert parse_id(value, "flow.id") == expected


@pytest.mark.parametrize(
    "value", ["seven", "7a", " 7", "7 ", "-7", "+7", "7.0", "\u0667", "\uff17", -1]
)
def test_parse_id_refuses_the_rest_naming_the_field(value: int | str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        parse_id(value, "message.reply_to")
    assert caught.value.code == 415
    assert "message.reply_to" in caught.value.detail


@pytest.mark.parametrize(
    ("flow", "flow_id"),
    [
        ({"id": 5}, 5),
        ({"id": "5"}, 5),
        ({"uuid": 5}, 5),
        ({"uuid": "5"}, 5),
        ({"id": 0, "uuid": "5"}, 5),  # a placeholder zero means unset: uuid names the flow
        ({"id": "", "uuid": 5}, 5),
        ({"id": None, "uuid": "5"}, 5),
        ({"id": 5, "uuid": "6"}, 5),  # id wins when both are set
        ({"id": 0}, None),
        ({"id": None, "uuid": None}, None),
        ({}, None),
    ],
)
def test_a_flow_is_named_by_id_or_uuid(flow: Frame, flow_id: int | None) -> None:
    for data in ({"flow": flow}, {"flow": [flow]}):
        body = decode({"type": "all_messages", "data": data}).body
        assert isinstance(body, AllMessages)
        assert body.flow_id == flow_id


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"id": 3, "auth_id": "tok"}, Credentials(3, "tok")),
        ({"id": "3", "auth_id": "tok"}, Credentials(3, "tok")),
        ({"uuid": "3", "auth_id": "tok"}, Credentials(3, "tok")),
        ({"id": 0, "uuid": 3, "auth_id": "tok"}, Credentials(3, "tok")),
        ({"id": 3, "auth_id": 12345}, Credentials(3, "12345")),
        ({"id": 3, "auth_id": list(b"tok")}, Credentials(3, "tok")),  # bytes as integers
        ({"id": 3, "auth_id": [300]}, Credentials(3, None)),
        ({"id": 3}, Credentials(3, None)),
        ({"id": None, "auth_id": None}, Credentials(None, None)),
        ({}, Credentials(None, None)),
    ],
)
def test_credentials_leniency(user: Frame, expected: Credentials) -> None:
    for data in ({"user": user}, {"user": [user]}):
        body = decode({"type": "ping_pong", "data": data}).body
        assert isinstance(body, PingPong)
        assert body.creds == expected


@pytest.mark.parametrize(("time", "since"), [(None, 0.0), (0, 0.0), (-5, 0.0), (12.5, 12.5)])
def test_time_zero_or_null_means_from_the_start(time: float | None, since: float) -> None:
    body = decode({"type": "get_update", "data": {"time": time}}).body
    assert isinstance(body, GetUpdate) and body.since == since
    body = decode({"type": "all_messages", "data": {"time": time}}).body
    assert isinstance(body, AllMessages) and body.since == since


def test_every_key_may_be_null() -> None:
    frame = {"type": "ping_pong", "data": None, "jsonapi": None, "meta": None, "errors": None}
    assert decode(frame) == Request(
        "ping_pong", Dialect.DOCUMENT, PingPong(Credentials(None, None))
    )
    user = {k: None for k in ("id", "uuid", "auth_id", "login", "password", "username", "email")}
    data = {"time": None, "user": [user], "flow": None, "chat": None, "message": None}
    assert decode({"type": "all_messages", "data": data}).body == AllMessages(
        Credentials(None, None), None, 0.0
    )


def test_user_info_names_others_only_in_the_list_dialect() -> None:
    me = {"uuid": "1", "auth_id": "t"}
    body = decode({"type": "user_info", "data": {"user": [me, {"uuid": "2"}, {"id": 3}]}}).body
    assert body == UserInfo(Credentials(1, "t"), [2, 3])
    body = decode({"type": "user_info", "data": {"user": {"id": 1, "auth_id": "t"}}}).body
    assert body == UserInfo(Credentials(1, "t"), [])
    failed = fails({"type": "user_info", "data": {"user": [me, {"uuid": 0}]}})
    assert failed.error.code == 415 and "user[1]" in failed.error.detail


# --- aliases ----------------------------------------------------------------------------------


def test_chat_is_an_alias_of_flow() -> None:
    for chat in ({"id": 4}, [{"uuid": "4"}]):
        body = decode({"type": "all_messages", "data": {"chat": chat}}).body
        assert isinstance(body, AllMessages) and body.flow_id == 4
    send = {"chat": {"id": 4}, "message": {"text": "hi"}}
    body = decode({"type": "send_message", "data": send}).body
    assert isinstance(body, SendMessage) and body.flow_id == 4
    both = {"flow": {"id": 4}, "chat": {"id": 9}}  # flow wins over its older name
    body = decode({"type": "all_messages", "data": both}).body
    assert isinstance(body, AllMessages) and body.flow_id == 4


@pytest.mark.parametrize("type_", ["auth", "authentication"])
def test_auth_and_authentication(type_: str) -> None:
    request = decode({"type": type_, "data": {"user": {"login": "ann", "password": "pw"}}})
    assert request == Request(type_, Dialect.DOCUMENT, Authentication("ann", "pw"))


@pytest.mark.parametrize("type_", ["ping_pong", "ping-pong"])
def test_ping_pong_and_ping_dash_pong(type_: str) -> None:
    request = decode({"type": type_, "data": {"user": [{"uuid": "2", "auth_id": "t"}]}})
    assert request == Request(type_, Dialect.LIST, PingPong(Credentials(2, "t")))


@pytest.mark.parametrize("type_", ["edited_message", "edited"])
def test_edited_and_edited_message(type_: str) -> None:
    data = {"user": {"id": 2, "auth_id": "t"}, "message": {"id": "8", "text": "new"}}
    request = decode({"type": type_, "data": data})
    assert request == Request(
        type_, Dialect.DOCUMENT, EditMessage(Credentials(2, "t"), 8, None, "new")
    )


def test_aliases_are_exactly_these() -> None:
    assert set(PARSERS) == {
        "register_user",
        "authentication",
        "auth",
        "user_info",
        "send_message",
        "all_messages",
        "get_update",
        "all_flow",
        "add_flow",
        "edited_message",
        "edited",
        "delete_message",
        "delete_user",
        "ping_pong",
        "ping-pong",
        "subscribe",
        "unsubscribe",
    }


def test_subscribe_and_unsubscribe() -> None:
    data = {"user": [{"uuid": "2", "auth_id": "t"}], "time": 17.5}
    request = decode({"type": "subscribe", "data": data})
    assert request == Request("subscribe", Dialect.LIST, Subscribe(Credentials(2, "t"), 17.5))
    request = decode({"type": "unsubscribe", "data": {"user": {"id": 2, "auth_id": "t"}}})
    assert request == Request("unsubscribe", Dialect.DOCUMENT, Unsubscribe(Credentials(2, "t")))


def test_register_user_optional_fields_and_attachments_in_both_spellings() -> None:
    user = {"login": "ann", "password": "pw", "username": "", "email": None}
    body = decode({"type": "register_user", "data": {"user": user}}).body
    assert body == RegisterUser("ann", "pw", None, None)
    doc_file = {"text": None, "file": {"picture": "b64", "audio": [1, 2]}}
    list_file = {"file_picture": "b64", "file_audio": [1, 2]}
    for message in (doc_file, [list_file]):
        data = {"flow": {"id": 1}, "message": message}
        body = decode({"type": "send_message", "data": data}).body
        assert isinstance(body, SendMessage)
        assert (body.message.picture, body.message.audio, body.message.text) == (
            "b64",
            [1, 2],
            None,
        )
    body = decode({"type": "delete_message", "data": {"message": [{"uuid": "5"}]}}).body
    assert body == DeleteMessage(Credentials(None, None), 5, None)


# --- plain words ------------------------------------------------------------------------------


def validation_error(frame: str) -> msgspec.ValidationError:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(frame, type=Envelope)
    return caught.value


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        ('{"type": 5}', "The field type must be a string, not a whole number."),
        ("{}", "The field type is required."),
        ('{"type": null}', "The field type must be a string, not null."),
        (
            '{"type": "x", "data": {"user": [{"login": 5}]}}',
            "The field data.user[0].login must be a string or null, not a whole number.",
        ),
        (
            '{"type": "x", "data": {"user": {"login": true}}}',
            "The field data.user.login must be a string or null, not true or false.",
        ),
        (
            '{"type": "x", "data": {"time": "0"}}',
            "The field data.time must be a number or null, not a string.",
        ),
        (
            '{"type": "x", "data": {"flow": {"users": [[1]]}}}',
            "The field data.flow.users[0] must be a whole number, a string or an object, "
            "not a list.",
        ),
        (
            '{"type": "x", "jsonapi": {"version": {}}}',
            "The field jsonapi.version must be a number, a string or null, not an object.",
        ),
        (
            '{"type": "x", "data": 5}',
            "The field data must be an object or null, not a whole number.",
        ),
        (
            '{"type": "x", "data": {"message": {"file_audio": [0, 256]}}}',
            "The field data.message.file_audio[1] must be a whole number at most 255.",
        ),
        (
            '{"type": "x", "data": {"message": [{"emoji": [-1]}]}}',
            "The field data.message[0].emoji[0] must be a whole number at least 0.",
        ),
    ],
)
def test_plain_words(frame: str, words: str) -> None:
    assert plain_words(validation_error(frame)) == words


def test_plain_words_without_a_known_pattern_still_names_the_field() -> None:
    exc = validation_error('{"type": "x", "data": {"time": 1' + "0" * 400 + "}}")
    assert plain_words(exc) == "The field data.time has a value that is not allowed."
    assert plain_words(msgspec.ValidationError("something odd")) == (
        "The request has a value that is not allowed."
    )


def test_plain_words_never_contradict_themselves() -> None:
    detail = fails({"type": "ping_pong", "data": {"user": {"id": 1.5}}}).error.detail
    assert "not a number" not in detail, detail


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "ping_pong", "data": {"user": {"id": "1" * 5000}}},
        {"type": "all_messages", "data": {"flow": [{"uuid": "2" * 4301}]}},
        {"type": "ping_pong", "jsonapi": {"version": "3" * 5000}},
    ],
)
def test_huge_numeric_strings_are_frame_errors(frame: Frame) -> None:
    failed = fails(frame)
    assert failed.reply_type == frame["type"] and failed.error.code in {415, 505}


@pytest.mark.parametrize("number", ["1e999", "-1e400", "1" * 5000])
def test_out_of_range_numbers_keep_the_request_type(number: str) -> None:
    assert decode('{"type": "ping_pong", "meta": ' + number + "}").type == "ping_pong"
    failed = fails('{"type": "all_messages", "data": {"time": ' + number + "}}")
    assert (failed.reply_type, failed.error.code) == ("all_messages", 415)


# --- every FrameError renders as a reply ------------------------------------------------------


def check_rendered(error: FrameError, source: str | bytes) -> None:
    """The reply to a FrameError: valid JSON, exactly five keys, the right shape and words."""
    text = render(
        error.reply_type,
        error.dialect,
        Answer(code=error.error.code, status=error.error.status),
        error.error.detail,
        now=1_700_000_000.25,
        reply_id=42,
    )
    reply = json.loads(text)
    assert set(reply) == {"type", "data", "errors", "jsonapi", "meta"}
    if error.dialect is Dialect.LIST:
        data = check_list_reply(reply, error.reply_type, error.error.code)
        assert (data["user"], data["flow"], data["message"]) == ([], [], [])
    else:
        assert check_doc_reply(reply, error.reply_type, error.error.code) is None
        assert reply["errors"]["id"] == 42
    assert reply["errors"]["status"] == error.error.status
    detail = reply["errors"]["detail"]
    assert detail == error.error.detail and detail.strip()
    input_text = source if isinstance(source, str) else source.decode("utf-8", "replace")
    for leak in LEAKS:  # unless the client itself sent those characters
        assert leak in input_text or leak not in detail, detail


# --- property tests ---------------------------------------------------------------------------

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
WORDS = sorted(
    {
        *PARSERS,
        *LIST_KEYS,
        "type",
        "data",
        "jsonapi",
        "meta",
        "errors",
        "time",
        "id",
        "uuid",
        "auth_id",
        "login",
        "password",
        "username",
        "email",
        "text",
        "file",
        "picture",
        "file_picture",
        "emoji",
        "reply_to",
        "client_id",
        "title",
        "info",
        "users",
        "version",
        "revision",
    }
)
keys = st.sampled_from(WORDS) | st.text(max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(WORDS)
    | st.sampled_from(["0", "1", "42", "", "1.0", "2.0", "chat", "group", "channel"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)
objects_with_ids = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "uuid": json_values,
        "auth_id": json_values,
        "login": json_values,
        "password": json_values,
        "text": json_values,
        "type": st.sampled_from(["chat", "group", "channel"]) | json_values,
        "title": json_values,
        "users": json_values,
        "file": json_values,
        "file_picture": json_values,
        "reply_to": json_values,
    },
)
items = objects_with_ids | st.lists(objects_with_ids, max_size=3) | json_values
data_values = (
    st.fixed_dictionaries(
        {},
        optional={
            "time": json_values,
            "user": items,
            "flow": items,
            "chat": items,
            "message": items,
            "meta": json_values,
        },
    )
    | json_values
)
jsonapi_values = (
    st.fixed_dictionaries(
        {},
        optional={
            "version": st.sampled_from([1.0, "1.0", 1, "1", 2.0, "2.0", "x", None]) | json_values,
            "revision": json_values,
        },
    )
    | json_values
)
types = st.sampled_from(sorted(PARSERS)) | st.text(max_size=10)
frame_objects = st.fixed_dictionaries(
    {"type": types | json_values},
    optional={"data": data_values, "jsonapi": jsonapi_values, "meta": json_values},
)
objects_with_string_type = st.fixed_dictionaries(
    {"type": types},
    optional={"data": data_values, "jsonapi": jsonapi_values, "meta": json_values},
)

VALID_FRAMES = [
    '{"type":"register_user","data":{"user":[{"login":"L","password":"P"}]},"jsonapi":null}',
    '{"type":"auth","data":{"time":0,"user":[{"login":"L","password":"P"}]}}',
    '{"type":"all_messages","data":{"time":0,"flow":[{"id":2}],"user":[{"uuid":9,"auth_id":"A"}]}}',
    '{"type":"send_message","data":{"flow":{"id":1},"message":{"text":"hi"},"user":{"id":3}},'
    '"jsonapi":{"version":1.0},"meta":null}',
    '{"type":"add_flow","data":{"flow":[{"type":"chat","title":"T","users":["1","2"]}]}}',
    '{"type":"edited","data":{"message":{"id":"4","text":"x"}},"jsonapi":{"version":"1.0"}}',
    '{"type":"user_info","data":{"user":[{"uuid":"1","auth_id":"A"},{"uuid":"2"}]}}',
    '{"type":"ping-pong"}',
]
MUTATION_CHARS = '{}[]",:0123456789.-+eE \\ntrufalsy\x00\u00e9\U0001f44b'


@st.composite
def mutated_frames(draw: st.DrawFn) -> str:
    """A valid frame with a few characters deleted, inserted or replaced."""
    frame = draw(st.sampled_from(VALID_FRAMES))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(frame)))
        end = draw(st.integers(at, min(len(frame), at + 6)))
        piece = draw(st.text(alphabet=MUTATION_CHARS, max_size=4))
        frame = frame[:at] + piece + frame[end:]
    return frame


def decodes_or_fails_cleanly(frame: str | bytes) -> Request | FrameError:
    """The property every frame must have: a Request, or a FrameError that renders."""
    try:
        request = decode_request(frame, LIMITS)
    except FrameError as exc:
        check_rendered(exc, frame)
        return exc
    assert isinstance(request, Request)
    assert request.type in PARSERS
    return request


def expected_dialect(obj: object) -> Dialect:
    data = obj.get("data") if isinstance(obj, dict) else None
    if isinstance(data, dict) and any(isinstance(data.get(k), list) for k in LIST_KEYS):
        return Dialect.LIST
    return Dialect.DOCUMENT


@PROPERTY
@given(st.text(max_size=200))
def test_any_text_decodes_or_fails_cleanly(text: str) -> None:
    decodes_or_fails_cleanly(text)


@PROPERTY
@given(st.binary(max_size=200))
def test_any_binary_frame_is_400_errors(frame: bytes) -> None:
    result = decodes_or_fails_cleanly(frame)
    assert isinstance(result, FrameError)
    assert (result.reply_type, result.error.code, result.dialect) == (
        ERRORS_TYPE,
        400,
        Dialect.DOCUMENT,
    )


@PROPERTY
@given(json_values, st.booleans())
def test_any_json_value_decodes_or_fails_cleanly(value: object, ascii_only: bool) -> None:
    result = decodes_or_fails_cleanly(json.dumps(value, ensure_ascii=ascii_only))
    if not isinstance(value, dict):  # not an object: 400 "errors", whatever it holds
        assert isinstance(result, FrameError)
        assert (result.reply_type, result.error.code) == (ERRORS_TYPE, 400)


@PROPERTY
@given(frame_objects, st.booleans())
def test_any_frame_like_object_decodes_or_fails_cleanly(obj: Frame, ascii_only: bool) -> None:
    result = decodes_or_fails_cleanly(json.dumps(obj, ensure_ascii=ascii_only))
    if not isinstance(obj["type"], str):  # an object with no usable type: 415 "errors"
        assert isinstance(result, FrameError)
        assert (result.reply_type, result.error.code) == (ERRORS_TYPE, 415)
        assert result.dialect is expected_dialect(obj)
        # msgspec stops at the first bad field it meets: that may be type, or another one
        assert result.error.detail.startswith("The field "), result.error.detail


@PROPERTY
@given(mutated_frames())
def test_mutated_valid_frames_decode_or_fail_cleanly(frame: str) -> None:
    decodes_or_fails_cleanly(frame)


@PROPERTY
@given(objects_with_string_type, st.booleans())
def test_error_reply_type_rules(obj: Frame, ascii_only: bool) -> None:
    """CONTRACT §1: an object with a string type gets its own type back, in its dialect;
    an unknown type is 400, a known one that fails is a 4xx of validation or limits."""
    result = decodes_or_fails_cleanly(json.dumps(obj, ensure_ascii=ascii_only))
    if isinstance(result, Request):
        assert result.type == obj["type"]
        assert result.dialect is expected_dialect(obj)
        return
    assert result.reply_type == obj["type"]
    assert result.dialect is expected_dialect(obj)
    if obj["type"] in PARSERS:
        assert result.error.code in {413, 415, 429, 505}, result.error.detail
    else:
        assert result.error.code == 400
        assert result.error.detail == "The field type names no request this server knows."


def test_the_valid_frames_are_valid() -> None:
    for frame in VALID_FRAMES:
        assert decode(frame).type == json.loads(frame)["type"]


@pytest.mark.parametrize(
    ("frame", "reply_type", "code", "dialect"),
    [
        (b"\x00", ERRORS_TYPE, 400, Dialect.DOCUMENT),
        ("", ERRORS_TYPE, 400, Dialect.DOCUMENT),
        ("[1]", ERRORS_TYPE, 400, Dialect.DOCUMENT),
        ('{"type": 5, "data": {"flow": []}}', ERRORS_TYPE, 415, Dialect.LIST),
        ('{"type": "nope", "data": {"user": []}}', "nope", 400, Dialect.LIST),
        ('{"type": "ping_pong", "jsonapi": {"version": 2}}', "ping_pong", 505, Dialect.DOCUMENT),
        (
            '{"type": "send_message", "data": {"message": [{"text": "' + "x" * 10_001 + '"}],'
            ' "flow": [{"id": 1}]}}',
            "send_message",
            413,
            Dialect.LIST,
        ),
        (
            '{"type": "user_info", "data": {"user": [' + ",".join(['{"uuid": 1}'] * 102) + "]}}",
            "user_info",
            429,
            Dialect.LIST,
        ),
        (
            '{"type": "add_flow", "data": {"flow": {"type": "dm", "title": "x"}}}',
            "add_flow",
            415,
            Dialect.DOCUMENT,
        ),
    ],
)
def test_each_kind_of_frame_error_renders(
    frame: str | bytes, reply_type: str, code: int, dialect: Dialect
) -> None:
    result = decodes_or_fails_cleanly(frame)
    assert isinstance(result, FrameError)
    assert (result.reply_type, result.error.code, result.dialect) == (reply_type, code, dialect)

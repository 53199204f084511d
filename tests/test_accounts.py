"""Logins are canonical and single-script, emails are email addresses (CONTRACT §8.3)."""

from __future__ import annotations

import msgspec
import pytest
import trio

from morelia_trio.auth import hash_password, new_token
from morelia_trio.config import Config
from morelia_trio.core.accounts import canonical_login, login_problem
from morelia_trio.core.events import FlowAdded, UserRegistered
from morelia_trio.core.journal_format import encode_record, journal_name
from morelia_trio.core.records import Flow, User
from morelia_trio.core.state import hash_token
from morelia_trio.testing import CHEAP_ARGON2
from tests.wire import Client, RequestFailed, open_client

from .helpers import exchange
from .test_errors import DIALECTS, LIST, req
from .test_persistence import running

pytestmark = pytest.mark.spread

SAME_AS_ALICE = ["alice", "ALICE", "\uff41\uff4c\uff49\uff43\uff45", "\uff21lice"]  # fullwidth
REFUSED_LOGINS = [
    "\u0430lice",  # a Cyrillic a in a Latin login
    "alice\u200b",  # a zero-width space
    "al\u200dice",  # a zero-width joiner
    "ali\u00adce",  # a soft hyphen
    "alice\ufe0f",  # a variation selector
    "\u202eecila",  # a right-to-left override
    "ali\x00ce",
    "ali\nce",
    "ali\u2028ce",
    " alice",
    "alice ",
    "alice\u3000",  # an ideographic space
    "ab\u0660",  # an Arabic-Indic digit
    "\u03b1lice",  # a Greek alpha
]
GOOD_LOGINS = [
    "фёдор",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac1",  # Greek
    "東京タワーとたこ焼き",
    "한국漢字",
    "jean-luc.o'neil",
    "ann smith",
]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_login_is_one_whatever_its_case_or_width(client: Client, dialect: str) -> None:
    user_id = await client.register("Alice", "alice-pw")
    for login in SAME_AS_ALICE:
        frame = req(dialect, "register_user", user={"login": login, "password": "pw"})
        _, reply = await exchange(client, frame)
        assert reply["errors"]["code"] == 409, (login, reply)
        assert await client.login(login, "alice-pw") == user_id
    assert (await client.user_info())[0]["login"] == "Alice"  # as registered
    await client.delete_user("\uff21LICE", "alice-pw")  # delete_user finds it too
    with pytest.raises(RequestFailed) as info:
        await client.login("Alice", "alice-pw")
    assert info.value.code == 404
    assert await client.register("alice", "another-pw") != user_id  # free again


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_login_with_invisible_or_mixed_characters_is_refused(
    client: Client, dialect: str
) -> None:
    for login in REFUSED_LOGINS:
        frame = req(dialect, "register_user", user={"login": login, "password": "pw"})
        _, reply = await exchange(client, frame)
        assert reply["errors"]["code"] == 415, (login, reply)
        assert "user.login" in reply["errors"]["detail"]
    for login in GOOD_LOGINS:
        user_id = await client.register(login, "pw")
        assert (await client.user_info())[0]["login"] == login
        assert await client.login(login.upper(), "pw") == user_id


def test_logins_checked_by_rule() -> None:
    for login in REFUSED_LOGINS:
        assert login_problem(login), login
    for login in [*GOOD_LOGINS, "alice", *SAME_AS_ALICE]:
        assert login_problem(login) is None, login
    assert {canonical_login(login) for login in ["Alice", *SAME_AS_ALICE]} == {"alice"}
    assert canonical_login("Straße") == canonical_login("STRASSE")
    assert canonical_login("ǅemal") == canonical_login("DŽEMAL") == canonical_login("dž" + "emal")


@pytest.mark.one_node("loads a data directory written before, into one server")
async def test_logins_that_collide_under_the_new_rule_still_log_in(
    morelia_config: Config,
) -> None:
    """A data directory written before logins were canonical may hold Alice and alice: it
    loads (journal, then snapshot), each logs in as registered, a form naming both names
    neither, and a new registration of either form is refused."""
    directory = morelia_config.data_dir
    directory.mkdir(parents=True)
    events: list[FlowAdded | UserRegistered] = [
        FlowAdded(time=1.0, flow=Flow(id=1, type="group", title="General", time=1.0))
    ]
    for user_id, login in [(1, "Alice"), (2, "alice"), (3, "Bob")]:
        user = User(
            id=user_id,
            login=login,
            password_hash=hash_password(CHEAP_ARGON2, f"{login}-pw"),
            username=login,
            time=1.0 + user_id,
        )
        events.append(UserRegistered(time=user.time, user=user, token_hash=hash_token(new_token())))
    journal = b"".join(
        encode_record(seq, msgspec.msgpack.encode(event)) for seq, event in enumerate(events, 1)
    )
    (directory / journal_name(1)).write_bytes(journal)
    with trio.fail_after(20):
        for start in ("from the journal", "from the snapshot"):
            async with running(morelia_config) as server, open_client(server.url) as client:
                assert await client.login("Alice", "Alice-pw") == "1", start
                assert await client.login("alice", "alice-pw") == "2", start
                assert await client.login("BOB", "Bob-pw") == "3", start
                for login in ("ALICE", "\uff41lice"):
                    with pytest.raises(RequestFailed) as info:
                        await client.login(login, "Alice-pw")
                    assert info.value.code == 404, start
                    with pytest.raises(RequestFailed) as info:
                        await client.register(login, "pw")
                    assert info.value.code == 409, start
        async with running(morelia_config) as server, open_client(server.url) as client:
            await client.login("alice", "alice-pw")
            await client.delete_user("alice", "alice-pw")
            assert await client.login("ALICE", "Alice-pw") == "1"  # one user has the form now
        async with running(morelia_config) as server, open_client(server.url) as client:
            assert await client.login("ALICE", "Alice-pw") == "1"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_an_email_must_be_an_email_address(client: Client, dialect: str) -> None:
    for email in [
        "E",
        "ann",
        "ann@",
        "@example.org",
        "ann@@example.org",
        "ann smith@example.org",
        "ann@example",
        "ann@localhost",
        "ann@exa mple.org",
        "ann@.org",
        "ann.@example.org",
    ]:
        user = {"login": "ann", "password": "pw", "email": email}
        _, reply = await exchange(client, req(dialect, "register_user", user=user))
        assert reply["errors"]["code"] == 415, (email, reply)
        assert "user.email" in reply["errors"]["detail"] and email not in reply["errors"]["detail"]
    accepted: list[tuple[str, str | None]] = [
        ("ann", "ann@example.org"),
        ("bob", "Bob.Smith+chat@mail.example.co.uk"),
        ("фёдор", "фёдор@пример.рф"),
        ("cid", ""),
        ("dee", None),
    ]
    for login, accepted_email in accepted:
        new_user = {"login": login, "password": "pw", "email": accepted_email}
        _, reply = await exchange(client, req(dialect, "register_user", user=new_user))
        assert reply["errors"]["code"] == (201 if dialect == LIST else 200), (accepted_email, reply)
        await client.login(login, "pw")
        assert (await client.user_info())[0]["email"] == (accepted_email or None)  # as sent

"""Emails are email addresses."""

from __future__ import annotations

import pytest

from morelia_trio.client import Client

from .helpers import exchange
from .test_errors import DIALECTS, LIST, req


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

"""Abuse limits, attacked through real sockets: logins, registrations, messages, frames.

The guard's clock is replaced by one the test moves, so every count is exact.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed

from morelia_trio import Running, serve
from morelia_trio.config import AbuseLimits, Config, Rate
from tests.wire import Client, open_client

from .helpers import Frame

# Everything generous, so that each test meets only the limit it is about.
LAVISH = AbuseLimits(
    logins_per_address=Rate(10_000, 10_000),
    login_failures_per_account_and_address=Rate(10_000, 10_000),
    login_failures_per_account=Rate(10_000, 10_000),
    registrations_per_address=Rate(10_000, 10_000),
    messages_per_user=Rate(10_000, 10_000),
    frames_per_connection=Rate(10_000, 10_000),
    frames_per_address=Rate(10_000, 10_000),
    flood_strikes=10_000,
    hash_queue=10_000,
    connections_per_address=10_000,
    max_connections=10_000,
)

Start = Callable[..., Awaitable[Running]]


class Clock:
    """The guard's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def start(deadline: None, nursery: trio.Nursery, morelia_config: Config, clock: Clock) -> Start:
    """Start a server whose abuse limits are LAVISH but for the fields given."""

    async def started(**abuse: Any) -> Running:
        config = msgspec.structs.replace(
            morelia_config, abuse=msgspec.structs.replace(LAVISH, **abuse)
        )
        running: Running = await nursery.start(serve, config)
        running.context.guard.clock = clock
        return running

    return started


def code(reply: Frame) -> int:
    value: int = reply["errors"]["code"]
    return value


async def login_reply(client: Client, login: str, password: str) -> Frame:
    user = [{"login": login, "password": password}]
    return await client.request({"type": "auth", "data": {"user": user}})


async def register_reply(client: Client, login: str) -> Frame:
    user = [{"login": login, "password": "pw-" + login}]
    return await client.request({"type": "register_user", "data": {"user": user}})


# --- login brute force --------------------------------------------------------------------------


async def test_a_thousand_wrong_passwords_from_one_address_cost_ten_hashes(
    start: Start, clock: Clock
) -> None:
    running = await start(logins_per_address=Rate(10, 10))
    passwords = running.context.passwords
    async with open_client(running.url) as client:
        for n in range(3):
            await client.register(f"victim{n}", "the-right-password")
        hashed = passwords.computed
        codes = [
            code(await login_reply(client, f"victim{n % 3}", f"guess{n}")) for n in range(1000)
        ]
    assert codes[:10] == [401] * 10
    assert set(codes[10:]) == {429}
    assert passwords.computed - hashed == 10
    clock.now += 6  # 10 a minute: one more attempt every 6 s
    async with open_client(running.url) as client:
        assert code(await login_reply(client, "victim0", "the-right-password")) == 200
        assert code(await login_reply(client, "victim0", "the-right-password")) == 429


async def test_an_account_takes_five_wrong_passwords_from_an_address_then_one_a_minute(
    start: Start, clock: Clock
) -> None:
    running = await start(login_failures_per_account_and_address=Rate(5, 1))
    passwords = running.context.passwords
    async with (
        open_client(running.url) as client,
        open_client(running.url, local_address="127.0.0.2") as owner,
    ):
        await client.register("ann", "ann-password")
        await client.register("bob", "bob-password")
        hashed = passwords.computed
        codes = [code(await login_reply(client, "ann", f"guess{n}")) for n in range(20)]
        assert codes == [401] * 5 + [429] * 15
        assert passwords.computed - hashed == 5
        # Even the right password waits: the limit is checked before any hashing.
        assert code(await login_reply(client, "ann", "ann-password")) == 429
        # The owner, from another address, is not held back; nor are other accounts.
        assert code(await login_reply(owner, "ann", "ann-password")) == 200
        assert code(await login_reply(client, "bob", "bob-password")) == 200
        clock.now += 60
        assert code(await login_reply(client, "ann", "ann-password")) == 200
        # A right password costs the account nothing; a wrong one spends the minute's try.
        assert code(await login_reply(client, "ann", "ann-password")) == 200
        assert code(await login_reply(client, "ann", "guess")) == 401
        assert code(await login_reply(client, "ann", "ann-password")) == 429
        assert code(await login_reply(owner, "ann", "ann-password")) == 200


async def test_guesses_from_many_addresses_together_spend_the_accounts_budget(
    start: Start, clock: Clock
) -> None:
    running = await start(
        login_failures_per_account_and_address=Rate(5, 1), login_failures_per_account=Rate(12, 1)
    )
    passwords = running.context.passwords
    async with open_client(running.url) as client:
        await client.register("ann", "ann-password")
    hashed = passwords.computed
    guessed: list[list[int]] = []
    for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        async with open_client(running.url, local_address=address) as guesser:
            guessed.append([code(await login_reply(guesser, "ann", "guess")) for _ in range(6)])
    assert guessed == [[401] * 5 + [429], [401] * 5 + [429], [401, 401] + [429] * 4]
    assert passwords.computed - hashed == 12
    async with open_client(running.url, local_address="127.0.0.5") as owner:
        # Spent from every address: even the owner's right password waits, unhashed.
        assert code(await login_reply(owner, "ann", "ann-password")) == 429
        clock.now += 60  # one more wrong password for the account, from any address
        assert code(await login_reply(owner, "ann", "ann-password")) == 200
        async with open_client(running.url, local_address="127.0.0.4") as guesser:
            assert code(await login_reply(guesser, "ann", "guess")) == 401
            assert code(await login_reply(guesser, "ann", "guess")) == 429
        assert code(await login_reply(owner, "ann", "ann-password")) == 429


async def test_delete_user_guesses_count_as_wrong_passwords(start: Start) -> None:
    running = await start(login_failures_per_account_and_address=Rate(2, 1))
    async with open_client(running.url) as client:
        await client.register("ann", "ann-password")
        user = [{"login": "ann", "password": "guess"}]
        frame = {"type": "delete_user", "data": {"user": user}}
        assert [code(await client.request(frame)) for _ in range(4)] == [401, 401, 429, 429]
        assert code(await login_reply(client, "ann", "ann-password")) == 429
    async with open_client(running.url, local_address="127.0.0.2") as owner:
        assert code(await login_reply(owner, "ann", "ann-password")) == 200


async def test_by_default_a_guesser_cannot_lock_the_owner_out(start: Start) -> None:
    defaults = AbuseLimits()
    running = await start(
        login_failures_per_account_and_address=defaults.login_failures_per_account_and_address,
        login_failures_per_account=defaults.login_failures_per_account,
    )
    async with open_client(running.url) as owner:
        await owner.register("ann", "ann-password")
        async with open_client(running.url, local_address="127.0.0.2") as guesser:
            user = [{"login": "ann", "password": "guess"}]
            frame = {"type": "delete_user", "data": {"user": user}}
            codes = [code(await guesser.request(frame)) for _ in range(10)]
            assert codes == [401] * 5 + [429] * 5
        assert code(await login_reply(owner, "ann", "ann-password")) == 200
        await owner.delete_user("ann", "ann-password")


async def test_password_checks_beyond_the_hashing_queue_get_503(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    config = msgspec.structs.replace(
        morelia_config, abuse=msgspec.structs.replace(LAVISH, hash_queue=2), hash_workers=1
    )
    running: Running = await nursery.start(serve, config)
    passwords = running.context.passwords
    async with open_client(running.url) as client:
        await client.register("ann", "ann-password")
    codes: list[int] = []

    async def attempt() -> None:
        async with open_client(running.url) as client:
            codes.append(code(await login_reply(client, "ann", "ann-password")))

    # The only worker is busy (the test holds it) while two checks wait for it.
    async with trio.open_nursery() as attempts, passwords.limiter:
        for _ in range(2):
            attempts.start_soon(attempt)
        while passwords.waiting < 2:  # noqa: ASYNC110 (no event)
            await trio.sleep(0.01)
        for _ in range(5):
            await attempt()  # refused at once, while the two wait
        assert codes == [503] * 5
    assert codes == [503] * 5 + [200] * 2


# --- registration flood --------------------------------------------------------------------------


async def test_registrations_burst_three_then_ten_a_minute(start: Start, clock: Clock) -> None:
    running = await start(registrations_per_address=Rate(3, 10))
    passwords = running.context.passwords
    async with open_client(running.url) as client:
        codes = [code(await register_reply(client, f"new{n}")) for n in range(10)]
        assert codes == [201] * 3 + [429] * 7
        assert passwords.computed == 3
        clock.now += 6
        assert code(await register_reply(client, "later")) == 201
        assert code(await register_reply(client, "too-soon")) == 429
        assert code(await login_reply(client, "new2", "pw-new2")) == 200
        assert code(await login_reply(client, "new3", "pw-new3")) == 404  # never made
        assert code(await login_reply(client, "too-soon", "pw-too-soon")) == 404


# --- message flood --------------------------------------------------------------------------------


async def send_reply(client: Client, flow: str, text: str) -> Frame:
    return await client.request(
        {
            "type": "send_message",
            "data": {
                "user": [{"uuid": client.user_id, "auth_id": client.token}],
                "flow": [{"uuid": flow}],
                "message": [{"text": text}],
            },
        }
    )


async def test_messages_burst_twenty_then_five_a_second(start: Start, clock: Clock) -> None:
    running = await start(messages_per_user=Rate(20, 300))
    async with open_client(running.url) as ann, open_client(running.url) as second:
        await ann.register("ann", "ann-password")
        general = (await ann.flows())[0]["uuid"]
        codes = [code(await send_reply(ann, general, f"m{n}")) for n in range(30)]
        assert codes == [200] * 20 + [429] * 10
        # The allowance is the user's, whichever connection they use.
        await second.login("ann", "ann-password")
        assert code(await send_reply(second, general, "other connection")) == 429
        edit = {"uuid": (await ann.messages(general))[0]["uuid"], "text": "edited"}
        frame = {
            "type": "edited_message",
            "data": {"user": [{"uuid": ann.user_id, "auth_id": ann.token}], "message": [edit]},
        }
        assert code(await ann.request(frame)) == 429
        clock.now += 1
        assert [code(await send_reply(ann, general, f"n{n}")) for n in range(6)] == [200] * 5 + [
            429
        ]
        assert len(await ann.messages(general)) == 25


async def test_requests_that_fail_do_not_use_up_someone_elses_messages(start: Start) -> None:
    running = await start(messages_per_user=Rate(20, 300))
    async with open_client(running.url) as ann, open_client(running.url) as mallory:
        await ann.register("ann", "ann-password")
        general = (await ann.flows())[0]["uuid"]
        mallory.user_id, mallory.token = ann.user_id, "not-ann's-token"
        assert {code(await send_reply(mallory, general, "x")) for _ in range(50)} == {401}
        assert [code(await send_reply(ann, general, f"m{n}")) for n in range(20)] == [200] * 20


# --- frames per connection ------------------------------------------------------------------------


PING = '{"type": "ping_pong"}'


async def test_frames_beyond_fifty_a_second_get_429_then_the_connection_closes_1008(
    start: Start, clock: Clock
) -> None:
    running = await start(frames_per_connection=Rate(50, 3000), flood_strikes=20)
    async with open_client(running.url) as flooder, open_client(running.url) as other:
        replies = [await flooder.request(PING) for _ in range(60)]
        assert [code(reply) for reply in replies] == [401] * 50 + [429] * 10
        assert replies[-1]["type"] == "errors"
        clock.now += 0.1  # five more frames' worth
        assert [code(await flooder.request(PING)) for _ in range(6)] == [401] * 5 + [429]
        for _ in range(18):  # 19 refused in a row, then the 20th closes it
            assert code(await flooder.request(PING)) == 429
        await flooder.ws.send_message(PING)
        with pytest.raises(ConnectionClosed) as closed:
            await flooder.ws.get_message()
        assert closed.value.reason is not None and closed.value.reason.code == 1008
        assert code(await other.request(PING)) == 401  # everyone else is served


async def closed_with(client: Client) -> int | None:
    """Read until the server closes the connection; its close code."""
    try:
        while True:
            await client.ws.get_message()
    except ConnectionClosed as closed:
        return None if closed.reason is None else closed.reason.code


async def test_an_address_that_keeps_flooding_has_every_connection_closed_1008(
    start: Start, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "morelia_trio")  # open and close: DEBUG
    running = await start(frames_per_address=Rate(30, 60), flood_strikes=10)
    url = running.url
    async with (
        open_client(url) as first,
        open_client(url) as second,
        open_client(url) as idle,
        open_client(url, local_address="127.0.0.2") as other,
    ):
        assert [code(await first.request(PING)) for _ in range(30)] == [401] * 30
        replies = [await second.request(PING) for _ in range(9)]  # owed: 1 to 9
        assert [code(reply) for reply in replies] == [429] * 9
        assert replies[0]["errors"]["detail"] == "Too many frames from this address; slow down."
        await second.ws.send_message(PING)  # the 10th owed: every connection is closed
        assert [await closed_with(client) for client in (second, first, idle)] == [1008] * 3
        assert code(await other.request(PING)) == 401  # another address is served
        with trio.fail_after(5):
            while running.context.guard.connections["127.0.0.1"]:  # noqa: ASYNC110 (no event)
                await trio.sleep(0.01)
        async with open_client(url) as again:  # till the debt is paid back: closed at once
            await again.ws.send_message(PING)
            assert await closed_with(again) == 1008
        clock.now += 11  # one a second: the 10 owed, then one to spend
        async with open_client(url) as later:
            assert code(await later.request(PING)) == 401
            assert code(await later.request(PING)) == 429
    closes = [r.getMessage() for r in caplog.records if "connection closed" in r.getMessage()]
    assert sum(line.endswith("its address kept flooding (1008)") for line in closes) == 4


async def test_connections_flooding_together_are_all_closed_1008(start: Start) -> None:
    running = await start(frames_per_address=Rate(50, 3000), flood_strikes=100)
    async with trio.open_nursery() as nursery:
        codes: list[int | None] = []

        async def flood() -> None:
            async with open_client(running.url) as client:
                with contextlib.suppress(ConnectionClosed):
                    for _ in range(200):
                        await client.ws.send_message(PING)
                codes.append(await closed_with(client))

        for _ in range(8):
            nursery.start_soon(flood)
    assert codes == [1008] * 8


async def test_with_no_limits_nothing_is_refused(deadline: None, morelia_server: Running) -> None:
    assert morelia_server.context.guard.limits is None
    async with open_client(morelia_server.url) as client:
        await client.register("ann", "ann-password")
        general = (await client.flows())[0]["uuid"]
        assert {code(await send_reply(client, general, f"m{n}")) for n in range(200)} == {200}
        assert {code(await login_reply(client, "ann", "wrong")) for n in range(30)} == {401}

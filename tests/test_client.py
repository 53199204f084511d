"""The typed client (morelia_trio.client) against the whole server: results, errors, paging,
resuming a saved session and reconnecting after the server goes away."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import trio

from morelia_trio import Config, Running, serve
from morelia_trio.client import (
    Backoff,
    BadRequest,
    Client,
    Conflict,
    ConnectionLost,
    Flow,
    Forbidden,
    Invalid,
    Message,
    NotFound,
    Profile,
    RateLimited,
    RequestFailed,
    Sent,
    Session,
    TooLarge,
    Unauthorized,
    Unavailable,
    open_client,
)
from morelia_trio.config import AbuseLimits, Limits
from morelia_trio.core.state import State

README = Path(__file__).resolve().parent.parent / "README.md"
QUICK = Backoff(first=0.01, most=0.2, attempts=30)


async def test_results_are_typed(deadline: None, morelia_server: Running) -> None:
    async with open_client(morelia_server.url) as ann, open_client(morelia_server.url) as bob:
        session = await ann.register("ann", "ann-password", username="Ann", email="a@example.org")
        assert isinstance(session, Session) and session.user_id.isdigit()
        await bob.register("bob", "bob-password")
        assert bob.user_id is not None

        me = await ann.me()
        assert me == Profile(id=session.user_id, login="ann", username="Ann", email="a@example.org")
        [other] = await ann.users(bob.user_id)
        assert (other.login, other.email) == ("bob", None)  # no one else's email

        general, *_ = await ann.flows()
        assert isinstance(general, Flow) and general.title == "General"
        chat = await ann.add_flow("chat", "us", users=[session.user_id, bob.user_id])
        assert (chat.type, chat.owner, sorted(chat.users)) == (
            "chat",
            session.user_id,
            sorted([session.user_id, bob.user_id]),
        )

        sent = await ann.send(chat.id, "hi bob", client_id="c-1")
        assert isinstance(sent, Sent)
        assert (sent.flow_id, sent.client_id) == (chat.id, "c-1")
        [message] = await bob.messages(chat.id)
        assert isinstance(message, Message)
        assert (message.id, message.text, message.author_id, message.flow_id) == (
            sent.id,
            "hi bob",
            session.user_id,
            chat.id,
        )
        await ann.edit(sent.id, "hi, bob")
        update = await bob.updates(since=sent.time)
        assert [(m.text, m.edited_status) for m in update.messages] == [("hi, bob", True)]
        await ann.delete_message(sent.id)
        assert await bob.messages(chat.id) == []
        await bob.ping()


async def test_each_error_has_its_own_exception(deadline: None, morelia_server: Running) -> None:
    async with open_client(morelia_server.url) as ann, open_client(morelia_server.url) as bob:
        with pytest.raises(Unauthorized):
            await ann.ping()  # no session yet
        await ann.register("ann", "ann-password")
        await bob.register("bob", "bob-password")
        with pytest.raises(Conflict) as conflict:
            await bob.register("ANN", "other-password")
        failure = conflict.value
        assert isinstance(failure, RequestFailed)
        assert (failure.code, failure.status) == (409, "Conflict")
        assert failure.detail and failure.reply["errors"]["code"] == 409

        general = (await ann.flows())[0].id
        sent = await ann.send(general, "mine")
        with pytest.raises(Forbidden):
            await bob.edit(sent.id, "not yours")
        with pytest.raises(NotFound):
            await ann.messages("999999")
        with pytest.raises(TooLarge):
            await ann.send(general, "x" * 10_001)
        with pytest.raises(Invalid):
            await bob.register(" spaced", "password")  # leading white space
        with pytest.raises(RateLimited):
            await ann.users(*[str(n) for n in range(1, 102)])
        with pytest.raises(BadRequest):
            await ann.call("no_such_method")
        with pytest.raises(Unauthorized):
            await bob.login("bob", "wrong-password")


async def test_a_busy_server_is_unavailable(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    no_waiting = msgspec.structs.replace(morelia_config, abuse=AbuseLimits(hash_queue=0))
    running: Running = await nursery.start(serve, no_waiting)
    async with open_client(running.url) as ann:
        with pytest.raises(Unavailable) as busy:
            await ann.register("ann", "ann-password")  # no password check may wait
        assert busy.value.code == 503


@pytest.fixture
def morelia_config(morelia_config: Config) -> Config:
    """Pages of three items at most, or fewer past 3000 bytes (some 2 KB of items)."""
    return msgspec.structs.replace(morelia_config, limits=Limits(reply_cap=3, max_reply_bytes=3000))


def _next_second(state: State) -> None:
    """Make the server's next change a second later, whatever the wall clock says."""
    state.clock = math.floor(state.clock) + 1


async def test_listings_follow_partial_pages_to_the_end(
    deadline: None, morelia_server: Running
) -> None:
    async with open_client(morelia_server.url) as ann:
        session = await ann.register("ann", "ann-password")
        general = (await ann.flows())[0].id
        texts = []
        for second in range(8):
            await morelia_server.store.call(_next_second)
            # two messages a second, so pages end on a second both sides of it sent
            for n in range(2):
                text = f"s{second}m{n}" + "." * (1200 if second in (3, 4) else 0)
                texts.append(text)
                await ann.send(general, text)
            await ann.add_flow("group", f"group {second}")

        pages = [page async for page in ann.pages("all_messages", flow_id=general)]
        assert len(pages) > 2 and all(page.partial for page in pages[:-1])
        assert [m.text for page in pages for m in page.messages] == texts  # each once

        assert [m.text for m in await ann.messages(general)] == texts
        assert [m.text for m in await ann.messages()] == texts
        assert [f.title for f in await ann.flows()] == ["General"] + [
            f"group {n}" for n in range(8)
        ]
        update = await ann.updates()
        assert [m.text for m in update.messages] == texts
        assert [f.title for f in update.flows][-8:] == [f"group {n}" for n in range(8)]
        assert [u.id for u in update.users] == [session.user_id]


async def test_a_saved_session_resumes_on_a_new_connection(
    deadline: None, morelia_server: Running
) -> None:
    async with open_client(morelia_server.url) as ann:
        saved = msgspec.json.encode(await ann.register("ann", "ann-password"))
    session = msgspec.json.decode(saved, type=Session)
    async with open_client(morelia_server.url, session=session) as again:
        assert (await again.me()).login == "ann"
    async with open_client(morelia_server.url) as again:
        await again.resume(session)
        assert again.session == session
        with pytest.raises(Unauthorized):
            await again.resume(Session(session.user_id, "not-the-token"))
        assert again.user_id is None  # forgotten
        with pytest.raises(Unauthorized):
            async with open_client(morelia_server.url, session=Session("1", "x")):
                pass


class Restartable:
    """A server the test stops and starts again, on one port and one data directory."""

    def __init__(self, nursery: trio.Nursery, config: Config) -> None:
        self.nursery, self.config = nursery, config
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()

    async def start(self) -> Running:
        self.scope, self.stopped = trio.CancelScope(), trio.Event()
        running: Running = await self.nursery.start(self._serve)
        self.config = msgspec.structs.replace(self.config, port=running.port)
        return running

    async def _serve(self, task_status: trio.TaskStatus[Running]) -> None:
        with self.scope:
            await serve(self.config, task_status=task_status)
        self.stopped.set()

    async def stop(self) -> None:
        self.scope.cancel()
        await self.stopped.wait()


async def test_it_reconnects_after_a_restart_and_never_resends_a_change(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    server = Restartable(nursery, morelia_config)
    url = (await server.start()).url
    async with open_client(url, reconnect=QUICK) as ann:
        await ann.register("ann", "ann-password")
        general = (await ann.flows())[0].id
        await ann.send(general, "before")

        await server.stop()  # every connection drops
        await server.start()
        # a read goes through on a new connection, with the same token
        assert [m.text for m in await ann.messages(general)] == ["before"]

        # a change whose answer never comes is not sent again: the server closes the
        # connection at a frame above its 1 MiB cap (1009)
        with pytest.raises(ConnectionLost) as lost:
            await ann.send(general, "x" * (1024 * 1024 + 1))
        assert lost.value.maybe_applied
        assert "closed with 1009" in str(lost.value)
        assert [m.text for m in await ann.messages(general)] == ["before"]

        await server.stop()
        async with trio.open_nursery() as later:  # down for a while: the client waits
            later.start_soon(server.start)
            await ann.send(general, "after")  # not in flight when it dropped: sent once
        assert [m.text for m in await ann.messages(general)] == ["before", "after"]
    await server.stop()


async def test_without_reconnect_a_dropped_connection_says_so(
    deadline: None, morelia_server: Running
) -> None:
    async with open_client(morelia_server.url) as ann:
        await ann.register("ann", "ann-password")
        general = (await ann.flows())[0].id
        with pytest.raises(ConnectionLost, match=re.escape("closed with 1009")):
            await ann.send(general, "x" * (1024 * 1024 + 1))
        with pytest.raises(ConnectionLost):
            await ann.ping()


def _readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


async def test_the_readme_session_runs_as_written(
    deadline: None, morelia_server: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    session = _readme_blocks()[0]
    assert "trio.run(main)" in session
    code = session.replace("ws://127.0.0.1:8000/ws", morelia_server.url)
    namespace: dict[str, object] = {}
    exec(code.replace("trio.run(main)", ""), namespace)
    await namespace["main"]()  # type: ignore[operator]
    assert capsys.readouterr().out == "Hello, Morelia!\n"


async def test_the_readme_session_runs_twice_against_one_server(
    deadline: None, morelia_server: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newcomer runs the example again: the login is taken by then, and that is fine."""
    code = _readme_blocks()[0].replace("ws://127.0.0.1:8000/ws", morelia_server.url)
    for _ in range(2):
        namespace: dict[str, object] = {}
        exec(code.replace("trio.run(main)", ""), namespace)
        await namespace["main"]()  # type: ignore[operator]
    assert capsys.readouterr().out == "Hello, Morelia!\n" * 2


async def test_the_readme_fixture_snippet_runs_as_written(morelia_client: Client) -> None:
    snippet = _readme_blocks()[1]
    assert 'pytest_plugins = ["morelia_trio.testing"]' in snippet
    namespace: dict[str, object] = {}
    exec(snippet, namespace)
    await namespace["test_hello"](morelia_client)  # type: ignore[operator]


def test_the_readme_fixture_snippet_passes_under_pytest_in_a_project_of_its_own(
    tmp_path: Path,
) -> None:
    """As another project would run it: its own file and directory, none of our settings."""
    (tmp_path / "test_hello.py").write_text(_readme_blocks()[1])
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_hello.py"]
    ran = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 passed" in ran.stdout

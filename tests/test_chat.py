"""``morelia-trio chat URL``, a real process with its input and output in pipes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio

from morelia_trio import Running
from morelia_trio.client import open_client
from morelia_trio.core.errors import BadRequest


class Terminal:
    """The chat's input and output, as someone at its keyboard sees them."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.keys = process.stdin
        self.screen = process.stdout
        self.seen = ""  # everything printed so far

    async def type(self, *lines: str) -> None:
        await self.keys.send_all("".join(f"{line}\n" for line in lines).encode())

    async def expect(self, text: str) -> str:
        """Wait until ``text`` is printed; return what was printed up to it (and forget it)."""
        with trio.fail_after(10):
            while text not in self.seen:
                chunk = await self.screen.receive_some()
                assert chunk, f"the chat ended before printing {text!r}: {self.seen!r}"
                self.seen += chunk.decode()
        before, _, self.seen = self.seen.partition(text)
        return before


async def test_chat_in_a_terminal(deadline: None, morelia_server: Running) -> None:
    await chat_in_a_terminal(morelia_server, poll="0.1")


async def test_the_chat_hears_news_live_without_polling(
    deadline: None, morelia_server: Running
) -> None:
    await chat_in_a_terminal(morelia_server, poll="600")  # a poll would come far too late


async def test_the_chat_polls_a_server_without_live_updates(
    deadline: None, morelia_server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    def older_server(*args: object) -> None:
        raise BadRequest("Unknown type: subscribe.")

    monkeypatch.setattr(morelia_server.store.publisher, "subscribe", older_server)
    await chat_in_a_terminal(morelia_server, poll="0.1")


async def chat_in_a_terminal(morelia_server: Running, poll: str) -> None:
    command = [sys.executable, "-m", "morelia_trio", "chat", morelia_server.url, "--poll", poll]
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        await converse(Terminal(process), morelia_server)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def converse(terminal: Terminal, server: Running) -> None:
    async with open_client(server.url) as bob:
        await bob.register("bob", "bob-password", username="Bob")
        general = (await bob.flows())[0]
        await bob.send(general.id, "anyone here?")

        await terminal.expect("(l)ogin or (r)egister? ")
        await terminal.type("r", "bob", "secret")  # taken: it says so and asks again
        await terminal.expect("login is taken already")
        await terminal.expect("(l)ogin or (r)egister? ")
        await terminal.type("r", "ann", "ann-password")
        await terminal.expect("joined General")
        await terminal.expect("Bob: anyone here?")  # what was said just before

        await bob.send(general.id, "hi ann")
        await terminal.expect("Bob: hi ann")
        await terminal.type("hello bob")
        await terminal.expect("ann: hello bob")
        assert [m.text for m in await bob.messages(general.id)][-1] == "hello bob"

        await terminal.type("/new group Book club")
        await terminal.expect("joined Book club")
        await terminal.type("/flows")
        listed = await terminal.expect("Book club")
        assert "General" in listed
        await bob.send(general.id, "elsewhere")
        await trio.sleep(0.5)  # some polls
        await terminal.type("about books")
        shown = await terminal.expect("ann: about books")
        assert "elsewhere" not in shown  # only the joined flow's messages are shown

        await terminal.type("/join 1")
        await terminal.expect("joined General")
        await terminal.type("/nonsense")
        await terminal.expect("! unknown command")
        await terminal.type("/quit")
        with trio.fail_after(5):
            assert await terminal.process.wait() == 0


async def test_chat_without_a_server_says_so() -> None:
    done = await trio.run_process(
        [sys.executable, "-m", "morelia_trio", "chat", "ws://127.0.0.1:9/ws"],
        stdin=subprocess.DEVNULL,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.decode().startswith("morelia-trio chat: cannot reach ws://127.0.0.1:9/ws")

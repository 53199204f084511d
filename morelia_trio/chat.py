"""``morelia-trio chat URL``: a line-based terminal chat on the typed client.

It asks to log in or register, joins the first flow ("General"), sends every line typed
there and prints what others write as live updates bring it (or, from a server without
them, asking ``get_update`` every ``--poll`` seconds). Lines starting with a slash are
commands (``/help``).
"""

from __future__ import annotations

import sys
import time

import trio
from trio_websocket import HandshakeError

from .client import (
    BadRequest,
    Client,
    ConnectionLost,
    Flow,
    FlowType,
    Message,
    RequestFailed,
    Update,
    open_client,
)

FLOW_TYPES: dict[str, FlowType] = {"group": "group", "channel": "channel", "chat": "chat"}

HELP = """commands:
  /flows                       the flows you may see
  /join NUMBER|TITLE           write to that flow (its number in /flows)
  /new group|channel TITLE     create a flow and join it
  /new chat USER_ID            a private chat with that user
  /quit                        leave (so does end of input)
anything else is sent to the flow you joined"""


def say(line: str) -> None:
    print(line, flush=True)  # at once, even into a pipe


async def read_line(prompt: str = "") -> str | None:
    """One line of input without its newline; None at the end of input."""
    if prompt:
        print(prompt, end="", flush=True)
    line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    return line.rstrip("\n") if line else None


class Chat:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.flows: list[Flow] = []
        self.joined: Flow | None = None
        self.names: dict[str, str] = {}  # user id -> username
        self.shown: set[str] = set()  # ids of the messages printed already

    async def sign_in(self) -> bool:
        while True:
            choice = await read_line("(l)ogin or (r)egister? ")
            login = await read_line("login: ") if choice is not None else None
            password = await read_line("password: ") if login is not None else None
            if choice is None or login is None or password is None:
                return False
            try:
                if choice.strip().lower().startswith("r"):
                    await self.client.register(login, password)
                else:
                    await self.client.login(login, password)
                return True
            except RequestFailed as exc:
                say(f"! {exc.detail}")

    async def follow(self, every: float) -> None:
        """Print what others write to the joined flow, as live updates bring it; from a
        server without them (400), ask for news every ``every`` seconds instead."""
        since = int(time.time()) - 5  # what join showed is not shown again
        while True:
            try:
                async with self.client.subscribe(since) as updates:
                    async for update in updates:
                        since = updates.time
                        await self.take(update)
            except BadRequest:
                break
            except (RequestFailed, ConnectionLost) as exc:
                say(f"! cannot follow updates: {exc}")
                await trio.sleep(every)
        await self.poll(every, since)

    async def poll(self, every: float, since: int) -> None:
        while True:
            try:
                update = await self.client.updates(since)
            except (RequestFailed, ConnectionLost) as exc:
                say(f"! cannot fetch updates: {exc}")
            else:
                since = update.time
                await self.take(update)
            await trio.sleep(every)

    async def take(self, update: Update) -> None:
        self.names.update((user.id, user.username) for user in update.users)
        known = {flow.id for flow in self.flows}
        for flow in update.flows:
            if flow.id not in known:
                self.flows.append(flow)
                if flow.owner != self.client.user_id:  # one's own was joined already
                    say(f"* new {flow.type}: {flow.title}")
        await self.show(update.messages)

    async def show(self, messages: list[Message]) -> None:
        for message in messages:
            if self.joined is None or message.flow_id != self.joined.id:
                continue
            if message.id in self.shown:
                continue
            self.shown.add(message.id)
            if message.author_id not in self.names:
                for user in await self.client.users(message.author_id):
                    self.names[user.id] = user.username
            name = self.names.get(message.author_id, message.author_id)
            say(f"{name}: {message.text or '(an attachment)'}")

    async def join(self, flow: Flow) -> None:
        self.joined = flow
        say(f"joined {flow.title}")
        await self.show(await self.client.messages(flow.id, since=int(time.time()) - 3600))

    async def command(self, line: str) -> bool:
        """Carry out one line; False to leave."""
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "/quit":
            return False
        if word == "/help":
            say(HELP)
        elif word == "/flows":
            self.flows = await self.client.flows()
            for number, flow in enumerate(self.flows, 1):
                say(f"{number:3} {flow.type:8} {flow.title}")
        elif word == "/join":
            found = [f for n, f in enumerate(self.flows, 1) if rest in (str(n), f.title)]
            if found:
                await self.join(found[0])
            else:
                say("! no such flow: see /flows")
        elif word == "/new":
            await self.create(*rest.partition(" ")[::2])
        elif word.startswith("/"):
            say("! unknown command: /help lists them")
        elif self.joined is None:
            say("! join a flow first: /flows, /join")
        elif line.strip():
            await self.client.send(self.joined.id, line)
        return True

    async def create(self, kind: str, title: str) -> None:
        flow_type = FLOW_TYPES.get(kind)
        title = title.strip()
        if flow_type is None or not title:
            say("! /new group TITLE, /new channel TITLE or /new chat USER_ID")
            return
        assert self.client.user_id is not None
        users = [self.client.user_id, title] if flow_type == "chat" else None
        title = f"chat with {title}" if flow_type == "chat" else title
        await self.join(await self.client.add_flow(flow_type, title, users=users))

    async def run(self, every: float) -> None:
        if not await self.sign_in():
            return
        self.flows = await self.client.flows()
        say("type /help for commands")
        if self.flows:
            await self.join(self.flows[0])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.follow, every)
            while (line := await read_line()) is not None:
                try:
                    if not await self.command(line):
                        break
                except (RequestFailed, ConnectionLost) as exc:
                    say(f"! {exc}")
            nursery.cancel_scope.cancel()


async def chat(url: str, every: float) -> None:
    async with open_client(url, reconnect=True) as client:
        await Chat(client).run(every)


def main(url: str, every: float) -> int:
    try:
        trio.run(chat, url, every)
    except (OSError, HandshakeError, ConnectionLost) as exc:
        print(f"morelia-trio chat: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0

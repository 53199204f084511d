"""Several servers sharing one state through a real nats-server's JetStream stream."""

from __future__ import annotations

import trio

from tests.cluster import Nodes
from tests.wire import open_client


async def test_a_user_registered_on_one_server_logs_in_and_talks_on_another(
    deadline: None, nodes: Nodes
) -> None:
    a, b = await nodes.add(), await nodes.add()
    async with open_client(a.url) as on_a, open_client(b.url) as on_b:
        user_id = await on_a.register("ann", "ann-password")
        assert await on_b.login("ann", "ann-password")
        [general] = await on_b.flows()
        sent = await on_b.send(general["id"], "hello from b")
        [seen] = await on_a.messages(general["id"])
        assert seen["id"] == sent["id"] and seen["text"] == "hello from b"
        assert seen["from_user"] == str(user_id)


async def test_a_server_stops_cleanly_while_others_keep_changing_things(
    deadline: None, nodes: Nodes
) -> None:
    """Records still arrive while a stopping server closes its stream: they wake no one."""
    a, b = await nodes.add(), await nodes.add()
    stopped = trio.Event()
    sent = 0
    async with open_client(b.url) as on_b:
        await on_b.register("ann", "ann-password")
        [general] = await on_b.flows()

        async def talk() -> None:
            nonlocal sent
            while not stopped.is_set() and sent < 500:  # under one reply's cap
                await on_b.send(general["id"], f"message {sent}")
                sent += 1

        async with trio.open_nursery() as chatter:
            chatter.start_soon(talk)
            for _ in range(10):  # each stop a chance to meet a record in flight
                await trio.sleep(0.05)
                await a.stop()
                await a.start(nodes.nursery)
            stopped.set()
        async with open_client(a.url) as on_a:
            await on_a.login("ann", "ann-password")
            assert len(await on_a.messages(general["id"])) == sent

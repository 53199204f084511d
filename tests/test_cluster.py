"""Several servers sharing one state through a real nats-server's JetStream stream."""

from __future__ import annotations

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

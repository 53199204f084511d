"""Several servers sharing one state through a real nats-server's JetStream stream.

Each test starts real nats-server processes (tests/nats.py) and servers in-process
(tests/cluster.py), and speaks to them through real WebSockets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
import trio
import trustme

from morelia_trio.cluster.address import EventLogMismatch
from morelia_trio.cluster.serving import EventLogUnreachable, caught_up
from morelia_trio.config import AbuseLimits, Config, Rate
from morelia_trio.core import snapshot_format
from morelia_trio.server import serve
from tests.cluster import Nodes, event_log_url
from tests.nats import NatsCluster, NatsServer, in_asyncio
from tests.test_admin import admin, lines
from tests.test_http import exchange, get
from tests.test_live import items, pushed, subscribe
from tests.wire import Client, RequestFailed, open_client

Frame = dict[str, Any]


async def stream_records(url: str, stream: str) -> tuple[int, list[bytes]]:
    """The stream's first sequence number and every record it holds, raw."""

    async def read() -> tuple[int, list[bytes]]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            records = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                records.append((await js.get_msg(stream, seq)).data or b"")
            return info.state.first_seq, records
        finally:
            await nc.close()

    result = await in_asyncio(read())
    return result


async def stream_leader(url: str, stream: str) -> str:
    async def ask() -> str:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().stream_info(stream)
            assert info.cluster is not None and info.cluster.leader is not None
            return info.cluster.leader
        finally:
            await nc.close()

    leader = await in_asyncio(ask())
    return leader


async def assert_same_state(nodes: Nodes) -> None:
    """Every running server holds the same state, byte for byte (as a snapshot holds it)."""
    snapshots = set()
    for node in nodes.nodes:
        if node.running is not None:
            await node.running.store.call(caught_up)  # a read: waits for the stream's end
            captured = await node.running.store.capture()
            snapshots.add(snapshot_format.encode(captured, 0.0))
    assert len(snapshots) == 1


async def general(client: Client) -> str:
    [flow] = [flow for flow in await client.flows() if flow["title"] == "General"]
    return str(flow["id"])


async def test_a_user_registered_on_one_server_logs_in_and_talks_on_another(
    deadline: None, nodes: Nodes
) -> None:
    a, b = await nodes.add(), await nodes.add()
    async with open_client(a.url) as on_a, open_client(b.url) as on_b:
        user_id = await on_a.register("ann", "ann-password")
        assert await on_b.login("ann", "ann-password") == user_id
        sent = await on_b.send(await general(on_b), "hello from b")
        [seen] = await on_a.messages(await general(on_a))
        assert seen["id"] == sent["id"] and seen["text"] == "hello from b"
        assert seen["from_user"] == user_id
        # A token issued by one server is good on the other.
        on_b.user_id, on_b.token = on_a.user_id, on_a.token
        await on_b.ping()


async def test_every_write_is_read_at_once_through_any_server(deadline: None, nodes: Nodes) -> None:
    """Read your writes across servers: a read waits for what the stream held when it came."""
    a, b = await nodes.add(), await nodes.add()
    async with open_client(a.url) as on_a, open_client(b.url) as on_b:
        await on_a.register("ann", "ann-password")
        on_b.user_id, on_b.token = on_a.user_id, on_a.token
        flow = await general(on_a)
        for n in range(40):
            writer, reader = (on_a, on_b) if n % 2 else (on_b, on_a)
            sent = await writer.send(flow, f"message {n}")
            texts = [m["text"] for m in await reader.messages(flow)]
            assert texts[-1] == f"message {n}" and len(texts) == n + 1, sent


async def test_a_subscriber_on_one_server_hears_changes_made_on_another(
    deadline: None, nodes: Nodes
) -> None:
    a, b = await nodes.add(), await nodes.add()
    async with open_client(a.url) as on_a, open_client(b.url) as on_b:
        await on_a.register("ann", "ann-password")
        await on_b.register("bob", "bob-password")
        await subscribe(on_b)
        await on_a.send(await general(on_a), "live across servers")
        assert items(await pushed(on_b)) == [("message", "live across servers")]


async def register_into(
    outcomes: dict[str, str | int], client: Client, name: str, login: str
) -> None:
    """Register ``login``; note the user id, or the error code."""
    try:
        outcomes[name] = await client.register(login, f"{name}-password")
    except RequestFailed as failed:
        outcomes[name] = failed.code


async def send_or_code(client: Client, flow: str, text: str) -> int:
    try:
        await client.send(flow, text)
    except RequestFailed as failed:
        return failed.code
    return 200


async def test_two_servers_racing_for_one_login_agree_that_exactly_one_won(
    deadline: None, nodes: Nodes
) -> None:
    a, b = await nodes.add(), await nodes.add()
    async with open_client(a.url) as on_a, open_client(b.url) as on_b:
        for n in range(25):
            login = f"racer{n}"
            outcomes: dict[str, str | int] = {}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(register_into, outcomes, on_a, "a", login)
                nursery.start_soon(register_into, outcomes, on_b, "b", login)
            assert list(outcomes.values()).count(409) == 1, outcomes
            [winner] = [name for name, value in outcomes.items() if value != 409]
            await assert_same_state(nodes)
            for url in (a.url, b.url):  # both know the winner by the same id and password
                async with open_client(url) as fresh:
                    assert await fresh.login(login, f"{winner}-password") == outcomes[winner]


async def test_edits_racing_deletes_end_the_same_on_every_server(
    deadline: None, nodes: Nodes
) -> None:
    a, b = await nodes.add(), await nodes.add()
    async with open_client(a.url) as on_a, open_client(b.url) as on_b:
        await on_a.register("ann", "ann-password")
        on_b.user_id, on_b.token = on_a.user_id, on_a.token
        flow = await general(on_a)
        won: dict[str, int] = {"edit": 0, "delete": 0}
        for n in range(20):
            message = (await on_a.send(flow, f"draft {n}"))["id"]
            edit: list[object] = []

            async def edit_on_a(message: str = message, edit: list[object] = edit) -> None:
                try:
                    await on_a.edit(message, "edited")
                    edit.append("ok")
                except RequestFailed as failed:
                    edit.append(failed.code)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(edit_on_a)
                nursery.start_soon(on_b.delete_message, message)
            # The delete always succeeds; the edit either came first, or found nothing.
            assert edit in (["ok"], [404]), edit
            won["edit" if edit == ["ok"] else "delete"] += 1
        seen_a = await on_a.messages(flow)
        seen_b = await on_b.messages(flow)
        assert seen_a == seen_b == []
        assert won["edit"] + won["delete"] == 20
        await assert_same_state(nodes)


async def test_a_newcomer_catches_up_and_a_restarted_server_goes_on_from_its_snapshot(
    deadline: None, nodes: Nodes
) -> None:
    a = await nodes.add()
    async with open_client(a.url) as on_a:
        await on_a.register("ann", "ann-password")
        flow = await general(on_a)
        for n in range(10):
            await on_a.send(flow, f"before {n}")
    b = await nodes.add()  # an empty data directory
    async with open_client(b.url) as on_b:
        await on_b.login("ann", "ann-password")
        assert [m["text"] for m in await on_b.messages(flow)] == [f"before {n}" for n in range(10)]
    await b.stop()  # an orderly stop: a snapshot in its data directory
    assert (b.config.data_dir / "snapshot.msgpack").exists()
    async with open_client(a.url) as on_a:
        await on_a.login("ann", "ann-password")
        await on_a.send(flow, "while b was away")
    await b.start(nodes.nursery)
    async with open_client(b.url) as on_b:
        await on_b.login("ann", "ann-password")
        texts = [m["text"] for m in await on_b.messages(flow)]
        assert texts[-1] == "while b was away" and len(texts) == 11


async def test_the_stream_is_purged_behind_snapshots_and_a_newcomer_starts_from_one(
    deadline: None, nats_server: NatsServer, nursery: trio.Nursery, tmp_path: Path
) -> None:
    nodes = Nodes(nursery, tmp_path, nats_server, snapshot_interval=0.1, event_log_keep=5)
    a, behind = await nodes.add(), await nodes.add()
    async with open_client(a.url) as on_a:
        await on_a.register("ann", "ann-password")
        flow = await general(on_a)
        await behind.stop()  # its own snapshot will be older than the stream's first record
        for n in range(30):
            await on_a.send(flow, f"message {n}")
        with trio.fail_after(10):
            while (await stream_records(nats_server.url, nodes.stream))[0] <= 20:
                await trio.sleep(0.1)
                await on_a.ping()
    first, records = await stream_records(nats_server.url, nodes.stream)
    assert first > 20 and len(records) < 15  # bounded: the records before are purged
    newcomer = await nodes.add()
    async with open_client(newcomer.url) as on_newcomer:
        await on_newcomer.login("ann", "ann-password")
        texts = [m["text"] for m in await on_newcomer.messages(flow)]
        assert texts == [f"message {n}" for n in range(30)]
    await behind.start(nursery)  # from the stream's snapshot, not its own
    async with open_client(behind.url) as on_behind:
        await on_behind.login("ann", "ann-password")
        texts = [m["text"] for m in await on_behind.messages(flow)]
        assert texts == [f"message {n}" for n in range(30)]
    await assert_same_state(nodes)


async def test_the_stream_holds_no_password_and_no_token(
    deadline: None, nodes: Nodes, nats_server: NatsServer
) -> None:
    a = await nodes.add()
    async with open_client(a.url) as on_a:
        await on_a.register("ann", "PASSWORD-ann-123")
        first_token = on_a.token
        await on_a.login("ann", "PASSWORD-ann-123")
        await on_a.send(await general(on_a), "hello")
        await on_a.add_flow("group", "Group")
    _, records = await stream_records(nats_server.url, nodes.stream)
    assert len(records) >= 5
    raw = b"".join(records)
    for secret in ("PASSWORD-ann-123", first_token, on_a.token):
        assert secret is not None and secret.encode() not in raw


async def test_while_the_log_is_away_changes_get_503_reads_go_on_and_it_recovers(
    deadline: None, nodes: Nodes, nats_server: NatsServer
) -> None:
    a = await nodes.add(event_log_timeout=3.0)
    async with open_client(a.url) as on_a:
        await on_a.register("ann", "ann-password")
        flow = await general(on_a)
        await on_a.send(flow, "before")
        await nats_server.stop()
        # The first change waits out its deadline (the log may only be changing leaders);
        # once the log is known to be away, changes are refused at once.
        assert await send_or_code(on_a, flow, "while away") == 503
        assert await send_or_code(on_a, flow, "while away") == 503
        with trio.fail_after(1):
            assert await send_or_code(on_a, flow, "while away") == 503
        # Reads are served from the last state.
        assert [m["text"] for m in await on_a.messages(flow)] == ["before"]
        async with open_client(a.url) as reader:  # a login's session is a change
            with pytest.raises(RequestFailed) as refused:
                await reader.login("ann", "ann-password")
            assert refused.value.code == 503
        assert a.running is not None
        response = await exchange(a.running, get("/readyz"))
        assert (response.status, response.body) == (
            503,
            b"not ready: the event log cannot be reached; changes are refused until it is back\n",
        )
        await nats_server.start()
        with trio.fail_after(15):  # reconnects by itself
            while (code := await send_or_code(on_a, flow, "after")) != 200:
                assert code == 503
                await trio.sleep(0.2)
        # Nothing refused half-happened.
        assert [m["text"] for m in await on_a.messages(flow)] == ["before", "after"]


async def test_three_nats_servers_with_three_replicas_outlive_one_of_them(
    deadline: None, nats_cluster: NatsCluster, nursery: trio.Nursery, tmp_path: Path
) -> None:
    nodes = Nodes(nursery, tmp_path, nats_cluster, event_log_replicas=3)
    a, b = await nodes.add(), await nodes.add()
    async with open_client(a.url) as on_a, open_client(b.url) as on_b:
        await on_a.register("ann", "ann-password")
        on_b.user_id, on_b.token = on_a.user_id, on_a.token
        flow = await general(on_a)
        await on_a.send(flow, "before")
        leader = await stream_leader(nats_cluster.urls[0], nodes.stream)
        [server] = [server for server in nats_cluster.servers if server.name == leader]
        await server.kill()  # the stream's leader: a new one is elected
        for n in range(10):
            await (on_a if n % 2 else on_b).send(flow, f"after {n}")
        texts = [m["text"] for m in await on_b.messages(flow)]
        assert texts == ["before", *(f"after {n}" for n in range(10))]


async def test_the_log_may_need_a_password_which_no_log_line_shows(
    deadline: None,
    nats_binary: str,
    nursery: trio.Nursery,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = NatsServer(
        nats_binary, tmp_path / "nats", extra=("--user", "mt", "--pass", "s3cret-pw")
    )
    await server.start()
    try:
        caplog.set_level(logging.DEBUG)
        hosts = f"mt:s3cret-pw@127.0.0.1:{server.port}"
        nodes = Nodes(nursery, tmp_path, server)
        nodes.url = f"nats://{hosts}/{nodes.stream}"
        a = await nodes.add()
        async with open_client(a.url) as on_a:
            await on_a.register("ann", "ann-password")
        wrong = msgspec.structs.replace(
            nodes.config(5), event_log=f"nats://mt:wrong-pw@127.0.0.1:{server.port}/{nodes.stream}"
        )
        with pytest.raises(EventLogUnreachable) as refused:
            await serve(wrong)
        assert "wrong-pw" not in str(refused.value) and "***@" in str(refused.value)
        await a.stop()
        assert "s3cret-pw" not in caplog.text and "wrong-pw" not in caplog.text
    finally:
        await server.stop()


async def test_tls_to_the_log(
    deadline: None, nats_binary: str, nursery: trio.Nursery, tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    tls = ("--tls", "--tlscert", str(tmp_path / "cert.pem"), "--tlskey", str(tmp_path / "key.pem"))
    server = NatsServer(nats_binary, tmp_path / "nats", extra=tls)
    await server.start()
    try:
        nodes = Nodes(nursery, tmp_path, server, event_log_ca=tmp_path / "ca.pem")
        nodes.url = f"tls://127.0.0.1:{server.port}/{nodes.stream}"
        a = await nodes.add()
        async with open_client(a.url) as on_a:
            await on_a.register("ann", "ann-password")
        untrusting = msgspec.structs.replace(nodes.config(5), event_log_ca=None)
        with pytest.raises(EventLogUnreachable, match="certificate"):
            await serve(untrusting)
        await a.stop()
    finally:
        await server.stop()


async def test_a_data_directory_serves_one_stream(
    deadline: None, nodes: Nodes, nats_server: NatsServer, morelia_config: Config
) -> None:
    a = await nodes.add()
    await a.stop()
    other = msgspec.structs.replace(a.config, event_log=event_log_url(nats_server, "Other"))
    with pytest.raises(EventLogMismatch, match="another stream"):
        await serve(other)
    # A server's own journal is no place for a stream's records either.
    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve, morelia_config)
        async with open_client(running.url) as client:
            await client.register("ann", "ann-password")
        nursery.cancel_scope.cancel()
    shared = msgspec.structs.replace(morelia_config, event_log=nodes.url)
    with pytest.raises(EventLogMismatch, match="own journal"):
        await serve(shared)


LOCKED_DOWN = """
accounts {
  MORELIA: {
    jetstream: enabled
    users: [ { user: morelia, password: "morelia-secret" } ]
  }
  OTHERS: {
    jetstream: enabled
    users: [ { user: someone, password: "someone-secret" } ]
  }
}
"""


async def test_a_stream_in_an_account_of_its_own_is_out_of_other_users_reach(
    deadline: None, nats_binary: str, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The README's way to lock the stream down: an account of its own on the NATS side."""
    (tmp_path / "nats.conf").write_text(LOCKED_DOWN)
    server = NatsServer(
        nats_binary, tmp_path / "nats", extra=("--config", str(tmp_path / "nats.conf"))
    )
    await server.start()
    try:
        nodes = Nodes(nursery, tmp_path, server)
        nodes.url = f"nats://morelia:morelia-secret@127.0.0.1:{server.port}/{nodes.stream}"
        a = await nodes.add()
        async with open_client(a.url) as on_a:
            await on_a.register("ann", "ann-password")
            await on_a.send(await general(on_a), "for members only")

        async def look(user: str, password: str) -> tuple[bool, int]:
            nc = await nats.connect(f"nats://{user}:{password}@127.0.0.1:{server.port}")
            try:
                js = nc.jetstream()
                try:
                    info = await js.stream_info(nodes.stream)
                except nats.js.errors.NotFoundError:
                    return False, 0
                return True, info.state.messages
            finally:
                await nc.close()

        assert await in_asyncio(look("someone", "someone-secret")) == (False, 0)
        found, messages = await in_asyncio(look("morelia", "morelia-secret"))
        assert found and messages >= 3
        await a.stop()
    finally:
        await server.stop()


async def test_metrics_show_the_event_log(deadline: None, nodes: Nodes) -> None:
    a = await nodes.add()
    async with open_client(a.url) as on_a:
        await on_a.register("ann", "ann-password")
    assert a.running is not None
    body = (await exchange(a.running, get("/metrics"))).body.decode()
    assert "morelia_event_log_connected 1.0" in body
    assert "morelia_event_log_changes_waiting 0.0" in body
    assert "morelia_event_log_reads_waiting 0.0" in body
    [record] = [line for line in body.splitlines() if line.startswith("morelia_event_log_record ")]
    assert float(record.split()[1]) >= 2  # the General flow and ann


async def test_the_admin_tool_on_one_server_acts_on_every_server(
    deadline: None, nodes: Nodes
) -> None:
    a, b = await nodes.add(), await nodes.add()
    async with open_client(b.url) as on_b:
        await on_b.register("ann", "ann-password")
        _, err = await admin(a.config.data_dir, "suspend", "ann")  # through a's socket
        assert "suspended" in err
        with pytest.raises(RequestFailed) as refused:
            await on_b.ping()  # the session ended with the suspension, on b too
        assert refused.value.code == 401
    out, _ = await admin(b.config.data_dir, "users")
    assert [(u["login"], u["suspended"]) for u in lines(out)] == [("ann", True)]
    # Stopped, a server's directory holds a copy of the stream's state: reads only.
    await b.stop()
    out, _ = await admin(b.config.data_dir, "users")
    assert [(u["login"], u["suspended"]) for u in lines(out)] == [("ann", True)]
    _, err = await admin(b.config.data_dir, "restore", "ann", ok=False)
    assert "holds a copy of a shared event log's state" in err


async def test_a_limit_kept_in_the_state_holds_across_servers(
    deadline: None, nats_server: NatsServer, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Flows one user may own: both servers decide each add_flow in the stream's order, so
    however the requests race, the user ends with the most it may own, on every server."""
    limits = AbuseLimits(max_owned_flows=4, flows_per_user=Rate(100, 60.0))
    nodes = Nodes(nursery, tmp_path, nats_server, abuse=limits)
    a, b = await nodes.add(), await nodes.add()
    async with open_client(a.url) as on_a, open_client(b.url) as on_b:
        await on_a.register("ann", "ann-password")
        on_b.user_id, on_b.token = on_a.user_id, on_a.token
        codes: list[int] = []

        async def add(client: Client, title: str) -> None:
            try:
                await client.add_flow("group", title)
                codes.append(200)
            except RequestFailed as failed:
                codes.append(failed.code)

        async with trio.open_nursery() as racing:
            for n in range(10):
                racing.start_soon(add, on_a if n % 2 else on_b, f"group {n}")
        assert sorted(codes) == [200] * 4 + [403] * 6
        for client in (on_a, on_b):
            mine = [f for f in await client.flows() if f["owner"] == on_a.user_id]
            assert len(mine) == 4
    await assert_same_state(nodes)


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

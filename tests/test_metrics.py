"""GET /metrics: Prometheus' text format, scraped over real HTTP after real traffic."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import msgspec
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import ConnectionRejected

from morelia_trio import Config, Running, live, serve
from morelia_trio.config import AbuseLimits, Rate
from morelia_trio.core.snapshot_format import SNAPSHOT_NAME
from morelia_trio.metrics import REFUSING_LIMITS
from tests.test_cli import without_settings
from tests.test_connections import PING, start
from tests.test_http import Response, get
from tests.test_live import call, items, pushed, subscribe
from tests.wire import Client, RequestFailed, open_client

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def fetch(host: str, port: int, path: str) -> Response:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(get(path))
        raw = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                raw += chunk
    return Response(raw)


async def scrape(running: Running) -> Samples:
    """Every sample /metrics shows, by name and labels."""
    response = await fetch(running.host, running.metrics_port, "/metrics")
    assert response.status == 200, response.body
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def requests(samples: Samples) -> dict[tuple[str, str], float]:
    """morelia_requests_total by (type, code)."""
    return {
        (dict(labels)["type"], dict(labels)["code"]): value
        for (name, labels), value in samples.items()
        if name == "morelia_requests_total"
    }


async def test_requests_are_counted_by_type_and_code_with_bounded_labels(
    server: Running, client: Client
) -> None:
    await client.register("metered", "metered-password")
    flow = (await client.flows())[0]["uuid"]
    await client.send(flow, "counted")
    await client.send(flow, "counted again")
    await client.ping()
    assert (await client.request(PING))["errors"]["code"] == 401  # no credentials
    await client.request("not json")
    await client.request('{"type": "no_such\\ntype", "data": {}}')
    await client.request('{"type": "ping-pong"}')  # an alias: its own known type
    samples = await scrape(server)
    counted = requests(samples)
    assert counted == {
        ("register_user", "201"): 1,
        ("all_flow", "200"): 1,
        ("send_message", "200"): 2,
        ("ping_pong", "200"): 1,
        ("ping_pong", "401"): 1,
        ("errors", "400"): 1,
        ("other", "400"): 1,
        ("ping-pong", "401"): 1,
    }
    assert samples["morelia_reply_seconds_count", ()] == 9
    assert 0 < samples["morelia_reply_seconds_sum", ()] < 9
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == "morelia_reply_seconds_bucket"
    )
    assert buckets[-1] == (float("inf"), 9.0)
    assert [value for _, value in buckets] == sorted(value for _, value in buckets)
    assert buckets[0][1] < 9  # a registration (a password hashed) takes longer than 100 us
    # The client's connection and the scraper's own.
    assert samples["morelia_connections_open", ()] == 2
    assert samples["morelia_owner_queue", ()] == 0
    assert samples["morelia_password_hashes_waiting", ()] == 0
    assert samples["morelia_password_hashes_running", ()] == 0
    # Three changes (the registration, two messages), each fsynced before its reply.
    synced = (("synced", "true"),)
    assert samples["morelia_journal_write_seconds_count", synced] >= 3
    assert samples["morelia_journal_batch_records_sum", ()] >= 3
    assert samples["morelia_journal_batch_records_count", ()] >= 3


async def test_refusals_are_counted_by_the_limit_that_refused(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    abuse = AbuseLimits(registrations_per_address=Rate(1, 0.001), connections_per_address=2)
    running = await start(nursery, morelia_config, abuse)
    async with open_client(running.url) as first, open_client(running.url) as second:
        await first.register("first", "first-password")
        with pytest.raises(RequestFailed) as refused:
            await second.register("second", "second-password")
        assert refused.value.code == 429
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_client(running.url):
                pass
        assert rejected.value.status_code == 429
    samples = await scrape(running)
    refusals = {
        dict(labels)["limit"]: value
        for (name, labels), value in samples.items()
        if name == "morelia_rate_limit_refusals_total"
    }
    assert set(refusals) == set(REFUSING_LIMITS)  # every limit, refused or not
    assert refusals["registrations_per_address"] == 1
    assert refusals["connections_per_address"] == 1
    assert sum(refusals.values()) == 2
    assert requests(samples)["register_user", "429"] == 1


async def test_snapshots_are_timed_and_their_size_shown(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    config = msgspec.structs.replace(morelia_config, snapshot_interval=0.05)
    running: Running = await nursery.start(serve, config)
    assert (await scrape(running))["morelia_snapshot_seconds_count", ()] == 0
    async with open_client(running.url) as client:
        await client.register("snapshotted", "snapshotted-password")
    for _ in range(100):  # a snapshot every 0.05 s, once something changed
        await trio.sleep(0.05)
        if (samples := await scrape(running))["morelia_snapshot_seconds_count", ()] > 0:
            break
    written = (config.data_dir / SNAPSHOT_NAME).stat().st_size
    assert samples["morelia_snapshot_bytes", ()] == written
    assert 0 < samples["morelia_snapshot_seconds_sum", ()] < 10


async def test_metrics_port_serves_metrics_alone(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    config = msgspec.structs.replace(morelia_config, metrics_port=0, metrics_host="127.0.0.1")
    running: Running = await nursery.start(serve, config)
    assert running.metrics_port != running.port
    assert running.metrics_url == f"http://127.0.0.1:{running.metrics_port}/metrics"
    async with open_client(running.url) as client:
        assert (await client.request(PING))["errors"]["code"] == 401
    assert requests(await scrape(running)) == {("ping_pong", "401"): 1}
    # Not on the WebSocket's port any more; nothing but /metrics on the metrics port.
    assert (await fetch(running.host, running.port, "/metrics")).status == 404
    assert (await fetch(running.host, running.port, "/healthz")).status == 200
    assert (await fetch(running.host, running.metrics_port, "/healthz")).status == 404
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_client(f"ws://127.0.0.1:{running.metrics_port}/ws"):
            pass
    assert rejected.value.status_code == 404


async def test_each_server_has_metrics_of_its_own(
    deadline: None, nursery: trio.Nursery, morelia_config: Config
) -> None:
    one = await start(nursery, morelia_config)
    other_config = msgspec.structs.replace(
        morelia_config, data_dir=morelia_config.data_dir.with_name("other")
    )
    other = await start(nursery, other_config)
    async with open_client(one.url) as client:
        await client.request(PING)
    assert requests(await scrape(one)) == {("ping_pong", "401"): 1}
    assert requests(await scrape(other)) == {}
    assert (await scrape(other))["morelia_reply_seconds_count", ()] == 0


async def test_live_updates_show_subscribers_updates_resyncs_and_backlogs(
    server: Running, ann: Client, bob: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    general = (await bob.flows())[0]["uuid"]
    await subscribe(ann)
    await bob.send(general, "to one subscriber")
    assert items(await pushed(ann)) == [("message", "to one subscriber")]
    samples = await scrape(server)
    assert samples["morelia_subscribers", ()] == 1
    assert samples["morelia_updates_total", ()] == 1
    assert samples["morelia_resyncs_total", ()] == 0
    assert samples["morelia_update_backlog", ()] == 0
    assert samples["morelia_update_backlog_largest", ()] == 0

    # A catch-up cut short owes a resync.
    monkeypatch.setattr(live, "CATCH_UP_PAGES", 0)
    reply, _ = await call(bob, "subscribe", time=1)
    assert reply["errors"]["code"] == 200
    assert (await pushed(bob))["type"] == "resync"
    await bob.send(general, "to two subscribers")
    for client in (ann, bob):
        assert items(await pushed(client)) == [("message", "to two subscribers")]
    samples = await scrape(server)
    assert samples["morelia_subscribers", ()] == 2
    assert samples["morelia_updates_total", ()] == 3
    assert samples["morelia_resyncs_total", ()] == 1


def test_the_backlogs_are_summed_over_the_subscribers() -> None:
    publisher = live.Publisher()
    for user_id, waiting in ((1, 3), (2, 5), (3, 0)):
        subscriber = live.Subscriber()
        for n in range(waiting):
            subscriber.hand(1000.0 + n, f"frame {n}")
        publisher.by_user[user_id] = {subscriber}
    assert publisher.backlog() == (8, 5)


async def test_the_readme_lists_every_metric(server: Running) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    listed = {
        name.removesuffix("_total") for name in re.findall(r"^\| `(morelia_\w+)", readme, re.M)
    }
    response = await fetch(server.host, server.port, "/metrics")
    served = {family.name for family in text_string_to_metric_families(response.body.decode())}
    # The parser takes a histogram's _created samples (its start time) for families.
    assert listed == {name for name in served if not name.endswith("_created")}


def test_the_cli_serves_metrics_on_the_port_a_variable_names(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "morelia_trio", "serve", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--data-dir", str(tmp_path / "data"), "--snapshot-interval", "inf"],
        stderr=subprocess.PIPE,
        text=True,
        env={**without_settings(os.environ), "MORELIA_METRICS_PORT": "0"},
    )
    try:
        assert process.stderr is not None
        urls: list[str] = []
        while len(urls) < 3:  # the WebSocket's, the page's, the metrics'
            urls += re.findall(r"\w+://\S+", process.stderr.readline())
        served, http, metrics = urls
        assert metrics.startswith("http://127.0.0.1:") and metrics.endswith("/metrics")
        assert not metrics.startswith(http)  # a port of its own
        with urllib.request.urlopen(metrics, timeout=10) as response:
            families = text_string_to_metric_families(response.read().decode())
            assert "morelia_connections_open" in {family.name for family in families}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, served
    finally:
        process.kill()
        process.communicate()

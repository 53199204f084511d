"""The benchmark's own parts that the suite cannot check by running: the broadcast ceiling
(a real process, real WebSockets), the fan-out targets' verdicts, and the servers sharing a
JetStream stream that the suite starts (a real nats-server, real servers)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from trio_websocket import open_websocket_url

from bench import targets
from morelia_trio.client import Session, open_client
from tests.nats import nats_server_binary

REPO = Path(__file__).resolve().parent.parent
URL_LINE = re.compile(r"Serving ceiling on (ws://\S+)")


@pytest.fixture
def broadcast_ceiling() -> Iterator[str]:
    with subprocess.Popen(
        [sys.executable, "-m", "bench.ceiling", "--broadcast"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    ) as process:
        try:
            assert process.stderr is not None
            found = URL_LINE.search(process.stderr.readline())
            assert found, "the ceiling did not say its URL"
            yield found.group(1)
        finally:
            process.kill()  # SIGTERM may be ignored where the test runner's parent ignores it
            process.wait(timeout=10)


async def test_the_broadcast_ceiling_echoes_to_the_sender_and_sends_to_every_other(
    broadcast_ceiling: str,
) -> None:
    with trio.fail_after(10):
        async with (
            open_websocket_url(broadcast_ceiling) as sender,
            open_websocket_url(broadcast_ceiling) as ann,
            open_websocket_url(broadcast_ceiling) as bob,
        ):
            await trio.sleep(0.1)  # every connection accepted before the first frame
            for n in range(3):
                frame = f'{{"type": "send_message", "n": {n}}}'
                await sender.send_message(frame)
                assert await sender.get_message() == frame  # its reply, and nothing else
                assert await ann.get_message() == frame
                assert await bob.get_message() == frame


FAN_OUT = {
    "server_capacity": {
        "deliveries_per_s": 16_000.0,
        "subscribers": 1000,
        "server_cpu_us_per_delivery": 60.0,
    },
    "ceiling_capacity": {
        "deliveries_per_s": 20_000.0,
        "subscribers": 1000,
        "server_cpu_us_per_delivery": 45.0,
    },
    "capacity_ratio": 0.8,
    "capacity_ratio_rounds": "0.8 0.79 0.81",
    "server_fixed": {
        "latency_ms_p99": 60.0,
        "from_send_ms_p99": 70.0,
        "deliveries_per_s": 10_000.0,
        "missed": 0,
    },
    "ceiling_fixed": {"latency_ms_p99": 90.0},
    "stalled": {
        "latency_ms_p99": 20.0,
        "subscribers": 1000,
        "stalled": 100,
        "missed": 0,
        "rss_before_kib": 70 * 1024,
        "rss_after_kib": 76 * 1024,
        "resyncs": 100,
        "backlog_largest": 256,
    },
    "idle_subscribers": {
        "rate_ratio": 0.85,
        "rate_with": 8500.0,
        "rate_without": 10_000.0,
        "rates_with": "8500",
        "rates_without": "10000",
        "fixed_p99_ratio": 1.05,
        "fixed_p99_ms_with": 2.1,
        "fixed_p99_ms_without": 2.0,
        "p99s_with": "2.10",
        "p99s_without": "2.00",
    },
}


def test_each_fan_out_target_is_judged_with_the_ceiling_beside_it() -> None:
    found = {verdict.key: verdict for verdict in targets.fan_out_verdicts(FAN_OUT)}
    assert {key: verdict.met for key, verdict in found.items()} == {
        "fanout_capacity": True,
        "fanout_p99": False,  # 60 ms from the reply: beyond 50
        "fanout_stalled_p99": True,
        "idle_subscribers_round_trips": False,  # 85% of the rate without: beyond 10%
        "idle_subscribers_fixed": True,
    }
    assert "20,000" in found["fanout_capacity"].measured  # the ceiling's deliveries/s
    assert "76 MiB" in found["fanout_stalled_p99"].measured


def test_a_run_without_fan_out_figures_has_its_targets_unmeasured() -> None:
    recorded = json.loads((REPO / "bench" / "results.json").read_text(encoding="utf-8"))
    recorded["results"].pop("fan_out", None)
    found = {verdict.key: verdict for verdict in targets.verdicts(recorded["results"])}
    for key in targets.FAN_OUT_KEYS:
        assert (found[key].value, found[key].met) == (None, None)


# --- servers sharing a JetStream stream (bench/nodes.py) ---------------------------------------


def _bench_extra() -> None:
    """Skip without nats-server, or without the bench extra (the load generator's picows)."""
    nats_server_binary()
    pytest.importorskip("picows", reason="the bench extra is not installed (make bench has it)")


def test_two_servers_on_a_stream_the_bench_seeds_serve_its_users_and_share_the_load(
    tmp_path: Path,
) -> None:
    _bench_extra()
    from bench import nodes, prepare, suite
    from bench.loadgen import RoundTrips

    template = tmp_path / "template"
    prepared = prepare.build(template, chat_users=4)
    (ann_id, ann_token), (bob_id, bob_token) = prepared.chat_users[:2]
    with (
        nodes.running_nats(tmp_path / "nats") as nats_server,
        nodes.running_nodes(template, tmp_path, nats_server, "SEEDED", 2) as (first, second),
    ):

        async def chat() -> None:
            ann_session = Session(str(ann_id), ann_token)
            bob_session = Session(str(bob_id), bob_token)
            with trio.fail_after(20):
                async with (
                    open_client(first.url, session=ann_session) as ann,
                    open_client(second.url, session=bob_session) as bob,
                ):
                    general = str(prepare.GENERAL_FLOW)
                    await ann.send(general, "written through the first server")
                    texts = [message.text for message in await bob.messages(general)]
                    assert "written through the first server" in texts

        trio.run(chat)
        frames = [
            suite.send_frame(user, prepare.GENERAL_FLOW, "spread") for user in prepared.chat_users
        ]
        found = suite.drive(
            RoundTrips(
                url=first.url,
                more_urls=[second.url],
                server_pid=first.pid,
                watched={"node1": second.pid, "nats": nats_server.pid},
                frames=frames,
                warmup=0.2,
                duration=0.5,
            )
        )
    assert found["errors"] == 0 and int(found["messages"] or 0) > 0
    # both servers answered (each also applies the other's records), the nats-server stored
    for name in ("node1", "nats"):
        assert float(found[f"{name}_cpu_us_per_msg"] or 0) > 0, name


def test_the_stream_alone_is_measured_as_a_server_appends(tmp_path: Path) -> None:
    _bench_extra()
    from bench import nodes, stream_alone

    with nodes.running_nats(tmp_path / "nats") as nats_server:
        found = asyncio.run(
            stream_alone.measure(nats_server.url, "ALONE", [1, 8], 0.3, nats_server.pid, 20)
        )
        held = asyncio.run(_messages_in(nats_server.url, "ALONE"))
    appends = found["appends"]
    assert set(appends) == {"1", "8"}
    for result in appends.values():
        assert float(result["rate"] or 0) > 0
        assert float(result["ack_ms_p99"] or 0) > 0
    assert held >= sum(int(result["records"] or 0) for result in appends.values())
    assert found["barrier"]["barriers"] == 20 and float(found["barrier"]["barrier_ms_p99"] or 0) > 0


async def _messages_in(url: str, stream: str) -> int:
    import nats

    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


def _fake_nodes_document() -> dict[str, object]:
    def trips(rate: float) -> dict[str, object]:
        return {
            "rate": rate,
            "rate_x_local_always": rate / 10_000,
            "rate_x_local_off": rate / 12_000,
            "latency_ms_p50": 1.0,
            "latency_ms_p99": 2.0,
            "p99_x_local_always": 1.0,
            "p99_x_local_off": 1.0,
            "all_cpu_us_per_msg": 100.0,
            "servers_cpu_us_per_msg": 90.0,
            "server_busy": 0.9,
            "errors": 0,
        }

    def fixed() -> dict[str, object]:
        return {
            "offered_rate": 2000.0,
            "connections": 100,
            "rate": 2000.0,
            "latency_ms_p50": 1.0,
            "latency_ms_p99": 3.0,
            "latency_ms_p999": 4.0,
            "latency_ms_max": 5.0,
            "all_cpu_us_per_msg": 200.0,
            "unanswered": 0,
            "send_lag_ms_p99": 0.5,
        }

    setups = ("local_always", "local_off", "one_node", "two_nodes")
    return {
        "command": "python -m bench.experiments nodes",
        "date": "2026-12-05 20:00:00 UTC",
        "code": "abc1234",
        "seconds": 300.0,
        "plan": {"nodes_rounds": 3},
        "nodes": {
            "round_trips": {setup: {"100": trips(4321.0)} for setup in setups},
            "read_round_trips": {setup: {"100": trips(6543.0)} for setup in setups},
            "fixed_rate": {setup: fixed() for setup in setups},
            "stream_alone": {
                "appends": {
                    "100": {
                        "in_flight": 100,
                        "rate": 9876.0,
                        "ack_ms_p50": 1.0,
                        "ack_ms_p99": 2.5,
                        "record_bytes": 119,
                        "nats_cpu_us_per_record": 7.0,
                        "nats_busy": 0.07,
                        "client_cpu_us_per_record": 30.0,
                        "client_busy": 0.3,
                    }
                },
                "barrier": {"barriers": 500, "barrier_ms_p50": 0.21, "barrier_ms_p99": 0.87},
            },
        },
    }


def test_results_md_gets_one_section_on_the_shared_stream_before_the_kept_figures(
    tmp_path: Path,
) -> None:
    from bench import report

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nTables.\n\n## Figures behind the code\n\nKept.\n")
    section = report.nodes_section(_fake_nodes_document())
    assert "9,876 records a second at 100 in flight" in section  # how far one stream goes
    assert "answered\n  4,321 round trips" in section
    assert "0.87 ms at p99" in section  # a read barrier alone
    report.replace_nodes_section(results, section)
    report.replace_nodes_section(results, section)  # a second run replaces the first
    text = results.read_text()
    assert text.count(report.NODES_HEADING) == 1
    assert text.index("Tables.") < text.index(report.NODES_HEADING)
    assert text.index(report.NODES_HEADING) < text.index("## Figures behind the code")
    assert text.endswith("Kept.\n")

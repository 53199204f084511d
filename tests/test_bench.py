"""The benchmark's own parts that the suite cannot check by running: the broadcast ceiling
(a real process, real WebSockets) and the fan-out targets' verdicts."""

from __future__ import annotations

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

"""Throughput and p99 latency against connection count, for the ceiling and the server.

.venv/bin/python -m bench.plot [bench/results.json] [bench/results.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SERIES = (
    ("ceiling", "ceiling (trio-websocket echo)", "tab:gray"),
    ("ceiling_gc", "ceiling, server's gc", "tab:olive"),
    ("server_off", "server, fsync off", "tab:blue"),
    ("server_always", "server, fsync always", "tab:red"),
)


def plot(document: dict[str, Any], path: Path) -> None:
    results = document["results"]
    figure, (rate_axes, p99_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label, colour in SERIES:
        runs = results.get(f"{key}_round_trips", {})
        counts = sorted(runs, key=int)
        x = [int(count) for count in counts]
        rate_axes.plot(x, [runs[c]["rate"] for c in counts], "o-", label=label, color=colour)
        p99_axes.plot(
            x, [runs[c]["latency_ms_p99"] for c in counts], "o-", label=label, color=colour
        )
    rate_axes.set(
        xscale="log", xlabel="connections", ylabel="send_message round trips / s", ylim=(0, None)
    )
    rate_axes.set_title("Throughput (closed loop)")
    p99_axes.set(xscale="log", yscale="log", xlabel="connections", ylabel="p99 latency, ms")
    p99_axes.set_title("p99 latency (closed loop)")
    for axes in (rate_axes, p99_axes):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    machine = document.get("machine", {})
    figure.suptitle(
        f"morelia-trio, {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores "
        f"({document.get('command', '')}, {document.get('date', '')})",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="?", default=Path("bench/results.json"))
    parser.add_argument("png", type=Path, nargs="?", default=Path("bench/results.png"))
    args = parser.parse_args()
    plot(json.loads(args.results.read_text()), args.png)


if __name__ == "__main__":
    main()

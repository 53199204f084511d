"""Tables of a suite's results (markdown: it reads as well in a terminal), and RESULTS.md.

.venv/bin/python -m bench.report [bench/results.json] [--write-md bench/RESULTS.md]
.venv/bin/python -m bench.report --nodes bench/nodes.json [--write-md bench/RESULTS.md]

The targets are judged on the median of the runs on record (bench/runs.jsonl) and this one.
With ``--nodes``: only the section on servers sharing a JetStream stream, from the figures
``python -m bench.experiments nodes`` wrote, in place of RESULTS.md's.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

from .targets import STORM_KEYS, Run, met_cell, pct, ratio_of, standings, times, verdicts

Document: TypeAlias = dict[str, Any]
Row: TypeAlias = Sequence[object]
TARGETS = ("ceiling", "server_off", "server_always")
ROUND_TRIP_TARGETS = ("ceiling", "ceiling_gc", "server_off", "server_always")
# Each round trip row's median of per-round ratios to its round's ceiling: field -> key
# (suite.median_rounds computes them; each key's per-round values are under KEY_rounds).
CEILING_RATIOS = {
    "rate": "ceiling_ratio",
    "latency_ms_p99": "ceiling_p99_ratio",
    "server_cpu_us_per_msg": "ceiling_cpu_ratio",
}
NAMES = {
    "ceiling": "ceiling",
    "ceiling_gc": "ceiling, server's gc",
    "server_off": "server, fsync off",
    "server_always": "server, fsync always",
}


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title: str, header: Row, rows: Sequence[Row]) -> str:
    cells = [[_cell(v) for v in header], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([f"### {title}", "", line(cells[0]), rule, *map(line, cells[1:]), ""])


def round_trip_rows(results: Document) -> list[Row]:
    rows: list[Row] = []
    for target in ROUND_TRIP_TARGETS:
        for count, r in results.get(f"{target}_round_trips", {}).items():
            to_ceiling = {field: r[key] for field, key in CEILING_RATIOS.items()}
            rows.append(
                [
                    NAMES[target],
                    int(count),
                    r["rate"],
                    pct(to_ceiling["rate"]),
                    r["latency_ms_p50"],
                    r["latency_ms_p99"],
                    r["latency_ms_p999"],
                    times(to_ceiling["latency_ms_p99"]),
                    r["server_cpu_us_per_msg"],
                    times(to_ceiling["server_cpu_us_per_msg"]),
                    pct(r["server_busy"]),
                    pct(r["gen_busy"]),
                    r["gen_cpu_us_per_msg"],
                    r["errors"],
                ]
            )
    return rows


def targets_table(results: Document, runs: Sequence[Run]) -> str:
    """Each target: this run's figure and verdict, and the verdict on the median of ``runs``."""
    this_run = {v.key: v for v in verdicts(results)}
    rows: list[Row] = []
    for standing in standings(runs):
        own = this_run.get(standing.key)
        rows.append(
            [
                standing.target,
                "-" if own is None else own.measured,
                "-" if own is None else met_cell(own.met),
                # a target some runs did not measure says how many did
                standing.brief
                if standing.measured in (0, len(runs))
                else f"{standing.brief} (of {standing.measured})",
                met_cell(standing.met),
            ]
        )
    return table(
        "Targets",
        ["target", "this run", "met", f"median of {len(runs)} runs", "met by the median"],
        rows,
    )


def tables(document: Document, runs: Sequence[Run], *, nodes: bool = True) -> str:
    """Every table; ``runs``: the runs on record, this one included, to judge the targets on;
    ``nodes=False``: without the shared stream's (RESULTS.md gives them a section)."""
    results = document["results"]
    parts = [
        targets_table(results, runs),
        table(
            "Chat round trips (closed loop: send_message, wait for the reply, repeat)",
            [
                "target",
                "conns",
                "msg/s",
                "x ceiling",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "p99 x ceiling",
                "server us/msg",
                "x ceiling",
                "server busy",
                "gen busy",
                "gen us/msg",
                "errors",
            ],
            round_trip_rows(results),
        ),
    ]
    fixed_rows: list[Row] = []
    base = results["ceiling_fixed_rate"]
    for target in TARGETS:
        r = results[f"{target}_fixed_rate"]
        fixed_rows.append(
            [
                NAMES[target],
                r["rate"],
                r["latency_ms_p50"],
                r["latency_ms_p99"],
                r["latency_ms_p999"],
                r["latency_ms_max"],
                times(ratio_of(r["latency_ms_p99"], base["latency_ms_p99"])),
                r["server_cpu_us_per_msg"],
                pct(r["server_busy"]),
                r["unanswered"],
                r["send_lag_ms_p99"],
            ]
        )
    parts.append(
        table(
            f"Fixed load (open loop: {base['offered_rate']:,.0f} msg/s over "
            f"{base['connections']} connections, latency from the scheduled send time)",
            [
                "target",
                "answered msg/s",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "max ms",
                "p99 x ceiling",
                "server us/msg",
                "server busy",
                "unanswered",
                "gen lag p99 ms",
            ],
            fixed_rows,
        )
    )
    mixed = results["mixed"]
    ceiling_us = results["ceiling_round_trips"].get("100", {}).get("server_cpu_us_per_msg")
    parts.append(
        table(
            f"Mixed chat (fsync always): {mixed['pollers']} connections poll get_update every "
            f"second, {mixed['senders']} send",
            [
                "frames/s",
                "sends/s",
                "polls/s",
                "delivered/s",
                "freshness p50 ms",
                "p99 ms",
                "max ms",
                "send p99 ms",
                "poll p99 ms",
                "server us/frame",
                "x ceiling us/msg",
                "server busy",
                "errors",
            ],
            [
                [
                    mixed["rate"],
                    mixed["send_rate"],
                    mixed["poll_rate"],
                    mixed["delivered_rate"],
                    mixed["freshness_ms_p50"],
                    mixed["freshness_ms_p99"],
                    mixed["freshness_ms_max"],
                    mixed["send_ms_p99"],
                    mixed["poll_ms_p99"],
                    mixed["server_cpu_us_per_frame"],
                    times(ratio_of(mixed["server_cpu_us_per_frame"], ceiling_us)),
                    pct(mixed["server_busy"]),
                    mixed["send_errors"] + mixed["poll_errors"],
                ]
            ],
        )
    )
    storms = {mode: results[key] for mode, key in STORM_KEYS.items() if key in results}
    storm = storms["always"]
    parts.append(
        table(
            f"Login storm: {storm['logins']} concurrent authentications while "
            f"{storm['chat_connections']} connections chat at {storm['chat_rate']:,.0f} msg/s",
            [
                "server",
                "storm s",
                "logins/s",
                "login p50 ms",
                "login max ms",
                "chat p50 before ms",
                "chat p99 before ms",
                "chat p50 during ms",
                "chat p99 during ms",
                "p99 during / before",
                "server busy before",
                "during",
                "disk flush ms before",
                "during",
                "slowest 0.5 s before",
                "during",
                "errors",
            ],
            [
                [
                    f"fsync {mode}",
                    r["storm_seconds"],
                    r["logins_per_s"],
                    r["login_ms_p50"],
                    r["login_ms_max"],
                    r["baseline_ms_p50"],
                    r["baseline_ms_p99"],
                    r["storm_ms_p50"],
                    r["storm_ms_p99"],
                    times(ratio_of(r["storm_ms_p99"], r["baseline_ms_p99"])),
                    pct(r["baseline_server_busy"]),
                    pct(r["storm_server_busy"]),
                    r.get("baseline_disk_flush_ms"),
                    r.get("storm_disk_flush_ms"),
                    r.get("baseline_disk_flush_slowest_ms"),
                    r.get("storm_disk_flush_slowest_ms"),
                    r["login_errors"] + r["chat_errors"],
                ]
                for mode, r in storms.items()
            ],
        )
    )
    idle_rows: list[Row] = []
    for key, name in (("ceiling_idle", "ceiling"), ("server_idle", "server, fsync always")):
        r = results[key]
        idle_rows.append(
            [
                name,
                r["alive"],
                r["rss_before_kib"] / 1024,
                r["rss_after_kib"] / 1024,
                r["kib_per_connection"],
                times(
                    ratio_of(r["kib_per_connection"], results["ceiling_idle"]["kib_per_connection"])
                ),
                r["open_seconds"],
                r["errors"],
            ]
        )
    parts.append(
        table(
            "Idle connections (each sent one authenticated request, then stayed silent)",
            [
                "target",
                "open",
                "RSS before MiB",
                "after MiB",
                "KiB/connection",
                "x ceiling",
                "opened in s",
                "errors",
            ],
            idle_rows,
        )
    )
    history = results["history"]
    history_rows: list[Row] = []
    for label in sorted({key.split("_", 1)[0] for key in history}, key=int):
        history_rows.append(
            [
                int(label),
                history[f"{label}_first_page_ms_p50"],
                history[f"{label}_first_page_ms_max"],
                history[f"{label}_first_page_kib"],
                history[f"{label}_pages"],
                history[f"{label}_messages"],
                history[f"{label}_all_seconds"],
                history[f"{label}_messages_per_s"],
                history[f"{label}_server_cpu_us_per_msg"],
            ]
        )
    parts.append(
        table(
            "History (all_messages, list dialect: the first page, then every page)",
            [
                "flow messages",
                "first page p50 ms",
                "max ms",
                "page KiB",
                "pages",
                "received",
                "all in s",
                "messages/s",
                "server us/msg",
            ],
            history_rows,
        )
    )
    scale = results["scale"]
    parts.append(
        table(
            "Scale of state (in-process, bench/state_scale.py)",
            [
                "users",
                "messages",
                "state RSS MiB",
                "snapshot MiB",
                "capture pause ms (worst)",
                "encode+write+fsync s",
                "restart s",
                "journal MiB",
                "journal replayed",
                "peak RSS MiB",
            ],
            [
                [
                    scale["users"],
                    scale["messages"],
                    scale["state_rss_mib"],
                    scale["snapshot_mib"],
                    scale["pause_worst_ms"],
                    scale["snapshot_write_s"],
                    scale["restart_s"],
                    scale["journal_mib"],
                    scale["journal_records"],
                    scale["peak_rss_mib"],
                ]
            ],
        )
    )
    if nodes and "nodes" in results:
        parts.append(nodes_tables(results["nodes"]))
    return "\n".join(parts)


# --- servers sharing a JetStream stream (bench/nodes.py): figures only, no target ----------

NODE_SETUPS = {
    "local_always": "local journal, fsync always",
    "local_off": "local journal, fsync off",
    "one_node": "one server, one stream",
    "two_nodes": "two servers, one stream",
}


def _servers_busy(r: Document) -> float:
    """The share of a core that the setup's servers used, together (not its nats-server)."""
    extra = (value for key, value in r.items() if key.startswith("node") and key.endswith("_busy"))
    return float(r["server_busy"]) + sum(float(value) for value in extra)


def _node_trip_rows(trips: Document) -> list[Row]:
    trip_rows: list[Row] = []
    for setup, name in NODE_SETUPS.items():
        for count, r in trips[setup].items():
            trip_rows.append(
                [
                    name,
                    int(count),
                    r["rate"],
                    pct(r["rate_x_local_always"]),
                    pct(r["rate_x_local_off"]),
                    r["latency_ms_p50"],
                    r["latency_ms_p99"],
                    times(r["p99_x_local_always"]),
                    times(r["p99_x_local_off"]),
                    r["all_cpu_us_per_msg"],
                    r["servers_cpu_us_per_msg"],
                    r.get("nats_cpu_us_per_msg"),
                    pct(_servers_busy(r)),
                    None if "nats_busy" not in r else pct(r["nats_busy"]),
                    r["errors"],
                ]
            )
    return trip_rows


TRIP_HEADER = [
    "setup",
    "conns",
    "msg/s",
    "x fsync always",
    "x fsync off",
    "p50 ms",
    "p99 ms",
    "p99 x always",
    "p99 x off",
    "all us/msg",
    "servers us/msg",
    "nats us/msg",
    "servers busy",
    "nats busy",
    "errors",
]


def nodes_tables(found: Document) -> str:
    """The round trips, the fixed load and the stream alone, with their ratios to the local
    journal measured in the same run (round trips: the median of each round's own ratio)."""
    fixed = found["fixed_rate"]
    fixed_rows: list[Row] = []
    for setup, name in NODE_SETUPS.items():
        r = fixed[setup]
        base = {local: fixed[local]["latency_ms_p99"] for local in ("local_always", "local_off")}
        fixed_rows.append(
            [
                name,
                r["rate"],
                r["latency_ms_p50"],
                r["latency_ms_p99"],
                r["latency_ms_p999"],
                r["latency_ms_max"],
                times(ratio_of(r["latency_ms_p99"], base["local_always"])),
                times(ratio_of(r["latency_ms_p99"], base["local_off"])),
                r["all_cpu_us_per_msg"],
                r["unanswered"],
                r["send_lag_ms_p99"],
            ]
        )
    first = fixed["local_always"]
    alone_rows: list[Row] = [
        [
            sync,
            int(count),
            r["rate"],
            r["ack_ms_p50"],
            r["ack_ms_p99"],
            r["record_bytes"],
            r["nats_cpu_us_per_record"],
            pct(r["nats_busy"]),
            r["client_cpu_us_per_record"],
            pct(r["client_busy"]),
        ]
        for key, sync in (
            ("stream_alone", "every 2 minutes"),
            ("stream_alone_sync_always", "every write"),
        )
        if key in found
        for count, r in found[key]["appends"].items()
    ]
    return "\n".join(
        [
            table(
                "Shared stream: round trips (closed loop, the suite's chat clients; two "
                "servers: the connections split over both)",
                TRIP_HEADER,
                _node_trip_rows(found["round_trips"]),
            ),
            table(
                "Shared stream: read round trips (ping_pong, a read of the state: through a "
                "server on the stream it waits for a read barrier)",
                TRIP_HEADER,
                _node_trip_rows(found["read_round_trips"]),
            ),
            table(
                f"Shared stream: fixed load ({first['offered_rate']:,.0f} msg/s over "
                f"{first['connections']} connections, latency from the scheduled send time)",
                [
                    "setup",
                    "answered msg/s",
                    "p50 ms",
                    "p99 ms",
                    "p99.9 ms",
                    "max ms",
                    "p99 x always",
                    "p99 x off",
                    "all us/msg",
                    "unanswered",
                    "gen lag p99 ms",
                ],
                fixed_rows,
            ),
            table(
                "The stream alone: one nats-py client appending as a server does (each "
                "record acknowledged, many in flight)",
                [
                    "JetStream fsyncs",
                    "in flight",
                    "records/s",
                    "ack p50 ms",
                    "ack p99 ms",
                    "record bytes",
                    "nats us/record",
                    "nats busy",
                    "client us/record",
                    "client busy",
                ],
                alone_rows,
            ),
        ]
    )


NODES_HEADING = "## Servers sharing a JetStream stream"


def nodes_section(document: Document) -> str:
    """RESULTS.md's section on the shared stream: how it was measured, and the tables of
    ``document`` (a suite run's, or ``bench.experiments nodes``'s)."""
    found = document["nodes"] if "nodes" in document else document["results"]["nodes"]
    plan = document["plan"]
    if "results" in document:
        provenance = "Measured in the run above."
    else:
        provenance = (
            f"Measured by `{document['command']}` on {document['date']}, in "
            f"{document['seconds']:.0f} s, commit {document.get('code', 'unknown')}: apart "
            "from the suite's run above, on the same machine"
        )
        if "load" in document:  # what else the machine ran meanwhile
            before, after = document["load"]
            provenance += f" (1-minute load average {before:.1f} before, {after:.1f} after)"
        provenance += "."
    best = max(found["stream_alone"]["appends"].values(), key=lambda r: float(r["rate"] or 0))
    barrier = found["stream_alone"]["barrier"]
    one = found["round_trips"]["one_node"]
    busiest = max(one, key=lambda count: float(one[count]["rate"] or 0))
    return f"""{NODES_HEADING}

{provenance} Figures only: no target is judged on them. `bench/nodes.py` starts a
nats-server of its own (`.venv/bin/nats-server`, JetStream, file storage, one replica, its
store in the suite's temporary directory on the repo's disk), seeds a stream with the state
the local servers load (the stream's snapshot bucket holds it; the stream starts after it),
and starts `serve --event-log` servers on it from empty data directories.

- Each round trip row is the round with the median msg/s of {plan["nodes_rounds"]}; in a
  round every setup is up at once and they take turns a few seconds apart, and "x fsync
  always" and "x fsync off" are the median of each round's own ratio to the local journal in
  that round. "all us/msg" is the CPU time of every process of the setup per reply;
  "servers us/msg" and "servers busy" count both servers of two together. Other work on
  the machine moves msg/s and latencies far more than CPU time per message: on a busy
  machine, read the "us/msg" columns first (`rounds_rate` in `bench/nodes.json` lists each
  round's msg/s).
- What shares the two cores: the nats-server and every server process share the server's
  core; the load generator (and the stream-alone client) keeps the other. So the stream and
  the local journal are measured on the same CPU, and two servers share one core, where a
  deployment gives each server and each nats-server cores of their own: there, each server
  answers its half of the clients but still applies every change, and the stream and the
  CPU per message of each process, not the shared core, set the limits (`bench/CLUSTER.md`).
- JetStream acknowledges a record once its server wrote it to its file, and by default
  fsyncs every two minutes (`sync_interval`): a power loss can take acknowledged records
  from one replica (with three replicas, a quorum holds each acknowledged record). The local
  journal's nearest mode is `--fsync batch`; both of its other modes are shown. The stream
  alone is also measured with `sync_interval: always` (an fsync before every
  acknowledgement).
- The stream alone: {best["rate"]:,.0f} records a second at {best["in_flight"]} in flight
  (ack p99 {best["ack_ms_p99"]:.2f} ms), where one server on it answered
  {one[busiest]["rate"]:,.0f} round trips a second at {int(busiest):,} connections. A read
  barrier alone (`stream_info`, one after another) took {barrier["barrier_ms_p50"]:.2f} ms
  at the median, {barrier["barrier_ms_p99"]:.2f} ms at p99.

{nodes_tables(found)}"""


def replace_nodes_section(path: Path, section: str) -> None:
    """Put ``section`` in RESULTS.md in place of its section on the shared stream (or before
    the kept figures, if it has none)."""
    text = path.read_text()
    start = text.find(f"\n{NODES_HEADING}\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[: start + 1] + section + ("" if end < 0 else text[end:])
    else:
        at = text.find(f"\n{FIGURES_HEADING}\n")
        at = len(text) if at < 0 else at
        text = text[:at] + "\n" + section + text[at:]
    path.write_text(text)


def write_results_md(document: Document, path: Path, runs: Sequence[Run]) -> None:
    m, plan = document["machine"], document["plan"]
    text = f"""# Benchmark results

Produced by `{document["command"]}` (`make bench`) on {document["date"]}, in
{document["seconds"]:.0f} s, measuring commit {document.get("code", "unknown")}. Regenerate the
file with the same command, or from the figures on record with `python -m bench.report
--write-md bench/RESULTS.md`; the figures are in `bench/results.json`, the plot is
`bench/results.png` (`python -m bench.plot`). This is one run, and one run on a shared machine
can meet or miss a target by its noise alone: each target is judged on the median of the
{len(runs)} full runs on record, this one included, and this run's own figure is shown beside
it. Every run's figure is in [`RUNS.md`](RUNS.md).

## Machine

- CPU: {m["cpu"]}, {m["cores"]} cores; Linux {m["kernel"]}; Python {m["python"]}
- Server pinned to core(s) {m["server_cores"]}, load generator to core(s)
  {m["generator_cores"]} (`os.sched_setaffinity`).

## How it was measured

- Every server (the real one, or the ceiling `bench/ceiling.py`: trio-websocket, one task per
  connection, `msgspec.json.decode` of each frame, the frame sent back) runs as its own
  process; the load generator (`bench/loadgen.py`, picows on asyncio, frames encoded ahead)
  runs as another, over loopback. Server CPU per message is the server's utime + stime
  (`/proc/PID/stat`) over the measured window divided by the replies in it; RSS is `VmRSS`.
- Abuse limits: **{document["abuse_limits"]}**. Timeouts hold.
- Durability: `--fsync always` (the default: every reply waits for its journal fsync) unless a
  row says `fsync off`. The data directory is on the repo's own disk (`bench/.data-*`), built
  offline with the package's core (users with known tokens, argon2id hashes for the storm
  users at the server's default cost), loaded from a snapshot at start.
- `--snapshot-interval inf` (no periodic snapshot inside a measurement), `--log-level INFO`.
- Requests are in the list dialect, as every real client speaks it; each connection uses its
  own user's token. Latency percentiles are of every reply in the window.
- A shared 2-core machine drifts from run to run: read the ratios to the ceiling, measured in
  the same run, rather than the absolute figures. Round trips drift by +-20% within minutes, so
  they are measured in rounds: {plan["round_trip_rounds"]} at every connection count, and
  {plan["target_rounds"]} in all at 100, where the targets are. In a round all four servers
  (both ceilings, fsync off, fsync always) are up at once and take turns at each connection
  count, a few seconds apart; the order turns from round to round. Each row shows the round
  with the median msg/s (`rounds_rate` in results.json lists them all); its "x ceiling"
  columns are the median of each round's own ratio to that round's ceiling
  (`ceiling_ratio_rounds`). "gen lag p99"
  is how late the generator itself sent in the open-loop runs: a large one means the
  generator's core was taken by other work on the machine, and that row's latency is
  inflated by it.
- Open-loop latency (fixed load, login storm) is measured from each send's scheduled time, so
  a stall is charged to every request it delayed (no coordinated omission).
- The login storm keeps the pinning: the server's argon2 worker processes inherit it and share
  its one core with its event loop, as they would on a server whose cores are all busy. Its
  table gives the disk's mean flush time and the mean of its slowest half second: the disk
  sometimes takes 5-7 ms a flush for a second or more, and every fsync-always reply then
  waits for one, which a whole window's mean hides. So the storm is judged with fsync off,
  where it measures what it is about (hashing must not starve the event loop); its fsync
  always figure, which the disk's flushes dominate, is shown for information.
- The server raises CPython's young-generation collection limit and freezes what start-up
  leaves (`cli.settle_gc`); the ceiling, as the issue defines it, keeps CPython's defaults.
  "ceiling, server's gc" is the same echo server with the server's setting, measured in the
  same rounds, so that the server's gain from it is not read as a gain over the stack.
- Idle connections: each sent one `ping_pong` with its user's token and got the reply; the
  protocol keeps no per-connection login, so that is what "authenticated" means here.

{tables(document, runs, nodes=False)}
![throughput and p99 latency against connection count](results.png)
"""
    if "nodes" in document["results"]:
        text += "\n" + nodes_section(document)
    else:  # a run without them keeps the last figures measured apart from the suite
        text += _section(path, NODES_HEADING)
    path.write_text(text + _kept_section(path, FIGURES_HEADING))


# A hand-written section of RESULTS.md that every regeneration keeps: the measurements
# behind choices the code's comments explain without figures (figures go stale there).
FIGURES_HEADING = "## Figures behind the code"


def _kept_section(path: Path, heading: str) -> str:
    """The section of ``path`` from ``heading`` to the end, or nothing."""
    try:
        old = path.read_text()
    except FileNotFoundError:
        return ""
    start = old.find(f"\n{heading}\n")
    return "\n" + old[start + 1 :] if start >= 0 else ""


def _section(path: Path, heading: str) -> str:
    """The section of ``path`` under ``heading``, up to the next one, or nothing."""
    try:
        old = path.read_text()
    except FileNotFoundError:
        return ""
    start = old.find(f"\n{heading}\n")
    if start < 0:
        return ""
    end = old.find("\n## ", start + 1)
    return "\n" + old[start + 1 : None if end < 0 else end + 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="?", default=Path("bench/results.json"))
    parser.add_argument("--write-md", type=Path)
    parser.add_argument("--nodes", type=Path, help="bench/nodes.json: that section alone")
    args = parser.parse_args()
    if args.nodes:
        section = nodes_section(json.loads(args.nodes.read_text()))
        print(section)
        if args.write_md:
            replace_nodes_section(args.write_md, section)
        return
    document: Document = json.loads(args.results.read_text())
    from .runs import on_record  # here: bench.runs draws its page with this module's table

    runs = on_record(document)
    print(tables(document, runs))
    if args.write_md:
        write_results_md(document, args.write_md, runs)


if __name__ == "__main__":
    main()

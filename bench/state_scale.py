"""Scale of state: snapshot pause, snapshot size, RSS and restart time at 1M messages.

    .venv/bin/python -m bench.state_scale [--users 100000] [--messages 1000000] [--json FILE]

Builds the state through the core's own commands (no network), then measures what the state
owner would feel: the capture it does in its own turn (the only pause), the encode and write a
worker thread does, and a restart that loads the snapshot and replays a journal after it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from morelia_trio.core import commands, snapshot_format
from morelia_trio.core.journal_format import encode_record, journal_name
from morelia_trio.core.records import Credentials, MessageContent
from morelia_trio.core.state import State, apply, hash_token
from morelia_trio.core.state import capture as capture_state
from morelia_trio.persistence.files import write_atomic
from morelia_trio.persistence.recovery import recover

_encoder = __import__("msgspec").msgpack.Encoder()


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def build(users: int, messages: int) -> State:
    state = State()
    now = 1.8e9
    event = commands.bootstrap(state, now)
    assert event is not None
    apply(state, event)
    tokens = []
    for n in range(users):
        token = f"token-{n}"
        registered = commands.register_user(
            state,
            f"user{n}",
            "$argon2id$v=19$m=65536,t=3,p=4$" + "x" * 64,
            None,
            None,
            hash_token(token),
            now,
        )
        apply(state, registered)
        tokens.append((registered.user.id, token))
    for n in range(messages):
        user_id, token = tokens[n % len(tokens)]
        sent = commands.send_message(
            state,
            Credentials(user_id, token),
            1,
            MessageContent(text=f"message number {n}, hello everyone"),
            now,
        )
        apply(state, sent)
    state.seq = users + messages + 1
    return state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--journal-mib", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    figures: dict[str, float] = {"users": args.users, "messages": args.messages}

    base_rss = rss_mib()
    started = time.perf_counter()
    state = build(args.users, args.messages)
    gc.collect()
    figures["build_s"] = time.perf_counter() - started
    figures["state_rss_mib"] = rss_mib() - base_rss
    print(
        f"built {args.users:,} users, {args.messages:,} messages "
        f"in {time.perf_counter() - started:.1f} s; RSS {rss_mib() - base_rss:,.0f} MiB "
        f"over the empty process"
    )

    pauses = []
    for _ in range(5):
        started = time.perf_counter()
        capture = capture_state(state)
        pauses.append(time.perf_counter() - started)
    figures["pause_best_ms"] = min(pauses) * 1000
    figures["pause_worst_ms"] = max(pauses) * 1000
    print(
        f"snapshot pause in the owner (capture): best {min(pauses) * 1000:.1f} ms, "
        f"worst {max(pauses) * 1000:.1f} ms of 5"
    )

    directory = Path(tempfile.mkdtemp(prefix="morelia-scale-"))
    try:
        started = time.perf_counter()
        data = snapshot_format.encode(capture, time.time())
        encoded = time.perf_counter() - started
        write_atomic(directory / snapshot_format.SNAPSHOT_NAME, data)
        written = time.perf_counter() - started
        figures["snapshot_encode_s"] = encoded
        figures["snapshot_write_s"] = written
        figures["snapshot_mib"] = len(data) / 2**20
        print(
            f"snapshot encode {encoded:.2f} s, encode+write+fsync {written:.2f} s "
            f"(in a worker thread); size {len(data) / 2**20:,.0f} MiB"
        )

        # A journal after the snapshot: new messages until it holds --journal-mib MiB.
        seq = state.seq
        user_id, token = 2, "token-1"
        creds = Credentials(user_id, token)
        records = []
        size = 0
        while size < args.journal_mib * 2**20:
            seq += 1
            sent = commands.send_message(
                state,
                creds,
                1,
                MessageContent(text=f"journalled message {seq}, a little longer than the others"),
                1.8e9,
            )
            apply(state, sent)
            record = encode_record(seq, _encoder.encode(sent))
            records.append(record)
            size += len(record)
        (directory / journal_name(capture.seq + 1)).write_bytes(b"".join(records))
        expected = len(state.messages)
        del state, capture, data
        gc.collect()

        started = time.perf_counter()
        restored, report = recover(directory)
        restart = time.perf_counter() - started
        assert len(restored.messages) == expected
        figures["restart_s"] = restart
        figures["journal_mib"] = size / 2**20
        figures["journal_records"] = report.replayed
        print(
            f"restart: snapshot + {report.replayed:,} journal records "
            f"({size / 2**20:.0f} MiB) loaded in {restart:.2f} s "
            f"({len(restored.messages):,} messages)"
        )
    finally:
        shutil.rmtree(directory)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB")
    figures["peak_rss_mib"] = peak
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Instructions the server runs per message, counted by callgrind: a figure load cannot move.

    .venv/bin/python -m bench.instructions [--rev REV] [--messages 400 2000] [--connections 10]

On a shared machine the wall-clock and CPU-time figures of the suite move by several
microseconds a message from run to run. Instructions do not: callgrind counts them whatever
else the machine is doing. Each tree (REV from a temporary git worktree, then the working
tree) serves under ``valgrind --tool=callgrind`` (fsync off, limits off) twice, for two
numbers of ``send_message`` round trips over the same connections; the difference of the two
totals over the difference of the counts is the cost of one message, start-up and shutdown
cancelled out. Hashing runs in worker processes, which are not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import trio

from bench.wire import open_client

from . import suite
from .experiments import worktree
from .suite import Server

SUMMARY = re.compile(rb"^summary: (\d+)", re.MULTILINE)


@contextlib.contextmanager
def counted_server(tree: Path, out: Path) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="morelia-instructions-") as data:
        argv = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--trace-children=no",
            suite.PYTHON,
            *("-m", "morelia_trio", "serve", "--port", "0", "--data-dir", data),
            *("--snapshot-interval", "inf", "--fsync", "off", "--no-limits"),
        ]
        server = Server("server under callgrind", argv, tree)
        try:
            yield server
        finally:
            server.stop()


async def drive(url: str, connections: int, messages: int) -> None:
    async def writer(n: int, count: int) -> None:
        async with open_client(url) as client:
            await client.register(f"writer{n}", "pw")
            general = (await client.flows())[0]["uuid"]
            for m in range(count):
                await client.send(general, f"message {m} from writer {n}, of ordinary length")

    async with trio.open_nursery() as nursery:
        for n in range(connections):
            nursery.start_soon(writer, n, messages // connections)


def total(tree: Path, connections: int, messages: int) -> int:
    with tempfile.TemporaryDirectory(prefix="morelia-callgrind-") as place:
        out = Path(place) / "callgrind.out"
        with counted_server(tree, out) as server:
            trio.run(drive, server.url, connections, messages)
        found = SUMMARY.search(out.read_bytes())
        if found is None:
            raise RuntimeError(f"no summary in {out}")
        return int(found.group(1))


def per_message(tree: Path, connections: int, few: int, many: int) -> float:
    low, high = total(tree, connections, few), total(tree, connections, many)
    return (high - low) / (many - few)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="also count this revision, first")
    parser.add_argument("--messages", type=int, nargs=2, default=[400, 2000])
    parser.add_argument("--connections", type=int, default=10)
    args = parser.parse_args()
    few, many = args.messages
    with contextlib.ExitStack() as stack:
        trees = [("working tree", suite.REPO)]
        if args.rev:
            trees.insert(0, (args.rev, stack.enter_context(worktree(args.rev))))
        for label, tree in trees:
            cost = per_message(tree, args.connections, few, many)
            print(f"{label}: {cost:,.0f} instructions per message", flush=True)


if __name__ == "__main__":
    subprocess.run(["valgrind", "--version"], check=True, capture_output=True)
    main()

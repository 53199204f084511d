"""What one hostile user costs the server: huge replies, a flood of flows, stored bytes.

    .venv/bin/python -m bench.abuse [--rev REV]

Each attack runs against the working tree with its default limits (but frames per
connection, as the attacker's requests come back to back), and with ``--rev`` against REV
too, from a temporary git worktree, with its own defaults. Reported: the server's resident
memory before and at its peak (VmHWM), its CPU seconds, and what the attacker got through.

- ``replies``: 113 messages with 0.5 MB attachments, then 15 connections ask for all of
  them at once (``all_messages``), three times.
- ``flows``: one user creates groups as fast as the server answers for 20 s, then 10
  connections ask for ``all_flow`` at once.
- ``storage``: one user sends 0.5 MB attachments for 40 s.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import trio
from trio_websocket import ConnectionClosed

from bench.wire import Client, RequestFailed, open_client

from . import procstat, suite
from .experiments import worktree
from .suite import Server

MIB = 1024 * 1024
ATTACHMENT = "a" * (512 * 1024 - 1)  # the largest the default limits take
# Setting an attack up must not take minutes: these rates go up, every other limit stays.
SETUP_RATES = ["--frames-per-connection=1000000/1000000"]


@contextlib.contextmanager
def running(tree: Path) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="morelia-abuse-") as data:
        argv = [
            suite.PYTHON,
            *("-m", "morelia_trio", "serve", "--port", "0", "--data-dir", data),
            *("--snapshot-interval", "inf", "--fsync", "batch"),
            *SETUP_RATES,
        ]
        server = Server("server", argv, tree)
        try:
            yield server
        finally:
            server.stop()


async def replies(url: str) -> str:
    async with open_client(url, max_message_size=1024 * MIB) as client:
        await client.register("hoarder", "hoarder-password")
        me = _me(client)
        general = (await client.flows())[0]["uuid"]
        for n in range(113):
            while True:  # as fast as the message rate lets one user
                try:
                    await client.send(general, f"m{n}", file_picture=ATTACHMENT)
                    break
                except RequestFailed:
                    await trio.sleep(0.05)
    sizes: dict[str, list[int]] = {"list": [], "document": []}
    # The list dialect's pages hold whole seconds (its times are whole seconds), so there a
    # page holds at least a second's messages, whatever the cap; the document's do not.
    user = {"list": me, "document": {"id": int(me[0]["uuid"] or 0), "auth_id": me[0]["auth_id"]}}

    dropped = 0

    async def ask(dialect: str) -> None:
        nonlocal dropped
        async with open_client(url, max_message_size=1024 * MIB) as reader:
            for _ in range(3):
                frame = {"type": "all_messages", "data": {"time": 0, "user": user[dialect]}}
                try:
                    await reader.ws.send_message(_encode(frame))
                    sizes[dialect].append(len(await reader.ws.get_message()))
                except ConnectionClosed:  # e.g. a reply not taken in time: the server gave up
                    dropped += 1
                    return

    async with trio.open_nursery() as nursery:
        for n in range(15):
            nursery.start_soon(ask, "list" if n % 2 else "document")
    return ", ".join(
        [
            f"{len(found)} {dialect} replies of up to {max(found, default=0) / MIB:.1f} MB"
            for dialect, found in sizes.items()
        ]
        + [f"{dropped} connections dropped"]
    )


async def flows(url: str) -> str:
    made = refused = 0
    async with open_client(url) as client:
        await client.register("founder", "founder-password")
        me = _me(client)
        with trio.move_on_after(20):
            while True:
                try:
                    await client.add_flow("group", f"g{made}")
                    made += 1
                except RequestFailed:
                    refused += 1
    sizes: list[int] = []

    async def ask() -> None:
        async with open_client(url, max_message_size=1024 * MIB) as reader:
            frame = {"type": "all_flow", "data": {"time": 0, "user": me}}
            await reader.ws.send_message(_encode(frame))
            sizes.append(len(await reader.ws.get_message()))

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(ask)
    return f"{made} groups made, {refused} refused; all_flow replies of {max(sizes) / MIB:.2f} MB"


async def storage(url: str) -> str:
    stored = refused = 0
    async with open_client(url) as client:
        await client.register("filler", "filler-password")
        general = (await client.flows())[0]["uuid"]
        with trio.move_on_after(40):
            while True:
                try:
                    await client.send(general, "f", file_document=ATTACHMENT)
                    stored += 1
                except RequestFailed:
                    refused += 1
    return f"{stored * len(ATTACHMENT) / MIB:.0f} MB stored, {refused} refused"


def _encode(frame: dict[str, Any]) -> str:
    return msgspec.json.encode(frame).decode()


def _me(client: Client) -> list[dict[str, str | None]]:
    return [{"uuid": client.user_id, "auth_id": client.token}]


ATTACKS: dict[str, Callable[[str], Any]] = {
    "replies": replies,
    "flows": flows,
    "storage": storage,
}


def measure(name: str, tree: Path, label: str) -> None:
    with running(tree) as server:
        pid = server.pid
        before_rss, before_cpu = procstat.rss_kib(pid), procstat.cpu_seconds(pid)
        started = time.perf_counter()
        got = trio.run(ATTACKS[name], server.url)
        took = time.perf_counter() - started
        peak, cpu = procstat.peak_kib(pid), procstat.cpu_seconds(pid) - before_cpu
    print(
        f"{name:8} {label:28} RSS {before_rss / 1024:6.0f} MB -> peak {peak / 1024:6.0f} MB, "
        f"CPU {cpu:5.1f} s in {took:5.1f} s; {got}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="also measure this revision")
    parser.add_argument("attacks", nargs="*", help=f"some of {', '.join(ATTACKS)} (all)")
    args = parser.parse_args()
    unknown = set(args.attacks) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    with contextlib.ExitStack() as stack:
        trees = [("working tree", suite.REPO)]
        if args.rev:
            trees.insert(0, (args.rev, stack.enter_context(worktree(args.rev))))
        for name in args.attacks or ATTACKS:
            for label, tree in trees:
                measure(name, tree, label)


if __name__ == "__main__":
    main()

"""The server as a separate process: start it, SIGKILL it, cut its journal as a power loss would."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import trio

from .server_wrapper import BROKEN_FSYNC_ENV, CHEAP_ARGON2_ENV, FSYNC_LOG_ENV, PARENT_ENV

REPO: Final = Path(__file__).resolve().parents[2]
URL_LINE: Final = re.compile(r"Serving MoreliaTalk on (ws://\S+)")
TORN_LINE: Final = re.compile(r"WARNING .*cutting a torn tail")
# A line the server logs at ERROR or worse, or a traceback: never expected in this test.
BAD_LINE: Final = re.compile(r" (ERROR|CRITICAL) |Traceback")
START_TIMEOUT: Final = 30.0
EXIT_TIMEOUT: Final = 10.0


class ServerFailed(Exception):
    """The server did not start, or did not die when killed."""


@dataclass
class ServerOptions:
    data_dir: Path
    logs: Path  # a directory for the server's output and its fsync records
    broken_fsync: bool = False
    cheap_argon2: bool = False
    snapshot_interval: float = 1.0
    event_log: str | None = None  # nats://HOST:PORT/STREAM: one node of several
    event_log_keep: int | None = None


@dataclass
class ServerProcess:
    process: trio.Process
    url: str
    log_path: Path
    fsync_log: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_findings(self) -> tuple[int, list[str]]:
        """(torn tails cut at start-up, lines that should never be there)."""
        text = self.log()
        return len(TORN_LINE.findall(text)), [
            line for line in text.splitlines() if BAD_LINE.search(line)
        ]

    async def kill(self) -> None:
        """SIGKILL: the process gets no chance to write or sync anything more."""
        self.process.send_signal(signal.SIGKILL)
        with trio.fail_after(EXIT_TIMEOUT):
            await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM, as an operator stops it (a final snapshot); SIGKILL if it lingers."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(EXIT_TIMEOUT):
                return await self.process.wait()
            await self.kill()
        return self.process.returncode or 0


async def start_server(options: ServerOptions, number: int) -> ServerProcess:
    """Start the real server through the wrapper; return once it says where it serves."""
    log_path = options.logs / f"server-{number:03d}.log"
    fsync_log = options.logs / f"fsync-{number:03d}.tsv"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env[FSYNC_LOG_ENV] = str(fsync_log)
    env[PARENT_ENV] = str(os.getpid())
    env.pop(BROKEN_FSYNC_ENV, None)
    env.pop(CHEAP_ARGON2_ENV, None)
    if options.broken_fsync:
        env[BROKEN_FSYNC_ENV] = "1"
    if options.cheap_argon2:
        env[CHEAP_ARGON2_ENV] = "1"
    command = [
        sys.executable,
        "-m",
        "tests.crash.server_wrapper",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(options.data_dir),
        "--snapshot-interval",
        str(options.snapshot_interval),
        "--no-limits",  # 16 writers from one address: a durability test, not an abuse test
    ]
    if options.event_log is not None:
        command += ["--event-log", options.event_log]
    if options.event_log_keep is not None:
        command += ["--event-log-keep", str(options.event_log_keep)]
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        process = await trio.lowlevel.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            env=env,
            cwd=REPO,
        )
    with trio.move_on_after(START_TIMEOUT):
        while True:
            text = log_path.read_text(errors="replace")
            if found := URL_LINE.search(text):
                return ServerProcess(process, found.group(1), log_path, fsync_log)
            if process.poll() is not None:
                raise ServerFailed(
                    f"the server exited with code {process.returncode} before serving:\n"
                    + _tail(text)
                )
            await trio.sleep(0.005)
    process.kill()
    raise ServerFailed(
        f"the server did not serve within {START_TIMEOUT} s:\n" + _tail(log_path.read_text())
    )


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class PowerLoss:
    """Drops what no fsync covered, as a power failure would, from the journal files.

    ``synced`` maps (file name, inode) to the size covered by the last completed fsync, over
    every server process so far; a journal file without an entry was never synced (size 0).
    With ``torn`` a random part of the unsynced tail survives instead (disks write back some
    of it on their own), which cuts records in half.
    """

    data_dir: Path
    rng: random.Random
    torn: bool = False
    synced: dict[tuple[str, int], int] = field(default_factory=dict)

    def absorb(self, fsync_log: Path) -> None:
        """Read a dead server's fsync records (written in order; the last one wins)."""
        if not fsync_log.exists():
            return
        directory = os.path.realpath(self.data_dir)
        for line in fsync_log.read_text().splitlines():
            path, size, inode = line.rsplit("\t", 2)
            if os.path.dirname(path) == directory:
                self.synced[os.path.basename(path), int(inode)] = int(size)

    def cut(self) -> int:
        """Cut every journal file to what survives; return how many bytes were dropped."""
        dropped = 0
        for path in sorted(self.data_dir.glob("journal-*.log")):
            info = path.stat()
            key = (path.name, info.st_ino)
            keep = min(self.synced.get(key, 0), info.st_size)
            if self.torn and info.st_size > keep:
                keep = self.rng.randint(keep, info.st_size)
            if keep < info.st_size:
                os.truncate(path, keep)
                dropped += info.st_size - keep
            self.synced[key] = keep  # what a power loss left is on the disk itself now
        return dropped

"""Profile the real server with py-spy while the load generator drives chat round trips.

    .venv/bin/python -m bench.profile [--fsync off] [--connections 100] [--seconds 10]

Samples the server process (``py-spy record --nonblocking``, so the server is never paused)
during closed-loop send_message round trips, keeps the collapsed stacks in
``bench/profile-fsync-MODE.txt`` (for speedscope or flamegraph.pl), and prints the functions
holding the most samples: by self time (the frame on top) and by total time (anywhere on the
stack).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from . import prepare, suite
from .loadgen import RoundTrips

_IDLE_WORKER = "WorkerThread._work (trio/_core/_thread_cache.py:211)"


def top(collapsed: Path, count: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    anywhere: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack:
            continue
        n = int(samples)
        if stack.endswith(_IDLE_WORKER):
            continue  # trio's cached worker threads waiting for a job: idle, not work
        total += n
        frames = [frame.split(" (", 1)[0] + _where(frame) for frame in stack.split(";")]
        own[frames[-1]] += n
        packages[_package(stack.split(";")[-1])] += n
        for frame in set(frames):
            anywhere[frame] += n
    lines = [f"{total} samples"]
    for title, counter in (("package, self", packages), ("self", own), ("total", anywhere)):
        lines.append(f"\nby {title} time:")
        for frame, n in counter.most_common(count):
            lines.append(f"  {n / max(total, 1):6.1%}  {frame}")
    return "\n".join(lines)


def _package(frame: str) -> str:
    """The package (or trio's submodule) a frame's file belongs to."""
    if " (" not in frame:
        return "?"
    place = frame.split(" (", 1)[1].rstrip(")").rsplit(":", 1)[0]
    parts = Path(place).parts
    if "trio" in parts and "_core" in parts:
        return "trio._core (scheduler, epoll, traps)"
    for package in ("trio_websocket", "wsproto", "trio", "morelia_trio", "msgspec", "outcome"):
        if package in parts:
            return package
    return parts[-1] if parts else "?"


def _where(frame: str) -> str:
    """' (file:line)' shortened to ' (package/file)'."""
    if " (" not in frame:
        return ""
    place = frame.split(" (", 1)[1].rstrip(")").rsplit(":", 1)[0]
    parts = Path(place).parts
    return f" ({'/'.join(parts[-2:])})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsync", default="off", choices=["always", "batch", "off"])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples a second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--nonblocking",
        action="store_true",
        help="never pause the server (cheaper, but stacks may come out torn)",
    )
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(suite.PYTHON).parent / "py-spy")
    work = Path(tempfile.mkdtemp(prefix=".data-", dir=suite.BENCH))
    out = suite.BENCH / f"profile-fsync-{args.fsync}.txt"
    try:
        s = suite.Suite.__new__(suite.Suite)
        s.work, s.runs = work, 0
        s.chat = prepare.build(work / "template", chat_users=args.connections)
        with suite.running_server(s.data_dir(work / "template"), args.fsync) as server:
            spec = RoundTrips(
                url=server.url,
                server_pid=server.pid,
                frames=s.chat_frames(args.connections),
                warmup=1.0,
                duration=args.seconds,
            )
            result: dict[str, object] = {}
            driver = threading.Thread(target=lambda: result.update(suite.drive(spec)))
            driver.start()
            subprocess.run(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(server.pid),
                    *(["--nonblocking"] if args.nonblocking else []),
                    "--format",
                    "raw",
                    "--rate",
                    str(args.rate),
                    "--duration",
                    str(int(args.seconds + 1)),
                    "--output",
                    str(out),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            driver.join()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"fsync {args.fsync}, {args.connections} connections: {result.get('rate', 0):.0f} msg/s "
        f"under the profiler; collapsed stacks in {out}"
    )
    print(top(out, args.top))


if __name__ == "__main__":
    main()

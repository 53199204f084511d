"""WebSocket conformance: the Autobahn fuzzing-client cases 1-10 against the server.

Runs ``python -m morelia_trio serve --autobahn-echo`` as a subprocess and drives kosoku (the
Autobahn TestSuite's own case files, run from Python 3) against its ``/echo`` endpoint, which
sends every frame back over the same WebSocket stack (trio-websocket on wsproto), frame size
limit, timeouts and connection loop as ``/ws``. Most Autobahn cases are echo tests, and the
MoreliaTalk protocol at ``/ws`` answers JSON requests instead, so ``/ws`` itself cannot be
tested this way; ``--autobahn-echo`` is off by default and is a conformance-testing aid only.

    .venv/bin/python autobahn/run.py [--cases '1.*' ...] [--parallelism 2] [--report DIR]

Prints how many cases got each verdict and exits non-zero if any case FAILED (or could not
run). The frame limit is raised to 16 MiB for the run (``--max-frame-bytes``): cases 9.x send
messages of up to 16 MiB, and at the default 1 MiB the server closes with 1009 as the
contract requires, which Autobahn counts as FAILED.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kosoku import FailureError, run_fuzzingclient
from kosoku._kosoku import CaseResult

CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]  # there is no 8
MAX_MESSAGE = 16 * 1024 * 1024  # the biggest message the 9.x cases send
VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR")
BAD_CLOSES = {"FAILED", "FAILED BY CLIENT", "WRONG CODE", "UNCLEAN"}
SERVING = re.compile(r"Serving MoreliaTalk on (ws://\S+)")
STARTUP_SECONDS = 30


ROOT = Path(__file__).resolve().parent.parent  # the repository: morelia_trio is in it


def serve_help(python: str, source: Path) -> str:
    command = [python, "-m", "morelia_trio", "serve", "--help"]
    return subprocess.run(command, capture_output=True, text=True, cwd=source, check=True).stdout


@contextmanager
def running_server(
    python: str, source: Path, data_dir: Path, log_path: Path, max_message: int
) -> Iterator[str]:
    """The server, started as the command line starts it; yields its echo URL.

    ``python -m`` runs the package found in ``source`` (its working directory) first.
    """
    options = serve_help(python, source)
    if "--autobahn-echo" not in options:
        sys.exit(
            "autobahn: this server has no --autobahn-echo option "
            "(apply autobahn/server-echo.patch, or pass --source DIR holding a patched copy)"
        )
    command = [
        python,
        "-m",
        "morelia_trio",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--snapshot-interval",
        "inf",
        "--fsync",
        "off",
        "--autobahn-echo",
        "--max-frame-bytes",
        str(max_message),
    ]
    if "--no-limits" in options:  # 9.7/9.8 send 1000 messages at once: no flood limit
        command.append("--no-limits")
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stderr=log, stdout=log, cwd=source)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while (found := SERVING.search(log_path.read_text())) is None:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"autobahn: the server did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield found.group(1).removesuffix("/ws") + "/echo"
        if server.poll() is not None:
            sys.exit(f"autobahn: the server died during the run:\n{log_path.read_text()}")
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def run_cases(url: str, cases: Sequence[str], parallelism: int) -> list[CaseResult]:
    async def run() -> list[CaseResult]:
        try:
            return await run_fuzzingclient(url, list(cases), concurrency=parallelism)
        except FailureError as failure:
            return failure.results

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=CASES, help="case ids or globs (1-10)")
    parser.add_argument("--parallelism", type=int, default=2, help="cases at once (2)")
    parser.add_argument(
        "--max-frame-bytes", type=int, default=MAX_MESSAGE, help="the server's limit (16 MiB)"
    )
    parser.add_argument(
        "--source", type=Path, help="run the morelia_trio found in this directory (the repo's)"
    )
    parser.add_argument("--report", type=Path, help="write kosoku's HTML/JSON reports here")
    args = parser.parse_args(argv)

    source = (args.source or ROOT).resolve()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="morelia-autobahn-") as scratch:
        log_path = Path(scratch, "server.log")
        with running_server(
            sys.executable, source, Path(scratch, "data"), log_path, args.max_frame_bytes
        ) as url:
            print(f"autobahn: cases {' '.join(args.cases)} against {url}", file=sys.stderr)
            results = run_cases(url, args.cases, args.parallelism)
        server_log = log_path.read_text()
    elapsed = time.monotonic() - started

    if args.report is not None and results:
        from kosoku._report import write_reports

        write_reports(results, str(args.report))
    verdicts = Counter(r.behavior.value for r in results)
    closes = Counter(r.behavior_close.value for r in results)
    failed = [
        r
        for r in results
        if r.behavior.value in ("FAILED", "ERROR") or r.behavior_close.value in BAD_CLOSES
    ]
    print(f"{len(results)} cases in {elapsed:.1f} s")
    print("  ".join(f"{v}: {verdicts.get(v, 0)}" for v in VERDICTS))
    print("closing handshakes: " + "  ".join(f"{k}: {n}" for k, n in sorted(closes.items())))
    for r in results:
        if r.behavior.value != "OK" or r.behavior_close.value != "OK":
            print(f"  {r.case_id}: {r.behavior.value} / {r.behavior_close.value}: {r.result}")
    bugs = [line for line in server_log.splitlines() if " ERROR " in line]
    for line in bugs:
        print(f"server logged: {line}")
    if not results:
        print("FAILED: no case ran")
        return 1
    if failed or bugs:
        print(f"FAILED: {len(failed)} cases, {len(bugs)} errors logged by the server")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

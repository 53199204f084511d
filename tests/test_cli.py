"""The server as an operator runs it: a real process, stopped by SIGTERM or Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest
import trio

from morelia_trio.cli import build_parser, config_from
from morelia_trio.config import AbuseLimits, Limits, Rate, Timeouts
from tests.wire import open_client

URL_LINE = re.compile(r"Serving MoreliaTalk on (ws://\S+)")
HTTP_LINE = re.compile(r"Chat in a browser at (http://\S+)")


def without_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment less its MORELIA_ variables, which the server reads as its settings
    (and refuses, if it does not know them: the test suite's own, such as MORELIA_FUZZ_SEED)."""
    return {name: value for name, value in environ.items() if not name.startswith("MORELIA_")}


class ServerProcess:
    def __init__(self, data_dir: Path, *options: str, cores: set[int] | None = None) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "morelia_trio",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                "--snapshot-interval",
                "inf",
                *options,
            ],
            stderr=subprocess.PIPE,
            text=True,
            env=without_settings(os.environ),
            preexec_fn=None if cores is None else lambda: os.sched_setaffinity(0, cores),
        )
        self.log: list[str] = []
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if found := URL_LINE.search(line):
                return found.group(1)
        raise AssertionError(f"the server never said where it serves: {self.log}")

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        _, rest = self.process.communicate(timeout=20)
        self.log.append(rest)
        return self.process.returncode


def run(coroutine_fn: object, *args: object) -> object:
    return trio.run(coroutine_fn, *args)  # type: ignore[arg-type]


async def register_and_send(url: str) -> str:
    with trio.fail_after(20):
        async with open_client(url) as client:
            await client.register("cli-user", "cli-password")
            general = (await client.flows())[0]["uuid"]
            await client.send(general, "survives a restart")
            return client.token or ""


async def login_and_read(url: str, token: str) -> list[str]:
    with trio.fail_after(20):
        async with open_client(url) as client:
            reply = await client.request(
                {
                    "type": "all_messages",
                    "data": {"time": 0, "user": [{"uuid": "1", "auth_id": token}]},
                }
            )
            assert reply["errors"]["code"] == 200, reply
            return [m["text"] for m in reply["data"]["message"]]


def hashing_workers(pid: int) -> int:
    """The trio-parallel worker processes ``pid`` has started."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])  # the field after the name
            if parent == pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                count += 1
    return count


def test_health_endpoints_answer_plain_http_on_the_websockets_port(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    try:
        assert server.process.stderr is not None
        found = HTTP_LINE.search(server.process.stderr.readline())  # the line after the URL's
        assert found is not None, server.log
        http_url = found.group(1)
        assert http_url == server.url.replace("ws://", "http://").removesuffix("ws")
        with urllib.request.urlopen(http_url + "healthz", timeout=10) as response:
            assert (response.status, response.read()) == (200, b"alive\n")
            assert response.headers["Cache-Control"] == "no-store"
        with urllib.request.urlopen(http_url + "readyz", timeout=10) as response:
            assert (response.status, response.read()) == (200, b"ready\n")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(http_url + "nowhere", timeout=10)
        assert missing.value.code == 404
        missing.value.close()
        run(register_and_send, server.url)  # the WebSocket, on the same port, as ever
        assert server.stop(signal.SIGTERM) == 0
    finally:
        server.process.kill()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity masks here")
@pytest.mark.parametrize("pinned", [False, True])
def test_one_hashing_worker_per_core_the_server_may_run_on(tmp_path: Path, pinned: bool) -> None:
    allowed = os.sched_getaffinity(0)
    cores = {min(allowed)} if pinned else None
    server = ServerProcess(tmp_path / "data", cores=cores)
    try:  # the workers start before the server listens
        assert hashing_workers(server.process.pid) == (1 if pinned else len(allowed))
        assert server.stop(signal.SIGTERM) == 0, server.log
    finally:
        server.process.kill()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_and_restarts_with_the_same_state(tmp_path: Path, signum: int) -> None:
    first = ServerProcess(tmp_path / "data")
    try:
        assert first.url.startswith("ws://127.0.0.1:") and first.url.endswith("/ws")
        token = run(register_and_send, first.url)
        assert first.stop(signum) == 0, first.log
    finally:
        first.process.kill()
    assert "Final snapshot written" in "".join(first.log)
    assert "Traceback" not in "".join(first.log)
    assert (tmp_path / "data" / "snapshot.msgpack").exists()

    second = ServerProcess(tmp_path / "data")
    try:
        assert run(login_and_read, second.url, token) == ["survives a restart"]
        assert second.stop(signal.SIGTERM) == 0
    finally:
        second.process.kill()


def test_a_damaged_snapshot_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "snapshot.msgpack").write_bytes(b"not a snapshot at all")
    done = subprocess.run(
        [sys.executable, "-m", "morelia_trio", "serve", "--port", "0", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "snapshot.msgpack" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_names_every_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "morelia_trio", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    for option in (
        "--host",
        "--port",
        "--data-dir",
        "--snapshot-interval",
        "--log-level",
        "--fsync",
    ):
        assert option in done.stdout


def test_every_limit_is_an_option_and_the_defaults_are_the_configs() -> None:
    config = config_from(build_parser().parse_args(["serve"]))
    assert (config.limits, config.abuse, config.timeouts) == (Limits(), AbuseLimits(), Timeouts())
    config = config_from(
        build_parser().parse_args(
            [
                "serve",
                "--logins-per-address",
                "4/2",
                "--max-text-chars",
                "500",
                "--connections-per-address",
                "7",
                "--timeout-idle",
                "30",
            ]
        )
    )
    assert config.abuse is not None
    assert config.abuse.logins_per_address == Rate(4, 2)
    assert config.abuse.connections_per_address == 7
    assert config.limits.max_text_chars == 500
    assert config.timeouts.idle == 30.0


def test_no_limits_switches_the_abuse_limits_off_and_keeps_sizes_and_timeouts() -> None:
    config = config_from(build_parser().parse_args(["serve", "--no-limits", "--timeout-idle", "9"]))
    assert config.abuse is None
    assert config.limits == Limits() and config.timeouts.idle == 9.0


@pytest.mark.parametrize("rate", ["0/5", "5/0", "five/1", "5"])
def test_a_rate_must_be_two_positive_numbers(rate: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--messages-per-user", rate])


@pytest.mark.parametrize("no_limits", [True, False])
def test_running_without_limits_is_warned_about(tmp_path: Path, no_limits: bool) -> None:
    server = ServerProcess(tmp_path / "data", *(["--no-limits"] if no_limits else []))
    try:
        assert server.stop(signal.SIGTERM) == 0
    finally:
        server.process.kill()
    warned = [line for line in server.log if "WARNING" in line and "--no-limits" in line]
    assert len(warned) == (1 if no_limits else 0), server.log


# --- one server per data directory; start-up failures in one line --------------------------

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def serve_once(data_dir: Path, *options: str, as_nobody: bool = False) -> tuple[int, list[str]]:
    """Run ``serve`` that must fail at start-up: its exit code and its lines that are not
    progress log lines (what the operator is told)."""
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    command = [sys.executable, "-m", "morelia_trio", "serve", "--data-dir", str(data_dir)]
    done = subprocess.run(
        [*nobody, *command, *options],
        capture_output=True,
        text=True,
        timeout=30,
        env=without_settings(os.environ),
    )
    told = [line for line in done.stderr.splitlines() if not LOG_LINE.match(line)]
    return done.returncode, told


def test_a_second_server_on_a_directory_in_use_exits_at_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = ServerProcess(data_dir)
    try:
        token = run(register_and_send, first.url)
        code, told = serve_once(data_dir, "--port", "0")
        assert code == 1
        assert told == [
            f"morelia-trio: cannot start: {data_dir} is in use by process {first.process.pid}"
            " (another server holds lock)"
        ]
        info = subprocess.run(  # reading a directory in use is fine
            [sys.executable, "-m", "morelia_trio", "data", "info", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert info.returncode == 0 and "users:            1" in info.stdout, info
        assert first.stop(signal.SIGTERM) == 0, first.log
    finally:
        first.process.kill()

    second = ServerProcess(data_dir)  # the lock ended with its holder
    try:
        assert run(login_and_read, second.url, token) == ["survives a restart"]
        second.process.kill()  # a crash leaves no stale lock either
        second.process.communicate(timeout=20)
    finally:
        second.process.kill()
    third = ServerProcess(data_dir)
    try:
        assert run(login_and_read, third.url, token) == ["survives a restart"]
        assert third.stop(signal.SIGTERM) == 0
    finally:
        third.process.kill()


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, told = serve_once(tmp_path / "data", "--port", str(port))
    assert code == 1
    assert told == [f"morelia-trio: cannot serve: 127.0.0.1 port {port}: Address already in use"]


@pytest.mark.parametrize(
    ("mode", "cause"), [(0o555, "lock"), (0o333, "")], ids=["not writable", "not readable"]
)
def test_a_data_directory_the_server_may_not_use_is_one_line(
    tmp_path: Path, mode: int, cause: str
) -> None:
    """Not writable (the lock cannot be made) or not readable (the journal files cannot be
    listed): said in one line, never an empty start over a journal it could not see."""
    root = os.geteuid() == 0  # root may do anything: run the server as nobody instead
    if root and shutil.which("setpriv") is None:
        pytest.skip("running as root, without setpriv to run the server as nobody")
    place = Path(tempfile.mkdtemp()) if root else tmp_path
    try:
        place.chmod(0o755)
        data_dir = place / "data"
        data_dir.mkdir()
        data_dir.chmod(mode)
        code, told = serve_once(data_dir, "--port", "0", as_nobody=root)
    finally:
        (place / "data").chmod(0o755)
        if root:
            shutil.rmtree(place)
    assert code == 1
    where = data_dir / cause if cause else data_dir
    assert told == [f"morelia-trio: cannot serve: {where}: Permission denied"]


def test_damaged_data_is_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "snapshot.msgpack").write_bytes(b"not a snapshot at all")
    code, told = serve_once(data_dir, "--port", "0")
    assert code == 1
    assert told == [
        f"morelia-trio: cannot start: {data_dir / 'snapshot.msgpack'}: not a morelia-trio "
        "snapshot (unknown format) at byte offset 0"
    ]

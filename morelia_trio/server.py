"""serve(): the whole server in one nursery, for the command line and for tests alike."""

from __future__ import annotations

import logging
import math
import time
from functools import partial

import msgspec
import trio

from . import endpoints
from .admin_socket import serve_admin
from .auth import Passwords
from .config import Config, usable_cores
from .connection import WS_PATH, serve_connection
from .core import commands
from .guard import Guard
from .handlers import Context
from .listener import Listener
from .persistence.local import final_snapshot, open_local
from .persistence.lock import DirectoryLock
from .persistence.snapshots import orderly_stop, snapshot_forever
from .proxies import TrustedProxies, parse_networks
from .store import Store, run_store
from .tls import Certificates
from .watchdog import Watchdog

log = logging.getLogger(__name__)


class Running(msgspec.Struct, frozen=True):
    """What ``nursery.start(serve, config)`` returns once the server accepts connections."""

    host: str
    port: int
    store: Store
    context: Context  # what every connection shares: tests may look inside (hash counts)
    metrics_port: int  # the port serving /metrics: ``port`` unless --metrics-port says
    metrics_host: str = ""  # where /metrics is served: ``host`` unless --metrics-host says
    tls: Certificates | None = None  # with TLS: what SIGHUP reloads

    @property
    def url(self) -> str:
        scheme = "ws" if self.tls is None else "wss"
        return f"{scheme}://{self.host}:{self.port}{WS_PATH}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_host or self.host}:{self.metrics_port}/metrics"

    @property
    def http_url(self) -> str:
        """Where the chat page and the plain HTTP endpoints are, on the same port."""
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://{self.host}:{self.port}/"


async def serve(
    config: Config, *, task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve MoreliaTalk until cancelled, then write a final snapshot.

    Supports ``running = await nursery.start(serve, config)``.

    Raises:
        DataDamaged: the data directory holds damage that recovery must not guess about.
        StorageFailed: the journal could not be written or synced for a reason other than
            a full disk (the server stopped acknowledging).
        DirectoryInUse: another server, in this process or another, holds the data directory.
        OSError: the data directory cannot be used, or the address is taken.
        CertificateError: the TLS certificate or key cannot be loaded.
    """
    # Before anything is touched: a wrong certificate path should cost nothing to fix.
    tls = None if config.certfile is None else Certificates(config.certfile, config.keyfile)
    directory = config.data_dir
    directory.mkdir(parents=True, exist_ok=True)
    lock = DirectoryLock(directory)  # before anything is read: one server per directory
    try:
        await _serve_locked(config, tls, task_status)
    finally:
        lock.release()


async def _serve_locked(
    config: Config, tls: Certificates | None, task_status: trio.TaskStatus[Running]
) -> None:
    if config.event_log is not None:  # one of several servers sharing a stream
        from .cluster.serving import shared_store  # nats-py loads only for those

        async with shared_store(config) as store, trio.open_nursery() as nursery:
            await _serve_with(store, config, tls, nursery, task_status)
        return
    state, event_log = await open_local(config.data_dir, config.fsync, config.fsync_batch_ms / 1000)
    orderly = True
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(event_log.run)
            store = await nursery.start(run_store, state, event_log)
            if math.isfinite(config.snapshot_interval):
                nursery.start_soon(
                    snapshot_forever, store.capture, event_log, config.snapshot_interval
                )
            await _serve_with(store, config, tls, nursery, task_status)
    except BaseException as exc:
        orderly = orderly_stop(exc)
        raise
    finally:
        await final_snapshot(event_log, state, orderly)  # every task has exited


async def _serve_with(
    store: Store,
    config: Config,
    tls: Certificates | None,
    nursery: trio.Nursery,
    task_status: trio.TaskStatus[Running],
) -> None:
    """Everything above the store: the admin socket, the listeners, the watchdog."""
    abuse = config.abuse
    if abuse is None:
        log.warning("Abuse limits are off (--no-limits): for benchmarks and tests only")
    workers = usable_cores() if config.hash_workers is None else config.hash_workers
    passwords = Passwords(config.argon2, workers, abuse.hash_queue if abuse else None)
    await store.call(commands.bootstrap, time.time())
    await nursery.start(serve_admin, config.data_dir, store)  # the operator's tool
    ctx = Context(
        store=store,
        passwords=passwords,
        limits=config.limits,
        guard=Guard(abuse),
        timeouts=config.timeouts,
    )
    ctx.metrics.watch(ctx.guard, store, passwords)
    store.event_log.observer = ctx.metrics
    watchdog = Watchdog(config.timeouts)
    nursery.start_soon(watchdog.run)
    # Before listening: a worker's start (a spawn and its imports) would otherwise
    # slow the first requests several times over.
    await passwords.start_workers()
    websocket = partial(serve_connection, ctx=ctx, watchdog=watchdog, echo=config.autobahn_echo)
    apart = config.metrics_port is not None  # /metrics on a listener of its own
    routes = endpoints.WITHOUT_METRICS if apart else endpoints.ROUTES
    listener = Listener(
        ctx,
        websocket,
        max_message_size=config.limits.max_frame_bytes,
        tls=tls,
        proxies=TrustedProxies(parse_networks(config.trusted_proxy)),
        routes=routes,
        reuse_port=config.reuse_port,
    )
    port = await _listen(nursery, listener, config.host, config.port)
    metrics_port, metrics_host = port, config.host
    if config.metrics_port is not None:
        metrics_host = config.metrics_host or config.host
        alone = Listener(ctx, None, max_message_size=0, routes=endpoints.METRICS_ROUTES)
        metrics_port = await _listen(nursery, alone, metrics_host, config.metrics_port)
    running = Running(config.host, port, store, ctx, metrics_port, metrics_host, tls)
    if config.autobahn_echo:
        log.warning("Echoing frames at /echo (--autobahn-echo): conformance tests only")
    log.info("Serving MoreliaTalk on %s", running.url)
    if config.reuse_port:
        log.info("Sharing port %d with other servers started with --reuse-port", port)
    log.info("Chat in a browser at %s (and /healthz, /readyz)", running.http_url)
    log.info("Metrics on %s", running.metrics_url)
    task_status.started(running)


async def _listen(nursery: trio.Nursery, listener: Listener, host: str, port: int) -> int:
    """Start ``listener`` on host:port; the port bound."""
    try:
        bound: int = await nursery.start(listener.serve, host, port)
    except OSError as exc:  # say which address: "Address already in use" alone does not
        raise OSError(exc.errno, f"{host} port {port}: {exc.strerror or exc}") from exc
    return bound

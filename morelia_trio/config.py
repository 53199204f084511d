"""Server settings: one frozen struct, built from the command line or by a test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, TypeAlias

import msgspec

FsyncMode: TypeAlias = Literal["always", "batch", "off"]
LogLevel: TypeAlias = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat: TypeAlias = Literal["text", "json"]

# Marks a field whose value `serve --print-config` must never show (a key's password, a URL
# with credentials): Annotated[str, SECRET].
SECRET = msgspec.Meta(extra={"secret": True})


def usable_cores() -> int:
    """How many cores this process may run on: its affinity mask, where the OS keeps one.

    Not os.cpu_count(): a server pinned to one core of eight (taskset, a cpuset) would start
    eight hashing workers to share that one core, each holding argon2's memory.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity masks
        return os.cpu_count() or 1


def _said(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


# Every settings struct refuses keys it does not have: a misspelt key in a configuration file
# stops start-up instead of leaving the default in force unnoticed (see settings.py).


class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Sizes a request may not exceed. Above them: 413 (or 1009 for a whole frame)."""

    max_frame_bytes: Annotated[int, _said("a bigger frame closes the connection (1009)")] = (
        1024 * 1024
    )
    max_text_chars: Annotated[int, _said("message text (413 above)")] = 10_000
    max_attachment_chars: Annotated[
        int, _said("each attachment, as sent: base64 text or byte list (413 above)")
    ] = 512 * 1024
    max_login_chars: Annotated[int, _said("login (413 above)")] = 64
    max_password_chars: Annotated[int, _said("password (413 above)")] = 1024
    max_name_chars: Annotated[int, _said("username, flow title (413 above)")] = 128
    max_info_chars: Annotated[int, _said("flow info (413 above)")] = 2_000
    max_email_chars: Annotated[int, _said("email (413 above)")] = 254
    max_named_users: Annotated[
        int, _said("users one request may name: lookups, flow members (429 above)")
    ] = 100
    reply_cap: Annotated[
        int, _said("items in one all_messages, get_update or all_flow reply (206 beyond)")
    ] = 1000
    max_reply_bytes: Annotated[
        int, _said("bytes in one reply, unless one item alone is more (206 beyond)")
    ] = 1024 * 1024


class Rate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A token bucket: ``burst`` at once, refilled at ``per_minute``."""

    # The bounds hold where a rate is decoded (a configuration file); parse() checks its own.
    burst: Annotated[int, msgspec.Meta(ge=1)]
    per_minute: Annotated[float, msgspec.Meta(gt=0)]

    def __str__(self) -> str:
        return f"{self.burst}/{self.per_minute:g}"

    @classmethod
    def parse(cls, text: str) -> Rate:
        """'BURST/PER_MINUTE', as in 10/10."""
        burst, _, per_minute = text.partition("/")
        rate = cls(int(burst), float(per_minute))
        if rate.burst < 1 or not rate.per_minute > 0:
            raise ValueError(f"{text!r}: both numbers must be positive")
        return rate


class AbuseLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one address, account, user or connection may do. ``--no-limits``: none of it."""

    logins_per_address: Annotated[
        Rate, _said("authentication attempts per client address (429 beyond)")
    ] = Rate(10, 10)
    login_failures_per_account_and_address: Annotated[
        Rate, _said("wrong passwords per account from one client address (429 beyond)")
    ] = Rate(5, 1)
    # 100 an hour: one guesser's 5, then 1 a minute, never spends it, so the owner is locked
    # out of every address only by guesses from many addresses at once.
    login_failures_per_account: Annotated[
        Rate, _said("wrong passwords per account from all addresses together (429 beyond)")
    ] = Rate(100, 100 / 60)
    registrations_per_address: Annotated[
        Rate, _said("register_user per client address (429 beyond)")
    ] = Rate(3, 10)
    messages_per_user: Annotated[
        Rate, _said("send_message and edited_message per user (429 beyond)")
    ] = Rate(20, 300)
    frames_per_connection: Annotated[Rate, _said("frames per connection (429 beyond)")] = Rate(
        50, 3000
    )
    flows_per_user: Annotated[Rate, _said("add_flow per user (429 beyond)")] = Rate(5, 0.5)
    max_owned_flows: Annotated[int, _said("flows one user may create (403 beyond)")] = 100
    storage_quota_bytes: Annotated[
        int, _said("bytes of messages one user may keep: text and attachments (413 beyond)")
    ] = 100 * 1024 * 1024
    frames_per_address: Annotated[
        Rate, _said("frames per client address, all its connections together (429 beyond)")
    ] = Rate(200, 6000)
    flood_strikes: Annotated[
        int,
        _said(
            "frames refused for flooding in a row on one connection, or owed beyond its "
            "address's frames, before closing with 1008 (every connection of the address)"
        ),
    ] = 100
    hash_queue: Annotated[
        int, _said("password checks waiting for a hashing worker (503 beyond)")
    ] = 32
    connections_per_address: Annotated[
        int, _said("open connections per client address (handshake refused beyond)")
    ] = 20
    max_connections: Annotated[int, _said("open connections in all (handshake refused beyond)")] = (
        10_000
    )


class Timeouts(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How long the server waits for a peer, in seconds. They hold with --no-limits too."""

    handshake: Annotated[float, _said("for the opening handshake")] = 10.0
    ping_interval: Annotated[float, _said("of silence before the server pings")] = 20.0
    pong: Annotated[float, _said("for the pong, then the connection closes")] = 20.0
    idle: Annotated[float, _said("without a frame, then the connection closes")] = 600.0
    send: Annotated[
        float, _said("for a client to take a reply, then it is disconnected (slow reader)")
    ] = 20.0
    close: Annotated[float, _said("for the closing handshake")] = 5.0


class Argon2Params(msgspec.Struct, frozen=True, kw_only=True):
    """argon2id cost: RFC 9106's low-memory profile (64 MiB, 3 passes), but one lane.

    With four lanes libargon2 starts four threads for every slice of every pass, dozens per
    hash. The server hashes in one worker process per core already.
    """

    time_cost: int = 3
    memory_cost: int = 65536  # KiB
    parallelism: int = 1


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8000  # 0: let the kernel pick a free port
    # SO_REUSEPORT: several server processes listen on the port, the kernel spreading the
    # connections among them (the WebSocket's port only: each keeps its own metrics_port)
    reuse_port: bool = False
    data_dir: Path = Path("snapshots")
    # seconds between snapshots; inf: only on shutdown
    snapshot_interval: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    fsync: FsyncMode = "always"
    fsync_batch_ms: float = 50.0  # with fsync "batch": the most a crash can lose
    limits: Limits = Limits()
    abuse: AbuseLimits | None = AbuseLimits()  # None: --no-limits (benchmarks, some tests)
    timeouts: Timeouts = Timeouts()
    argon2: Argon2Params = Argon2Params()
    hash_workers: int | None = None  # concurrent password hashes; None: usable_cores()
    log_level: LogLevel = "INFO"
    # TLS: wss:// and https:// on the port. No keyfile: the key is in the certfile.
    certfile: Path | None = None
    keyfile: Annotated[Path | None, SECRET] = None  # where the key is: no one's business
    # Addresses or networks of reverse proxies whose X-Forwarded-For names the client.
    trusted_proxy: tuple[str, ...] = ()
    log_format: LogFormat = "text"  # json: one JSON object a line (logs.py)
    # GET /metrics: on the WebSocket's port, unless metrics_port names another (a listener
    # serving /metrics alone, on metrics_host, or on host if that is None).
    metrics_host: str | None = None
    metrics_port: int | None = None
    autobahn_echo: bool = False  # also echo frames at /echo: WebSocket conformance tests only
    # Several servers sharing one state: nats://HOST:PORT[,HOST:PORT...]/STREAM (a
    # password may be in it). None: this server's own journal in data_dir.
    event_log: Annotated[str | None, SECRET] = None
    event_log_replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1  # created with; 3 in a cluster
    event_log_credentials: Path | None = None  # a NATS .creds file (JWT and NKey seed)
    event_log_ca: Path | None = None  # the CA that signed the NATS servers' certificates
    # seconds a change may wait for the stream (electing a new leader takes up to ~10),
    # then 503
    event_log_timeout: Annotated[float, msgspec.Meta(gt=0, le=100)] = 15.0
    # records the stream holds past its newest snapshot before a server stores a new one
    # there and purges them
    event_log_keep: Annotated[int, msgspec.Meta(ge=1)] = 100_000

"""Server settings: one frozen struct, built from the command line or by a test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, TypeAlias

import msgspec

FsyncMode: TypeAlias = Literal["always", "batch", "off"]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Sizes a request may not exceed. Above them: 413 (or 1009 for a whole frame)."""

    max_frame_bytes: int = 1024 * 1024
    max_text_chars: int = 10_000
    max_attachment_chars: int = 512 * 1024  # per attachment, as sent (base64 text or byte list)
    max_login_chars: int = 64
    max_password_chars: int = 1024
    max_name_chars: int = 128  # username, flow title
    max_info_chars: int = 2_000  # flow info
    max_email_chars: int = 254
    max_named_users: int = 100  # user_info lookups and flow members in one request
    reply_cap: int = 1000  # items per all_messages/get_update reply (206 beyond)


class Argon2Params(msgspec.Struct, frozen=True, kw_only=True):
    """argon2id cost; the defaults are argon2-cffi's RFC 9106 low-memory profile."""

    time_cost: int = 3
    memory_cost: int = 65536  # KiB
    parallelism: int = 4


class Config(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8000  # 0: let the kernel pick a free port
    data_dir: Path = Path("snapshots")
    snapshot_interval: float = 60.0  # seconds between snapshots; inf: only on shutdown
    fsync: FsyncMode = "always"
    fsync_batch_ms: float = 50.0  # with fsync "batch": the most a crash can lose
    limits: Limits = Limits()
    argon2: Argon2Params = Argon2Params()
    hash_threads: int = os.cpu_count() or 2  # concurrent password hashes
    log_level: str = "INFO"

"""Where a shared event log is: ``nats://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/STREAM``.

``tls://`` instead of ``nats://`` asks for TLS to every server. The address may carry a
password: ``redacted`` is the form for logs and errors.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

SCHEMES: Final = ("nats", "tls")
# JetStream's rule for names, narrowed to what a file name and a subject token both allow.
STREAM_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
# In a data directory: which stream its snapshot is a copy of (the state is the stream's).
IDENTITY_NAME: Final = "event-log.json"
EXPECTED: Final = 'expected "nats://HOST:PORT[,HOST:PORT...]/STREAM" (or tls://)'


class EventLogMismatch(Exception):
    """At start-up: the data directory and the stream do not make one consistent state."""


class EventLogAddress(msgspec.Struct, frozen=True):
    scheme: str  # "nats" or "tls"
    servers: tuple[str, ...]  # URLs nats-py connects to, credentials included
    stream: str

    @property
    def subject(self) -> str:
        """The one subject the stream holds: the commands of the servers sharing it."""
        return f"morelia.{self.stream}"

    @property
    def snapshots(self) -> str:
        """The object store bucket that keeps snapshots, so the stream can be purged."""
        return f"{self.stream}_snapshots"

    @property
    def redacted(self) -> str:
        hosts = ",".join(_without_password(server).split("://", 1)[1] for server in self.servers)
        return f"{self.scheme}://{hosts}/{self.stream}"


def parse_event_log(url: str) -> EventLogAddress:
    """Raises ValueError, saying what was expected (without echoing a password)."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in SCHEMES:
        raise ValueError(EXPECTED)
    hosts, separator, stream = rest.rpartition("/")
    if not separator or not hosts:
        raise ValueError(EXPECTED)
    if STREAM_NAME.fullmatch(stream) is None:
        raise ValueError("the stream's name: 1 to 64 letters, digits, '_' or '-'")
    servers = []
    for host in hosts.split(","):
        where = host.rpartition("@")[2]
        name, colon, port = where.rpartition(":")
        if not colon or not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(EXPECTED + f"; not a HOST:PORT: {_without_password(host)!r}")
        servers.append(f"{scheme}://{host}")
    return EventLogAddress(scheme, tuple(servers), stream)


def _without_password(server: str) -> str:
    at = server.rfind("@")
    if at < 0:
        return server
    scheme, separator, _ = server[:at].partition("://")
    return f"{scheme}://***@{server[at + 1 :]}" if separator else f"***@{server[at + 1 :]}"

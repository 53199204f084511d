"""TLS for the listener: the server's certificate, loaded at start-up and reloaded on SIGHUP.

:class:`Certificates` holds the ``ssl.SSLContext`` new connections are wrapped with. A reload
builds a whole new context and swaps it in only once it loaded: connections already open keep
the one they started with, and a certificate file caught half-written (a renewal under way)
leaves the old one in force rather than refusing every new connection.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

log = logging.getLogger(__name__)


class CertificateError(Exception):
    """A certificate or key that cannot be loaded: one line naming the file and why."""


def load_context(certfile: Path, keyfile: Path | None) -> ssl.SSLContext:
    """A server context for ``certfile`` (and its key, in ``keyfile`` or in certfile itself).

    Raises CertificateError naming the file at fault.
    """
    key_in = keyfile or certfile
    # Read first, so that a missing or unreadable file is named: ssl's errors do not say which.
    for path, marker, what in (
        (certfile, b"-----BEGIN CERTIFICATE-----", "no PEM certificate"),
        (key_in, b"PRIVATE KEY-----", "no PEM private key"),
    ):
        try:
            if marker not in path.read_bytes():
                raise CertificateError(f"{path}: {what} in it")
        except OSError as exc:
            raise CertificateError(f"{path}: {exc.strerror or exc}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])  # WebSocket and the endpoints are HTTP/1.1 only
    try:
        context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        why = exc.reason or exc.strerror or str(exc)
        where = certfile if keyfile is None else f"{certfile} with {keyfile}"
        raise CertificateError(f"{where}: cannot load: {why}") from None
    return context


class Certificates:
    """The context for new connections, and where it came from, to reload it from."""

    def __init__(self, certfile: Path, keyfile: Path | None) -> None:
        self.certfile = certfile
        self.keyfile = keyfile
        self.context = load_context(certfile, keyfile)

    def reload(self) -> bool:
        """Load the files again; on failure keep the context in force and log why."""
        try:
            self.context = load_context(self.certfile, self.keyfile)
        except CertificateError as exc:
            log.error("Certificate not reloaded, the old one stays in force: %s", exc)
            return False
        log.info("Certificate reloaded from %s", self.certfile)
        return True

"""How the server logs: the handler ``serve`` installs, in text or JSON, and its context.

A connection's task sets ``PEER`` once (the listener), and ``respond`` sets ``REQUEST_ID``
while it answers a frame (the reply's id, the ``errors.id`` a client sees in the document
dialect). Trio copies the context into every task it starts, so each connection's task has
its own values, and every line logged on its behalf is tagged with them, whatever module
logged it. Text lines stay as they were (they name the peer in their message already); a
JSON line carries them as fields: ``peer`` and ``request_id``, where there is one.

JSON comes from python-json-logger, a formatter for the standard ``logging`` module, so
every existing ``log.info(...)`` call stays as it is. Values a client sent reach a message
only through ``logtext.for_log`` (escaped, cut short), in either format; JSON's own escaping
then keeps every record on one line.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Final

from pythonjsonlogger.json import JsonFormatter

from .config import LogFormat, LogLevel

PEER: Final[ContextVar[str | None]] = ContextVar("peer", default=None)
REQUEST_ID: Final[ContextVar[int | None]] = ContextVar("request_id", default=None)

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Context(logging.Filter):
    """Tags each record with the peer and request of the task that logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        peer, request_id = PEER.get(), REQUEST_ID.get()
        if peer is not None:
            record.peer = peer
        if request_id is not None:
            record.request_id = request_id
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object a line: time, level, logger, message, then peer and request_id."""
    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def configure(level: LogLevel, log_format: LogFormat) -> None:
    """Log to stderr at ``level``, in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(json_formatter())
        handler.addFilter(_Context())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])

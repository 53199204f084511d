"""The plain HTTP endpoints served beside /ws: what each path answers, by a route table.

For people: ``/`` is the chat page (with ``/app.js`` and ``/style.css``). For operators and
load balancers: ``/healthz`` says the process answers, ``/readyz`` that it can take changes;
``/metrics`` is the server's Prometheus metrics (``metrics.py``). Replies are never cached.
A route is added by naming its path in ROUTES, nothing else changes; ``--metrics-port``
serves METRICS_ROUTES on a listener of its own, and ROUTES less /metrics on the WebSocket's
port.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Final

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST

from .handlers import Context

TEXT: Final = "text/plain; charset=utf-8"
READ_METHODS: Final = frozenset({"GET", "HEAD"})


class Reply(msgspec.Struct, frozen=True):
    """One HTTP response: its status, body and the headers it needs beyond the usual."""

    status: int
    body: bytes
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = ()


Endpoint = Callable[[Context], Awaitable[Reply]]


async def healthz(ctx: Context) -> Reply:
    """Alive: the process accepts connections and answers them."""
    return Reply(200, b"alive\n")


async def readyz(ctx: Context) -> Reply:
    """Ready: changes are stored. Not while the journal is degraded or has failed, nor
    while a shared event log cannot be reached."""
    log = ctx.store.event_log
    if log.failure is not None:
        return Reply(503, b"not ready: the journal failed; the server is stopping\n")
    degraded = log.degraded
    if degraded is not None:
        if degraded.errno in (errno.ENOSPC, errno.EDQUOT):
            return Reply(
                503, b"not ready: the disk is full; changes are refused until there is room\n"
            )
        return Reply(503, f"not ready: {degraded}; changes are refused until it is back\n".encode())
    return Reply(200, b"ready\n")


# The chat page and its assets, from inside the package (morelia_trio/web/). What a page
# may load or connect to is its own origin alone (WebSockets included), and no other site
# may frame it: a second wall, after the page's own rule of text as text.
PAGE_POLICY: Final = (
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self' ws: wss:; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
PAGE_FILES: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}


def _page_file(name: str, content_type: str) -> Endpoint:
    body = resources.files(__package__).joinpath("web", name).read_bytes()  # once, at import
    reply = Reply(200, body, content_type, PAGE_POLICY)

    async def page_file(ctx: Context) -> Reply:
        return reply

    return page_file


async def metrics(ctx: Context) -> Reply:
    """Every metric of this server, in Prometheus' text format."""
    return Reply(200, ctx.metrics.exposition(), content_type=CONTENT_TYPE_LATEST)


METRICS_PATH: Final = "/metrics"
ROUTES: Final[dict[str, Endpoint]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    METRICS_PATH: metrics,
    **{path: _page_file(name, kind) for path, (name, kind) in PAGE_FILES.items()},
}
METRICS_ROUTES: Final[dict[str, Endpoint]] = {METRICS_PATH: metrics}
WITHOUT_METRICS: Final = {path: route for path, route in ROUTES.items() if path != METRICS_PATH}

NOT_FOUND: Final = Reply(404, b"Not found. MoreliaTalk is served at /ws\n")
NOT_ALLOWED: Final = Reply(
    405, b"Only GET and HEAD are allowed here.\n", headers=(("Allow", "GET, HEAD"),)
)


async def answer(
    method: str, target: str, ctx: Context, routes: Mapping[str, Endpoint] = ROUTES
) -> Reply:
    """The reply to ``method target`` (the request's path, with any query)."""
    endpoint = routes.get(target.split("?", 1)[0])
    if endpoint is None:
        return NOT_FOUND
    if method not in READ_METHODS:
        return NOT_ALLOWED
    return await endpoint(ctx)

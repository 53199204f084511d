"""The container's health check: does the server answer a request end to end?

It sends ``ping_pong`` with a token no one holds over a fresh WebSocket and expects the
401 that only the state owner gives, so a healthy answer means the listener, a connection
task, the decoder and the state-owning task all respond. Exit status 0 when healthy, 1 when
not (the reason on stderr). It moves to the server's ``GET /readyz`` once that exists.

    python healthcheck.py [URL] [--within SECONDS]    # ws://127.0.0.1:8000/ws, 5 s
"""

from __future__ import annotations

import argparse
import sys

import trio

from morelia_trio.client import open_client

DEFAULT_URL = "ws://127.0.0.1:8000/ws"
# Below the HEALTHCHECK --timeout, so a stuck server reads as a failed check, not a killed one.
DEFAULT_WITHIN_SECONDS = 5.0
PING_WITH_UNKNOWN_TOKEN = {
    "type": "ping_pong",
    "data": {"user": [{"uuid": "0", "auth_id": "health-check"}]},
    "jsonapi": {"version": "1.0"},
}


async def check(url: str, within: float) -> str | None:
    """None when the server answered as a healthy one does, else what went wrong."""
    try:
        with trio.fail_after(within):
            async with open_client(url) as client:
                reply = await client.request(PING_WITH_UNKNOWN_TOKEN)
    except trio.TooSlowError:
        return f"no answer within {within} s"
    except Exception as exc:  # refused, reset, closed, a handshake refused with 503...
        return f"cannot reach the server: {exc!r}"
    errors = reply.get("errors")
    code = errors.get("code") if isinstance(errors, dict) else None
    if code != 401:
        return f"unexpected answer: code {code!r}"
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Exit 0 if a morelia-trio server answers.")
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help="(%(default)s)")
    parser.add_argument("--within", type=float, default=DEFAULT_WITHIN_SECONDS, help="seconds")
    args = parser.parse_args(argv)
    problem = trio.run(check, args.url, args.within)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

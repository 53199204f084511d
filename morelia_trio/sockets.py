"""The listening sockets of a port: one per address the host name gives, as trio makes them,
and, with ``--reuse-port``, shared with other server processes through SO_REUSEPORT.

``trio.open_tcp_listeners`` takes no socket options, so its steps are taken here, with
SO_REUSEPORT added when asked: with it set by every process (of the same user) on the same
address and port, the kernel lets them all bind, and hands each new connection to one of
them (on Linux, by a hash of its addresses and ports). Without it nothing differs from trio's.
"""

from __future__ import annotations

import errno
import sys
from typing import Final

import trio
from trio import socket as tsocket

BACKLOG: Final = 0xFFFF  # trio's: the most the kernel allows (it truncates larger values)


async def open_tcp_listeners(
    port: int, host: str, *, reuse_port: bool
) -> list[trio.SocketListener]:
    """A listener for every address ``host`` resolves to, all on ``port``.

    Raises OSError if an address cannot be bound (taken, without ``reuse_port`` on both
    sides) or the system has no SO_REUSEPORT.
    """
    if reuse_port and not hasattr(tsocket, "SO_REUSEPORT"):
        raise OSError(errno.ENOPROTOOPT, "this system cannot share a port (no SO_REUSEPORT)")
    addresses = await tsocket.getaddrinfo(
        host, port, type=tsocket.SOCK_STREAM, flags=tsocket.AI_PASSIVE
    )
    listeners: list[trio.SocketListener] = []
    unsupported: list[OSError] = []
    try:
        for family, kind, proto, _, address in addresses:
            try:
                sock = tsocket.socket(family, kind, proto)
            except OSError as exc:
                # getaddrinfo may give an IPv6 address on a system without IPv6: fine as
                # long as another address can be served.
                if exc.errno != errno.EAFNOSUPPORT:
                    raise
                unsupported.append(exc)
                continue
            try:
                await _bind(sock, family, address, reuse_port)
                listeners.append(trio.SocketListener(sock))
            except BaseException:
                sock.close()
                raise
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    if not listeners:  # every address was of a family this system lacks
        message = "no address of this host can be listened on"
        raise OSError(errno.EAFNOSUPPORT, message) from ExceptionGroup(message, unsupported)
    return listeners


async def _bind(sock: tsocket.SocketType, family: int, address: object, reuse_port: bool) -> None:
    if sys.platform != "win32":  # a restart binds at once, despite its old connections
        sock.setsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(tsocket.SOL_SOCKET, tsocket.SO_REUSEPORT, 1)
    if family == tsocket.AF_INET6:  # "::" should not take IPv4's port as well
        sock.setsockopt(tsocket.IPPROTO_IPV6, tsocket.IPV6_V6ONLY, 1)
    await sock.bind(address)
    sock.listen(BACKLOG)

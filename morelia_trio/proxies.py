"""Who the client is behind a trusted reverse proxy: ``X-Forwarded-For``, read carefully.

Only a connection from a trusted proxy (``--trusted-proxy``) may name another client, and the
header is read from the right: each proxy appends the address it was connected from, so the
right-most entry that is not itself a trusted proxy is the one no client could have forged.
Whatever cannot be read (a malformed header) counts as no header: the proxy's own address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or networks ("10.0.0.1", "10.0.0.0/8", "::1"); ValueError names a wrong one."""
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or network") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return address


class TrustedProxies:
    """The networks whose connections may say, in ``X-Forwarded-For``, whom they carry."""

    def __init__(self, networks: Sequence[Network]) -> None:
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, peer: str) -> bool:
        address = _address(peer)
        return address is not None and self._trusts(address)

    def _trusts(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: Sequence[bytes]) -> str:
        """The client's address: from the headers if ``peer`` is trusted, else ``peer``.

        ``forwarded_for`` holds the values of every ``X-Forwarded-For`` line, in order (a
        proxy may add a line rather than extend one).
        """
        if not forwarded_for or not self.trusts(peer):
            return peer
        try:
            entries = b",".join(forwarded_for).decode("ascii").split(",")
        except UnicodeDecodeError:
            return peer
        addresses = [_address(entry) for entry in entries]
        if any(address is None for address in addresses):
            return peer  # malformed: trust none of it
        chain = [address for address in addresses if address is not None]
        for address in reversed(chain):
            if not self._trusts(address):
                return str(address)
        return str(chain[0])  # proxies all the way: the farthest one is the client

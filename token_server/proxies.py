"""Trusted reverse proxies: whose X-Forwarded-For and identity header we believe.

Only a request whose TCP peer is a trusted proxy may name a user (proxy auth mode) or a
client address (X-Forwarded-For). Anyone else's headers are ignored and the peer address
is the client. With no KAIWA_TRUSTED_PROXIES, only loopback peers are trusted (a proxy on
the same host); the startup check refuses proxy mode on a non-loopback bind unless the
operator names the proxies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 from a dual-stack socket
    return address


class TrustedProxies:
    def __init__(self, entries: Iterable[str] = ()) -> None:
        """`entries`: IPs or CIDRs. Raises ValueError naming the first bad entry."""
        networks: list[Network] = []
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"KAIWA_TRUSTED_PROXIES: {entry[:64]!r} is not an IP address or CIDR"
                ) from None
        self.explicit = bool(networks)
        self.networks: tuple[Network, ...] = tuple(networks) or LOOPBACK

    def is_trusted(self, peer: str | None) -> bool:
        address = _address(peer) if peer else None
        return address is not None and any(address in net for net in self.networks)

    def client_ip(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """The client's address: the peer, unless the peer is a trusted proxy, in which
        case the nearest X-Forwarded-For hop that is not itself a trusted proxy.

        Proxies append, so only the rightmost entries were written by proxies we trust;
        anything left of the first untrusted hop is the client's own claim and ignored.
        """
        peer = peer or "unknown"
        if not forwarded_for or not self.is_trusted(peer):
            return peer
        hops = [h.strip() for header in forwarded_for for h in header.split(",") if h.strip()]
        client = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return client  # garbage from further left: keep the last hop we could read
            client = str(address)
            if not any(address in net for net in self.networks):
                return client
        return client

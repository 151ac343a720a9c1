"""Where DNS questions go: nameserver addresses and a configured dnspython resolver.

Nameservers are written ``"host"``, ``"host:port"`` or ``"[v6]:port"``; an
empty list means the system resolver (``/etc/resolv.conf``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.asyncresolver
import dns.nameserver
import dns.resolver


@dataclass(frozen=True, slots=True)
class Nameserver:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_nameserver(text: str) -> Nameserver:
    """Parse ``host``, ``host:port`` or ``[v6]:port``; raise ValueError with the reason."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected ':port' after ']'")
            port = _port(text, rest[1:])
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(text, p)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: nameserver must be an IP address") from None
    return Nameserver(host, port)


def _port(text: str, p: str) -> int:
    if not p.isdigit() or not 0 < int(p) < 65536:
        raise ValueError(f"{text!r}: bad port {p!r}")
    return int(p)


def system_nameservers() -> list[Nameserver]:
    """The nameservers of /etc/resolv.conf (what an empty list means)."""
    r = dns.resolver.Resolver(configure=True)
    return [Nameserver(str(ns), 53) for ns in r.nameservers]


def _aimed(
    resolver: dns.resolver.BaseResolver,
    nameservers: list[Nameserver],
    timeout: float,
    lifetime: float | None,
) -> None:
    if nameservers:
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(ns.host, ns.port) for ns in nameservers
        ]
    resolver.timeout = timeout
    resolver.lifetime = lifetime if lifetime is not None else timeout * 2
    resolver.cache = None


def dnspython_resolver(
    nameservers: list[Nameserver], timeout: float, lifetime: float | None = None
) -> dns.asyncresolver.Resolver:
    """An async dnspython resolver aimed at these nameservers (empty: the system's), no cache."""
    r = dns.asyncresolver.Resolver(configure=not nameservers)
    _aimed(r, nameservers, timeout, lifetime)
    return r


def sync_resolver(
    nameservers: list[Nameserver], timeout: float, lifetime: float | None = None
) -> dns.resolver.Resolver:
    """The blocking twin of :func:`dnspython_resolver` (for libraries such as checkdmarc)."""
    r = dns.resolver.Resolver(configure=not nameservers)
    _aimed(r, nameservers, timeout, lifetime)
    return r

"""The inventory: sending IPs by pool, sending domains, and whose traffic each is."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from checks.errors import InventoryError
from collectors.targets import Owner
from monitor.config import Config, InventoryConfig

__all__ = ["Inventory", "InventoryError", "Owner"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Inventory:
    config: InventoryConfig
    _networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Owner]] = field(
        default_factory=list, repr=False
    )

    @classmethod
    def from_config(cls, config: Config | InventoryConfig) -> Inventory:
        inv = config.inventory if isinstance(config, Config) else config
        nets = [
            (ipaddress.ip_network(c, strict=False), Owner(p.name, p.customer))
            for p in inv.pools
            for c in p.cidrs
        ]
        for net, owner in nets:
            if net.num_addresses > inv.max_cidr_addresses:
                raise InventoryError(
                    f"inventory.pools {owner.pool!r}: {net} has {net.num_addresses} addresses, "
                    f"more than inventory.max_cidr_addresses = {inv.max_cidr_addresses}"
                )
        return cls(inv, nets)

    def ips(self) -> Iterator[str]:
        """Every sending IP, each once, in pool order."""
        seen: set[str] = set()
        for net, _ in self._networks:
            hosts = [net.network_address] if net.num_addresses == 1 else net
            for ip in hosts:
                s = str(ip)
                if s not in seen:
                    seen.add(s)
                    yield s

    def domains(self) -> list[str]:
        """Every sending domain (pool domains and ``[[inventory.domains]]``), each once."""
        out: dict[str, None] = {}
        for p in self.config.pools:
            for name in p.domains:
                out[name.lower().rstrip(".")] = None
        for dc in self.config.domains:
            out[dc.name.lower().rstrip(".")] = None
        return list(out)

    def owner_of_ip(self, ip: str) -> Owner | None:
        """The pool and customer of an inventory IP, ``None`` if the IP is not ours."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for net, owner in self._networks:
            if addr.version == net.version and addr in net:
                return owner
        return None

    def owner_of_domain(self, domain: str) -> Owner | None:
        d = domain.lower().rstrip(".")
        for dc in self.config.domains:
            if dc.name.lower().rstrip(".") == d:
                pools = [p.name for p in self.config.pools if d in p.domains]
                return Owner(pools[0] if pools else "", dc.customer)
        for p in self.config.pools:
            if d in (x.lower().rstrip(".") for x in p.domains):
                return Owner(p.name, p.customer)
        return None

    def domains_of_ip(self, ip: str) -> list[str]:
        """The domains the pool of this IP sends for (SPF authorization checks)."""
        owner = self.owner_of_ip(ip)
        if owner is None:
            return []
        return [d for p in self.config.pools if p.name == owner.pool for d in p.domains]

    def dkim_selectors(self, domain: str) -> list[str]:
        d = domain.lower().rstrip(".")
        return [
            s
            for dc in self.config.domains
            if dc.name.lower().rstrip(".") == d
            for s in dc.dkim_selectors
        ]

    @cached_property
    def owners(self) -> dict[str, tuple[str, str]]:
        """target -> (pool, customer) for every inventory IP and domain (for the store)."""
        out: dict[str, tuple[str, str]] = {}
        for ip in self.ips():
            o = self.owner_of_ip(ip)
            if o:
                out[ip] = (o.pool, o.customer)
        for d in self.domains():
            o = self.owner_of_domain(d)
            if o:
                out[d] = (o.pool, o.customer)
        return out

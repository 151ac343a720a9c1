"""The inventory: sending IPs by pool, sending domains, and whose traffic each is.

Pools may be of any size: a cloud's address space (tens of millions of addresses in thousands
of networks) is held as networks, never as addresses. Who owns an address is a bisection in
the pools' sorted, disjoint ranges (the first pool listing an address owns it).

Only what is checked address by address is expanded (:meth:`Inventory.ips`): the per-IP
hygiene checks (PTR, SPF authorization) of the pools that run them, and the pools asked by
DNS blocklist zones. Those networks are held to ``inventory.max_cidr_addresses``. A pool
whose blocklist zones all have a mirror is matched against the listings by ranges
(:meth:`Inventory.ranges`, ``collectors/dnsbl/mirrored.py``) and has no size limit for IPv4
(IPv6 addresses are still answered one by one).
"""

from __future__ import annotations

import bisect
import heapq
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from checks.dnsbl.zones import Zone
from checks.errors import InventoryError
from collectors.targets import Owner
from monitor.config import Config, InventoryConfig

__all__ = ["Inventory", "InventoryError", "Owner"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: zones named in an error before "and N more"
_NAMED_ZONES = 6


@dataclass(frozen=True, slots=True)
class PoolNetwork:
    """One network of a pool: whose it is, which checks its addresses run, and which check
    it address by address (then it is within ``max_cidr_addresses``): ``by_dns``, the
    blocklist zones asked by DNS (and IPv6 with IPv6 zones); ``hygiene``, the per-IP checks."""

    network: Network
    owner: Owner
    checks: frozenset[str]
    by_dns: bool
    hygiene: bool


@dataclass(frozen=True)
class BlocklistPlan:
    """What the blocklist zones ask of the inventory: which zones go by DNS (so IPv4
    networks are expanded), and whether any zone lists IPv6 (IPv6 is always expanded)."""

    dns_zones: tuple[str, ...] = ()
    ipv6_zones: tuple[str, ...] = ()
    #: no blocklist config known: every zone counts as asked by DNS
    unknown: bool = False

    @classmethod
    def of(cls, config: Config | None) -> BlocklistPlan:
        if config is None:
            return cls(unknown=True)
        zones: list[Zone] = [z for z in config.dnsbl.active_zones() if z.kind == "ip"]
        mirrored = config.dnsbl.mirror_specs(zones)
        return cls(
            dns_zones=tuple(z.label for z in zones if z.zone not in mirrored),
            ipv6_zones=tuple(z.label for z in zones if z.ipv6),
        )

    def per_address(self, version: int) -> bool:
        if self.unknown:
            return True
        return bool(self.dns_zones) if version == 4 else bool(self.ipv6_zones)

    def why(self, version: int) -> str:
        """Why a network of ``version`` is checked address by address, and what to do."""
        if self.unknown:
            return "blocklist zones are asked by DNS, address by address: split the pool"
        if version == 6:
            named = _names(self.ipv6_zones)
            return (
                f"IPv6 addresses are checked one by one (zones {named} list IPv6): split the pool"
            )
        named = _names(self.dns_zones)
        return (
            f"blocklist zones {named} are asked by DNS, address by address: "
            f"use a mirror for zones {named} or split the pool"
        )


def _names(zones: tuple[str, ...]) -> str:
    shown = ", ".join(zones[:_NAMED_ZONES])
    more = len(zones) - _NAMED_ZONES
    return shown + (f" and {more} more" if more > 0 else "")


def _flatten(nets: list[tuple[int, int, int, Owner]]) -> tuple[list[int], list[int], list[Owner]]:
    """Sorted, disjoint (first, last, owner) ranges of ``(first, last, priority, owner)``
    networks: where networks overlap, the lowest priority (the first listed) owns the address.
    A sweep over the networks' boundaries with a heap of the open networks: O(n log n)."""
    bounds = sorted({b for a, z, _, _ in nets for b in (a, z + 1)})
    by_start: dict[int, list[tuple[int, int, Owner]]] = {}
    for a, z, prio, owner in nets:
        by_start.setdefault(a, []).append((prio, z, owner))
    starts: list[int] = []
    ends: list[int] = []
    owners: list[Owner] = []
    open_: list[tuple[int, int, Owner]] = []  # (priority, last, owner)
    for i, pos in enumerate(bounds[:-1]):
        for item in by_start.get(pos, ()):
            heapq.heappush(open_, item)
        while open_ and open_[0][1] < pos:
            heapq.heappop(open_)
        if not open_:
            continue
        owner = open_[0][2]
        last = bounds[i + 1] - 1
        if owners and owners[-1] is owner and ends[-1] + 1 == pos:
            ends[-1] = last
        else:
            starts.append(pos)
            ends.append(last)
            owners.append(owner)
    return starts, ends, owners


class _Owners(Mapping[str, tuple[str, str]]):
    """target -> (pool, customer), looked up when asked (never built for every address)."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def __getitem__(self, target: str) -> tuple[str, str]:
        o = self.inventory.owner_of_ip(target) or self.inventory.owner_of_domain(target)
        if o is None:
            raise KeyError(target)
        return (o.pool, o.customer)

    def __iter__(self) -> Iterator[str]:
        """The targets checked one by one (``ips()``) and the domains."""
        yield from self.inventory.ips()
        yield from self.inventory.domains()

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class Inventory:
    config: InventoryConfig
    _networks: list[PoolNetwork] = field(default_factory=list, repr=False)

    @classmethod
    def from_config(cls, config: Config | InventoryConfig) -> Inventory:
        """The inventory of ``config``. With the whole config, the blocklist zones decide
        which networks are checked address by address (zones asked by DNS; IPv6 whenever a
        zone lists it); with ``[inventory]`` alone, every zone counts as asked by DNS.
        Raises :class:`InventoryError` for a network checked address by address that is
        larger than ``max_cidr_addresses``, saying what to do."""
        inv = config.inventory if isinstance(config, Config) else config
        plan = BlocklistPlan.of(config if isinstance(config, Config) else None)
        nets: list[PoolNetwork] = []
        for p in inv.pools:
            checks = frozenset(p.checks)
            owner = Owner(p.name, p.customer)
            for c in p.cidrs:
                net = ipaddress.ip_network(c, strict=False)
                hygiene = "hygiene" in checks
                by_dns = "dnsbl" in checks and plan.per_address(net.version)
                if (hygiene or by_dns) and net.num_addresses > inv.max_cidr_addresses:
                    reasons = []
                    if by_dns:
                        reasons.append(plan.why(net.version))
                    if hygiene:
                        reasons.append(
                            "its per-IP hygiene checks (PTR, SPF authorization) go address by "
                            'address: set checks = ["dnsbl"] for the pool or split it'
                        )
                    raise InventoryError(
                        f"inventory.pools {p.name!r}: {net} has {net.num_addresses:,} "
                        f"addresses, more than inventory.max_cidr_addresses = "
                        f"{inv.max_cidr_addresses:,}; " + "; ".join(reasons)
                    )
                nets.append(PoolNetwork(net, owner, checks, by_dns, hygiene))
        return cls(inv, nets)

    # --- networks ----------------------------------------------------------------------------

    def ranges(
        self, pool: str | None = None, check: str | None = None
    ) -> list[tuple[Network, Owner]]:
        """The pools' networks with their owner, in config order (they may overlap): of one
        ``pool``, and of the pools that run ``check`` (``"dnsbl"``, ``"hygiene"``)."""
        return [
            (n.network, n.owner)
            for n in self._networks
            if (pool is None or n.owner.pool == pool) and (check is None or check in n.checks)
        ]

    def addresses(self, pool: str | None = None, check: str | None = None) -> int:
        """How many distinct addresses :meth:`ranges` covers (counted, never expanded)."""
        total = 0
        for version in (4, 6):
            spans = sorted(
                (int(n.network_address), int(n.broadcast_address))
                for n, _ in self.ranges(pool, check)
                if n.version == version
            )
            end = -1
            for a, b in spans:
                if b > end:
                    total += b - max(a, end + 1) + 1
                    end = b
        return total

    def ips(self, check: str | None = None) -> Iterator[str]:
        """Every address checked one by one, each once, in pool order: by default those of
        the pools running the per-IP hygiene checks; with ``check="dnsbl"`` those the
        blocklist sweep asks by DNS (and IPv6 addresses, whenever a zone lists IPv6). A
        network matched by ranges only is never expanded."""
        wanted = check or "hygiene"
        if wanted not in ("dnsbl", "hygiene"):
            raise ValueError(f"no such per-address check: {check!r}")
        seen: set[str] = set()
        for n in self._networks:
            if not (n.by_dns if wanted == "dnsbl" else n.hygiene):
                continue
            net = n.network
            hosts = [net.network_address] if net.num_addresses == 1 else net
            for ip in hosts:
                s = str(ip)
                if s not in seen:
                    seen.add(s)
                    yield s

    # --- owners ------------------------------------------------------------------------------

    @cached_property
    def _sorted(self) -> dict[int, tuple[list[int], list[int], list[Owner]]]:
        per: dict[int, list[tuple[int, int, int, Owner]]] = {4: [], 6: []}
        for prio, n in enumerate(self._networks):
            first = int(n.network.network_address)
            per[n.network.version].append(
                (first, first + n.network.num_addresses - 1, prio, n.owner)
            )
        return {v: _flatten(nets) for v, nets in per.items()}

    def owner_of_ip(self, ip: str) -> Owner | None:
        """The pool and customer of an inventory IP, ``None`` if the IP is not ours: a
        bisection in the pools' sorted ranges (the first pool listing it owns it)."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        starts, ends, owners = self._sorted[addr.version]
        value = int(addr)
        i = bisect.bisect_right(starts, value) - 1
        return owners[i] if i >= 0 and value <= ends[i] else None

    def domains(self) -> list[str]:
        """Every sending domain (pool domains and ``[[inventory.domains]]``), each once."""
        out: dict[str, None] = {}
        for p in self.config.pools:
            for name in p.domains:
                out[name.lower().rstrip(".")] = None
        for dc in self.config.domains:
            out[dc.name.lower().rstrip(".")] = None
        return list(out)

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
    def owners(self) -> Mapping[str, tuple[str, str]]:
        """target -> (pool, customer) of any inventory IP or domain (for the store and the
        time series), looked up when asked: never a table of every address."""
        return _Owners(self)

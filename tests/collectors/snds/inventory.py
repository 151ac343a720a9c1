"""A small inventory for the provider collectors' tests: the :class:`Targets` view over dicts."""

from __future__ import annotations

from collections.abc import Iterator

from collectors.targets import Owner


class Inventory:
    def __init__(self, ips: dict[str, Owner], domains: dict[str, Owner] | None = None) -> None:
        self._ips = ips
        self._domains = domains or {}

    def ips(self) -> Iterator[str]:
        return iter(self._ips)

    def domains(self) -> list[str]:
        return list(self._domains)

    def owner_of_ip(self, ip: str) -> Owner | None:
        return self._ips.get(ip)

    def owner_of_domain(self, domain: str) -> Owner | None:
        return self._domains.get(domain.lower())

    def domains_of_ip(self, ip: str) -> list[str]:
        return []

    def dkim_selectors(self, domain: str) -> list[str]:
        return []

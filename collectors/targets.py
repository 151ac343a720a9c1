"""What collectors may know of the inventory: a narrow, read-only view of what is watched.

The application's inventory (``monitor.inventory.Inventory``) implements :class:`Targets`;
collectors depend on this protocol only, never on the config file or the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose traffic an address or domain is."""

    pool: str = ""
    customer: str = ""


class Targets(Protocol):
    """The sending IPs and domains being watched, and whose each one is."""

    def ips(self) -> Iterator[str]:
        """Every watched IP address, each once."""
        ...

    def domains(self) -> list[str]:
        """Every watched sending domain, each once, lower case."""
        ...

    def owner_of_ip(self, ip: str) -> Owner | None:
        """The pool and customer of a watched IP; ``None`` when it is not ours."""
        ...

    def owner_of_domain(self, domain: str) -> Owner | None:
        """The pool and customer of a watched domain; ``None`` when it is not ours."""
        ...

    def domains_of_ip(self, ip: str) -> list[str]:
        """The domains the IP's pool sends for (SPF authorization)."""
        ...

    def dkim_selectors(self, domain: str) -> list[str]:
        """The DKIM selectors configured for a domain."""
        ...

"""Blocklist zones: what a zone lists, what its answers mean, and how it is self-tested.

A :class:`Zone` is pure data; the built-in catalogue is in
``checks/dnsbl/catalogue.py`` and users add or override zones in config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from checks.result import SEVERITIES

ZoneKind = Literal["ip", "domain"]


@dataclass(frozen=True, slots=True)
class Code:
    """What one answer address means on a zone."""

    meaning: str
    severity: str = "medium"


@dataclass(frozen=True, slots=True)
class Zone:
    """One DNS blocklist.

    ``zone`` is what is queried; it may contain ``{key}`` (Spamhaus DQS), which
    is filled in only when the query name is built and never shown: ``name`` is
    what results and logs call the zone.
    """

    zone: str
    kind: ZoneKind
    name: str = ""
    ipv6: bool = False
    codes: Mapping[str, Code] = field(default_factory=dict)
    #: answers are a bitmask of the last octet (SURBL, URIBL): codes are keyed by bit value
    bitmask: bool = False
    #: answers that mean the list refused the query (not a listing)
    refused: frozenset[str] = frozenset()
    #: answers that are allow-list or informational (not a listing)
    not_listed: frozenset[str] = frozenset()
    selftest: bool = True
    #: RFC 5782 test points; None = the RFC defaults for the zone's kind
    test_listed: str | None = None
    test_unlisted: str | None = None
    delist: str = ""
    severity: str = "medium"
    needs_key: bool = False
    enabled: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"zone {self.zone}: bad severity {self.severity!r}")

    @property
    def label(self) -> str:
        """The zone as shown to people: never contains a key."""
        if self.name:
            return self.name
        return self.zone.replace("{key}.", "")

    def query_zone(self, key: str | None) -> str:
        if "{key}" in self.zone:
            if not key:
                raise ValueError(f"zone {self.label} needs a key (dnsbl.dqs_key)")
            return self.zone.replace("{key}", key)
        return self.zone

    def delist_url(self, target: str) -> str:
        return self.delist.replace("{target}", target) if self.delist else ""

    def test_points(self) -> tuple[str, str]:
        """(must be listed, must not be listed) targets of RFC 5782 section 5."""
        if self.kind == "domain":
            return (self.test_listed or "test", self.test_unlisted or "invalid")
        return (self.test_listed or "127.0.0.2", self.test_unlisted or "127.0.0.1")

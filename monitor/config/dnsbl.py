"""``[dnsbl]``: which blocklist zones to ask, on top of (or instead of) the built-in catalogue."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from monitor.config.base import Section

SeverityName = Literal["critical", "high", "medium", "low", "info"]


class CodeConfig(Section):
    meaning: str
    severity: SeverityName = "medium"


class ZoneConfig(Section):
    """``[[dnsbl.zones]]``: a zone to add, or to override a built-in one of the same ``zone``."""

    zone: str
    type: Literal["ip", "domain"]
    name: str = ""
    ipv6: bool = False
    #: answer address -> meaning and severity, e.g. ``"127.0.0.2" = {meaning = "spam source"}``
    codes: dict[str, CodeConfig] = Field(default_factory=dict)
    #: answers are a bitmask of the last octet (SURBL, URIBL)
    bitmask: bool = False
    #: answers that mean "your query was refused", not a listing
    refused: list[str] = Field(default_factory=list)
    #: answers that are allow-list or informational, not a listing
    not_listed: list[str] = Field(default_factory=list)
    #: check the RFC 5782 test points each run
    selftest: bool = True
    #: lookup / delisting page; ``{target}`` is replaced by the listed address or domain
    delist: str = ""
    #: severity of an answer not in ``codes``
    severity: SeverityName = "medium"
    enabled: bool = True

    @field_validator("zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        v = v.strip().rstrip(".").lower()
        if not v or " " in v:
            raise ValueError("expected a DNS zone name such as 'bl.example'")
        return v


class DnsblConfig(Section):
    defaults: bool = True
    #: Spamhaus DQS key: enables the ``*.dq.spamhaus.net`` zones; never logged or printed
    dqs_key: SecretStr | None = None
    zones: list[ZoneConfig] = Field(default_factory=list)

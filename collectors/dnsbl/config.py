"""``[dnsbl]``: which blocklist zones to ask, on top of (or instead of) the built-in catalogue."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from checks.dnsbl.catalogue import CATALOGUE
from checks.dnsbl.zones import Code, Zone
from collectors.config import Section

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
    #: RFC 5782 test points to use instead of the defaults (127.0.0.2 / 127.0.0.1, test / invalid)
    test_listed: str = ""
    test_unlisted: str = ""

    def to_zone(self) -> Zone:
        return Zone(
            zone=self.zone,
            kind=self.type,
            name=self.name,
            ipv6=self.ipv6,
            codes={k: Code(v.meaning, v.severity) for k, v in self.codes.items()},
            bitmask=self.bitmask,
            refused=frozenset(self.refused),
            not_listed=frozenset(self.not_listed),
            selftest=self.selftest,
            test_listed=self.test_listed or None,
            test_unlisted=self.test_unlisted or None,
            delist=self.delist,
            severity=self.severity,
        )

    @field_validator("zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        v = v.strip().rstrip(".").lower()
        if not v or " " in v:
            raise ValueError("expected a DNS zone name such as 'bl.example'")
        return v


class DnsblConfig(Section):
    #: include the built-in zone catalogue
    defaults: bool = True
    #: catalogue zones that are off by default to switch on (e.g. "sbl.spamhaus.org")
    enable: list[str] = Field(default_factory=list)
    #: catalogue zones to switch off
    disable: list[str] = Field(default_factory=list)
    #: Spamhaus DQS key: replaces the public Spamhaus zones by their DQS twins; never logged
    dqs_key: SecretStr | None = None
    zones: list[ZoneConfig] = Field(default_factory=list)

    @field_validator("dqs_key")
    @classmethod
    def _key(cls, v: SecretStr | None) -> SecretStr | None:
        # the key becomes a DNS label: refuse anything else here, never echoing it
        if v is not None and not re.fullmatch(r"[A-Za-z0-9]{1,63}", v.get_secret_value()):
            raise ValueError("expected the DQS key: letters and digits only (the key is not shown)")
        return v

    def active_zones(self) -> list[Zone]:
        """The zones a sweep asks: catalogue (if ``defaults``) with overrides, then additions."""
        key = self.dqs_key.get_secret_value() if self.dqs_key else ""
        enable = {z.lower() for z in self.enable}
        disable = {z.lower() for z in self.disable}
        out: dict[str, Zone] = {}
        if self.defaults:
            for z in CATALOGUE:
                on = z.enabled
                if z.needs_key:
                    on = bool(key)
                elif key and z.zone in _DQS_REPLACES:
                    on = False
                if z.label in enable or z.zone in enable:
                    on = True
                if z.label in disable or z.zone in disable:
                    on = False
                if on:
                    out[z.zone] = z
        for zc in self.zones:
            if zc.enabled:
                out[zc.zone] = zc.to_zone()
            else:
                out.pop(zc.zone, None)
        return list(out.values())

    def all_zones(self) -> list[Zone]:
        """Every zone known, enabled or not (for ``repmon check --zone``)."""
        known = {z.zone: z for z in CATALOGUE}
        for zc in self.zones:
            known[zc.zone] = zc.to_zone()
        return list(known.values())


#: public Spamhaus zones that a DQS key replaces
_DQS_REPLACES = {
    "zen.spamhaus.org",
    "sbl.spamhaus.org",
    "xbl.spamhaus.org",
    "pbl.spamhaus.org",
    "dbl.spamhaus.org",
}

"""``[abuse]``: which recipients are the abuse desk, how sure a report must be, how severe
each category is, and which reporters and networks to leave out (docs/abuse.md)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from collectors.abuse.model import CATEGORIES, REVIEW_THRESHOLD, SEVERITY, Category
from collectors.config import Section

#: what a category's severity may be set to; ``critical`` asks for enforcement on the case
SeverityName = Literal["critical", "high", "medium", "low", "info"]


def _network(text: object) -> str:
    try:
        return str(ipaddress.ip_network(str(text).strip(), strict=False))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or CIDR") from None


Network = Annotated[str, BeforeValidator(_network)]


class AbuseConfig(Section):
    """``[abuse]`` (model of ``collectors/abuse``). With both recipient lists empty the sink
    takes no abuse mail; ``repmon ingest`` reads abuse reports all the same."""

    #: recipient domains of the abuse desk (mail to any address there is an abuse report)
    accept_domains: list[str] = Field(default_factory=list)
    #: recipient addresses of the abuse desk (``abuse@example.net``); an address listed here
    #: is the abuse desk's even when its domain is a ``[sink] accept_domains`` domain
    accept_addresses: list[str] = Field(default_factory=list)
    #: below this confidence a report waits in the review queue instead of feeding a case
    review_threshold: float = Field(REVIEW_THRESHOLD, ge=0.0, le=1.0)
    #: category -> severity, over the defaults (docs/abuse.md, "Categories and severities")
    severity: dict[Category, SeverityName] = Field(default_factory=dict)
    #: our own infrastructure and the reporters' relays: never a reported address
    own_networks: list[Network] = Field(default_factory=list)
    #: reporters whose reports are stored and counted but open no case: a reporter name as
    #: ``repmon reports list`` shows it (``Shadowserver``) or a sender domain (``example.org``,
    #: its subdomains too); case-insensitive
    mute_reporters: list[str] = Field(default_factory=list)

    @field_validator("accept_domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        out = []
        for d in v:
            d = d.strip().lower().rstrip(".")
            if not d or "@" in d or " " in d or "." not in d:
                raise ValueError(f"{d!r}: expected a domain such as 'abuse.example.net'")
            out.append(d)
        return out

    @field_validator("accept_addresses")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        out = []
        for a in v:
            a = a.strip().lower()
            local, at, domain = a.rpartition("@")
            if not (local and at and "." in domain) or " " in a:
                raise ValueError(f"{a!r}: expected an address such as 'abuse@example.net'")
            out.append(a)
        return out

    @field_validator("mute_reporters")
    @classmethod
    def _reporters(cls, v: list[str]) -> list[str]:
        return [r.strip().lower().rstrip(".") for r in v if r.strip()]

    def severity_of(self, category: str, critical: bool = False) -> str:
        """The severity of a report in ``category``; child-abuse material (``critical``) is
        high at least, whatever the category's setting."""
        name: str = self.severity.get(category, SEVERITY.get(category, "low"))  # type: ignore[call-overload]
        if critical and name not in ("critical", "high"):
            return "high"
        return name

    def muted(self, reporter: str, sender_domain: str = "") -> bool:
        """Whether reports of ``reporter`` (a name or a domain) are muted."""
        if not self.mute_reporters:
            return False
        names = {reporter.strip().lower().rstrip("."), sender_domain.strip().lower().rstrip(".")}
        names.discard("")
        for muted in self.mute_reporters:
            for name in names:
                if name == muted or name.endswith("." + muted):
                    return True
        return False


__all__ = ["CATEGORIES", "AbuseConfig", "SeverityName"]

"""What the abuse parsers return: one :class:`AbuseReport` per report found.

A report is what an abuse desk acts on: *what* happened (``category``), *who* did it (the
reported ``ips`` and ``urls``), *how often* (``count``), *when* (``reported_at``), *who says
so* (``reporter``) and *how sure we are* (``confidence`` and the human-readable ``reason``).
Parsers are pure: no I/O, no store, no network. Attribution to a customer, storage and
cases happen later, elsewhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CATEGORIES",
    "EXCERPT_CHARS",
    "MAX_INCIDENTS",
    "MAX_IPS",
    "MAX_URLS",
    "REVIEW_THRESHOLD",
    "SEVERITY",
    "AbuseReport",
    "Category",
    "Incident",
    "Kind",
    "Severity",
]

Category = Literal[
    "spam",
    "phishing",
    "malware",
    "botnet",
    "port-scan",
    "login-attack",
    "ddos",
    "open-service",
    "vulnerable-service",
    "copyright",
    "fraud",
    "web-attack",
    "other",
]
CATEGORIES: tuple[Category, ...] = (
    "spam",
    "phishing",
    "malware",
    "botnet",
    "port-scan",
    "login-attack",
    "ddos",
    "open-service",
    "vulnerable-service",
    "copyright",
    "fraud",
    "web-attack",
    "other",
)

Kind = Literal["abuse-report", "complaint"]
Severity = Literal["high", "medium", "low"]

#: Default severity of a category (docs/abuse.md explains each choice). Harm to third
#: parties that is happening now is high; attacks that fail most of the time are medium;
#: exposures that may be abused later, and legal notices, are low.
SEVERITY: dict[Category, Severity] = {
    "botnet": "high",
    "ddos": "high",
    "phishing": "high",
    "malware": "high",
    "fraud": "high",
    "login-attack": "medium",
    "port-scan": "medium",
    "web-attack": "medium",
    "spam": "medium",
    "open-service": "low",
    "vulnerable-service": "low",
    "copyright": "low",
    "other": "low",
}

#: Below this confidence a report is still returned, but ``needs_review`` is set.
REVIEW_THRESHOLD = 0.5

#: Per-row detail kept per report; beyond it only the aggregates (count, ips) grow.
MAX_INCIDENTS = 1000
#: Distinct reported addresses kept per report; beyond it ``truncated`` is set.
MAX_IPS = 100_000
#: Distinct reported URLs/domains kept per report.
MAX_URLS = 10_000
#: Length of the redacted evidence excerpt.
EXCERPT_CHARS = 1500
#: Length of one value inside an incident dict.
_INCIDENT_VALUE_CHARS = 200

#: One row or event of a report: a few short string fields (ip, time, port, type, url ...).
Incident = dict[str, str]


@dataclass(slots=True)
class AbuseReport:
    """One abuse report, as the command line prints it and the store will keep it."""

    category: Category
    confidence: float
    reason: str
    format: str
    kind: Kind = "abuse-report"
    reporter: str = ""
    ips: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    count: int = 1
    reported_at: dt.datetime | None = None
    incidents: list[Incident] = field(default_factory=list)
    excerpt: str = ""
    subject: str = ""
    #: the report's own labels, verbatim (X-ARF Report-Type, Shadowserver feed, ...)
    extra: dict[str, str] = field(default_factory=dict)
    #: set when ips, urls or incidents were capped (MAX_IPS, MAX_URLS, MAX_INCIDENTS)
    truncated: bool = False
    needs_review: bool = False
    # membership sets beside the ordered lists: add_ip on a 50,000-row CSV must stay O(1)
    _ip_set: set[str] = field(default_factory=set, init=False, repr=False, compare=False)
    _url_set: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    @property
    def severity(self) -> Severity:
        """The category's default severity; child-abuse material is always high."""
        if self.extra.get("critical") == "yes":
            return "high"
        return SEVERITY[self.category]

    def has_ip(self, ip: str) -> bool:
        return ip in self._ip_set

    def add_ip(self, ip: str) -> None:
        """Add a normalised address once, keeping report order, within MAX_IPS."""
        if ip in self._ip_set:
            return
        if len(self.ips) >= MAX_IPS:
            self.truncated = True
            return
        self._ip_set.add(ip)
        self.ips.append(ip)

    def add_url(self, url: str) -> None:
        if not url or url in self._url_set:
            return
        if len(self.urls) >= MAX_URLS:
            self.truncated = True
            return
        self._url_set.add(url)
        self.urls.append(url)

    def add_incident(self, incident: Incident) -> None:
        if len(self.incidents) >= MAX_INCIDENTS:
            self.truncated = True
            return
        self.incidents.append(
            {k: str(v)[:_INCIDENT_VALUE_CHARS] for k, v in incident.items() if v not in ("", None)}
        )

    def finish(self) -> AbuseReport:
        """Clamp what parsers set loosely and decide ``needs_review``; returns self.

        A report needs review when the classification is unsure, or when it names nothing
        an abuse desk could act on (no address, no URL) although it counts incidents.
        """
        self.confidence = round(min(1.0, max(0.0, self.confidence)), 2)
        self.count = max(0, self.count)
        self.excerpt = self.excerpt[:EXCERPT_CHARS]
        nothing_named = not self.ips and not self.urls and self.count > 0
        self.needs_review = self.confidence < REVIEW_THRESHOLD or nothing_named
        return self

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict of every field (times as ISO 8601)."""
        return {
            "kind": self.kind,
            "category": self.category,
            "severity": self.severity,
            "confidence": self.confidence,
            "needs_review": self.needs_review,
            "reason": self.reason,
            "reporter": self.reporter,
            "format": self.format,
            "ips": list(self.ips),
            "urls": list(self.urls),
            "count": self.count,
            "reported_at": self.reported_at.isoformat() if self.reported_at else None,
            "subject": self.subject,
            "incidents": [dict(i) for i in self.incidents],
            "excerpt": self.excerpt,
            "extra": dict(self.extra),
            "truncated": self.truncated,
        }

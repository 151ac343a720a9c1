"""What rules say about a subject, and what a case looks like to its readers.

A rule speaks in three states, like a check: a :class:`Finding` (the condition
holds: open or update a case), a :class:`Clear` (checked, and the condition
does not hold), or nothing at all for a key (cannot tell: ``unknown``, which
never opens and never resolves a case).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from checks.result import SEVERITIES
from monitor.config.cases import SeverityName

#: (rule, subject, source): at most one case per key is not resolved
CaseKey = tuple[str, str, str]


def severity_rank(name: str | None) -> int:
    """Higher is worse: critical 4 .. info 0; an unknown name ranks as medium."""
    if name in SEVERITIES:
        return len(SEVERITIES) - 1 - SEVERITIES.index(name)
    return len(SEVERITIES) - 1 - SEVERITIES.index("medium")


def severity_for(rate: float, thresholds: Mapping[SeverityName, float]) -> str | None:
    """The worst severity whose threshold ``rate`` reaches; ``None`` below all of them."""
    hit = [name for name, limit in thresholds.items() if rate >= limit]
    return max(hit, key=severity_rank) if hit else None


#: the highest severity unauthenticated reports can raise a case to (docs/cases.md,
#: "Unauthenticated reports"): enough to be seen, never critical, so never enforced
UNTRUSTED_CEILING = "medium"


def worst(*severities: str | None) -> str | None:
    """The worst of ``severities`` (``None`` ignored); ``None`` when all are."""
    given = [s for s in severities if s is not None]
    return max(given, key=severity_rank) if given else None


def with_untrusted(trusted: str | None, combined: str | None) -> tuple[str | None, bool]:
    """(severity, enforceable) of a finding whose trusted data alone reads ``trusted`` and
    whose trusted and untrusted data together read ``combined``.

    Untrusted data may raise the severity up to :data:`UNTRUSTED_CEILING`, never beyond;
    the finding is enforceable only when the trusted data alone justify its severity.
    """
    capped = combined
    if capped is not None and severity_rank(capped) > severity_rank(UNTRUSTED_CEILING):
        capped = UNTRUSTED_CEILING
    severity = worst(trusted, capped)
    enforceable = (
        severity is not None
        and trusted is not None
        and severity_rank(trusted) >= severity_rank(severity)
    )
    return severity, enforceable


@dataclass(frozen=True, slots=True)
class Finding:
    """The condition of ``rule`` holds for ``subject`` now, with its evidence."""

    rule: str
    type: str
    subject_kind: str  # ip / domain / customer
    subject: str
    severity: str
    summary: str
    source: str = ""
    pool: str = ""
    customer: str = ""
    numerator: int | None = None
    denominator: int | None = None
    window_seconds: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    #: filters of ``measure.samples`` for the feedback rows to show; read only when the
    #: evidence changed (fetching them for every quiet case on every run costs a query each)
    sample_query: dict[str, Any] = field(default_factory=dict)
    #: what must change for the timeline to get an "updated" event
    digest: str = ""
    #: whether trusted data alone justify the severity: enforcement only then (a finding
    #: raised by unauthenticated reports never throttles anything)
    enforceable: bool = True

    @property
    def key(self) -> CaseKey:
        return (self.rule, self.subject, self.source)


@dataclass(frozen=True, slots=True)
class Clear:
    """Checked, and the condition does not hold.

    ``verified_at`` is the last time the data was confirmed clear. ``since``
    is when the clear streak began as the data proves it (a check that turned
    ok and was never unknown since), ``None`` when the data cannot say (rates,
    or an ok after an unknown: the first ok after it is not recorded).
    ``interrupted_at`` is the latest ``unknown``: a streak that began before it
    is broken.
    """

    verified_at: dt.datetime
    since: dt.datetime | None = None
    interrupted_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class CaseEvent:
    id: int
    case_id: int
    at: dt.datetime
    kind: str
    severity: str | None
    text: str
    actor: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "severity": self.severity,
            "text": self.text,
            "actor": self.actor,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class Case:
    """A case as the queue shows it; ``events`` is filled by ``get_case`` only."""

    id: int
    rule: str
    type: str
    subject_kind: str
    subject: str
    source: str
    state: str
    severity: str
    last_severity: str
    summary: str
    pool: str
    customer: str
    numerator: int | None
    denominator: int | None
    window_seconds: int | None
    evidence: dict[str, Any]
    samples: list[dict[str, Any]]
    opened_at: dt.datetime
    updated_at: dt.datetime
    last_seen_at: dt.datetime
    acknowledged_at: dt.datetime | None
    resolved_at: dt.datetime | None
    clear_since: dt.datetime | None
    resolution: str | None
    events: list[CaseEvent] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        if self.numerator is None or not self.denominator:
            return None
        return self.numerator / self.denominator

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``repmon cases show --json`` and of webhook payloads."""

        def iso(t: dt.datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "id": self.id,
            "type": self.type,
            "rule": self.rule,
            "state": self.state,
            "severity": self.severity,
            "last_severity": self.last_severity,
            "subject": self.subject,
            "subject_kind": self.subject_kind,
            "source": self.source,
            "summary": self.summary,
            "pool": self.pool,
            "customer": self.customer,
            "numbers": {
                "numerator": self.numerator,
                "denominator": self.denominator,
                "rate": self.rate,
                "window_seconds": self.window_seconds,
            },
            "evidence": self.evidence,
            "samples": self.samples,
            "opened_at": iso(self.opened_at),
            "updated_at": iso(self.updated_at),
            "last_seen_at": iso(self.last_seen_at),
            "acknowledged_at": iso(self.acknowledged_at),
            "resolved_at": iso(self.resolved_at),
            "clear_since": iso(self.clear_since),
            "resolution": self.resolution,
            "events": [e.to_json() for e in self.events],
        }

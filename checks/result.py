"""The one result shape every check returns.

``status`` is ``ok`` (checked, nothing wrong), ``problem`` (checked, something
wrong: listed, record broken or missing) or ``unknown`` (could not be checked:
timeout, SERVFAIL, REFUSED, refused-query answer, failed self-test ...). An
``unknown`` result always carries ``error`` with the reason; it is never a
stand-in for "clean" or "missing".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "problem", "unknown"]
OK: Status = "ok"
PROBLEM: Status = "problem"
UNKNOWN: Status = "unknown"

#: severities, most severe first; ``None`` on ok / unknown results
SEVERITIES = ("critical", "high", "medium", "low", "info")


@dataclass(slots=True)
class CheckResult:
    """One (target, check, source) answer. Treat it as read-only once made.

    Not a frozen dataclass on purpose: a blocklist sweep makes one per (target, zone),
    hundreds of thousands a run, and a frozen dataclass's ``__init__`` costs three times as
    much.

    ``source`` names what was asked: the zone for ``dnsbl``, the selector for
    ``dkim``, the domain for ``spf-authorizes``; empty when the check has one
    source only. ``fields`` holds the check's own keys (``codes``, ``meaning``,
    ``delist`` for dnsbl ...); they are flattened into the JSON object.
    """

    target: str
    check: str
    source: str
    status: Status
    detail: str = ""
    error: str | None = None
    severity: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in (OK, PROBLEM, UNKNOWN):
            raise ValueError(f"bad status {self.status!r}")
        if self.status == UNKNOWN and not self.error:
            raise ValueError("an unknown result needs an error saying why")

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.target, self.check, self.source)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``repmon check --json``: fixed keys first, then the check's own."""
        out: dict[str, Any] = {
            "target": self.target,
            "check": self.check,
            "source": self.source,
            "status": self.status,
            "severity": self.severity,
            "detail": self.detail,
            "error": self.error,
        }
        for k, v in self.fields.items():
            out.setdefault(k, v)
        return out


def worst_exit_code(results: Iterable[CheckResult]) -> int:
    """CLI exit status: 1 if any problem, 3 if only unknowns besides ok, else 0."""
    statuses = {r.status for r in results}
    if PROBLEM in statuses:
        return 1
    if UNKNOWN in statuses:
        return 3
    return 0

"""The shapes repmon shows: one place that turns stored state into JSON for the CLI and the API.

``repmon status --json`` and ``GET /v1/status`` print the same objects, so a script written
against one works against the other.
"""

from __future__ import annotations

from typing import Any

from monitor.store.checks import Problem

#: the listing fields a problem carries from its check result
LISTING_FIELDS = ("codes", "meaning", "reason", "delist")


def problem_json(p: Problem) -> dict[str, Any]:
    """A recorded problem: what, where, since when, whose, and the list's own evidence."""
    return {
        "target": p.target,
        "check": p.check,
        "source": p.source,
        "severity": p.severity,
        "detail": p.detail,
        "since": p.since.isoformat(),
        "last_checked": p.checked_at.isoformat(),
        "last_unknown": p.last_unknown_at.isoformat() if p.last_unknown_at else None,
        "pool": p.pool,
        "customer": p.customer,
        **{k: p.data.get(k) for k in LISTING_FIELDS},
    }

"""The ``abuse`` measurement: reports per hour by category, reporter and customer; the review
backlog; first actions and reclassifications. Builders only (docs/timeseries.md, "abuse").

Every tag is bounded: ``category`` is one of the 13 categories, ``reporter`` one of the known
reporters' names (``collectors/abuse/senders.py``) or ``other``, ``customer`` an inventory
customer (or a pool without one), ``all`` (every report once) or ``none`` (not ours). A
point's identity is fixed (tags and bucket start, or the action's time), so exporting again
overwrites it with the current total.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from collectors.abuse.model import CATEGORIES
from collectors.abuse.senders import KNOWN
from monitor.timeseries.line import EMPTY, line

__all__ = [
    "KNOWN_REPORTERS",
    "action_points",
    "backlog_points",
    "count_points",
    "reclassified_points",
    "reporter_tag",
]

MEASUREMENT = "abuse"
#: reporter names kept as tags; every other reporter is ``other``
KNOWN_REPORTERS: frozenset[str] = frozenset(r.name for r in KNOWN.values())
#: the store's customer of the row that counts every report once, and of what is not ours
_ALL, _NOT_OURS = "*", ""


def reporter_tag(reporter: str, known: frozenset[str] = KNOWN_REPORTERS) -> str:
    return reporter if reporter in known else "other"


def _customer_tag(customer: str) -> str:
    if customer == _ALL:
        return "all"
    return customer or EMPTY


def count_points(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """``kind=reports`` points from ``abuse_counts`` rows (``bucket_start``, ``category``,
    ``reporter``, ``customer``, ``reports``, ``addresses``): per hour, category, reporter and
    customer, the reports about it and the addresses of it they named. Rows whose reporters
    both map to ``other`` are summed: pass every row of a bucket in one call."""
    sums: dict[tuple[dt.datetime, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        key = (
            row["bucket_start"],
            str(row["category"]),
            reporter_tag(str(row["reporter"])),
            _customer_tag(str(row["customer"])),
        )
        sums[key][0] += int(row["reports"])
        sums[key][1] += int(row["addresses"])
    return [
        line(
            MEASUREMENT,
            {"kind": "reports", "category": category, "reporter": reporter, "customer": customer},
            {"reports": n, "addresses": addresses},
            at,
        )
        for (at, category, reporter, customer), (n, addresses) in sorted(sums.items())
    ]


def backlog_points(
    backlog: Mapping[str, tuple[int, dt.datetime | None]], at: dt.datetime
) -> list[str]:
    """``kind=backlog`` points at ``at``, one per category (0 when none waits, so a series
    drops to 0 instead of stopping): reports waiting for review and the age of the oldest."""
    out = []
    for category in CATEGORIES:
        n, oldest = backlog.get(category, (0, None))
        age = max(0.0, (at - oldest).total_seconds()) if oldest is not None and n else 0.0
        out.append(
            line(
                MEASUREMENT,
                {"kind": "backlog", "category": category},
                {"waiting": int(n), "oldest_s": float(age)},
                at,
            )
        )
    return out


def action_points(actions: Iterable[Mapping[str, Any]]) -> list[str]:
    """``kind=action`` points at the time of each first action: ``what`` is ``case`` (the
    first person's event on an abuse case, after it opened) or ``review`` (a report of the
    queue classified, after it arrived); field ``seconds``."""
    return [
        line(
            MEASUREMENT,
            {"kind": "action", "what": str(x["what"]), "category": str(x["category"])},
            {"seconds": float(x["seconds"])},
            x["at"],
        )
        for x in actions
    ]


def reclassified_points(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """``kind=reclassified`` points, one per analyst decision at its time: ``category`` the
    analyst's, ``previous`` the classifier's; field ``reports`` = 1 (``sum`` counts them)."""
    return [
        line(
            MEASUREMENT,
            {
                "kind": "reclassified",
                "category": str(x["category"]),
                "previous": str(x["previous"]),
            },
            {"reports": 1},
            x["at"],
        )
        for x in rows
    ]

"""Keepers of the mailbox providers' reports: SNDS and Postmaster Tools rows into the store and
the time series.

A provider sweep (``collectors/snds/sweep.py``, ``collectors/postmaster/sweep.py``) hands its
results to the recorder (state, history, cases) and the whole report to ``Recorder.keep``;
:data:`KEEPERS` is what ``monitor/recorder.py`` calls for each collector's report:

- the rows (SNDS activity per IP and day and blocked ranges; Postmaster Tools statistics per
  domain and day and compliance) go to the store in one transaction, with the fetch's record
  (``provider_fetches``: time, errors, counts) that ``repmon status`` shows;
- their points (:mod:`monitor.timeseries.providers`) go to the time-series writer, if any;
- :data:`HEALTH` keeps the last fetch of each provider in this process for ``/metrics``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from checks.result import OK, PROBLEM, UNKNOWN, CheckResult
from collectors.postmaster import PostmasterReport
from collectors.postmaster.client import RENEW as POSTMASTER_RENEW
from collectors.snds import SndsReport
from collectors.snds.client import RENEW as SNDS_RENEW
from monitor.store import Store
from monitor.store.providers import (
    ProviderFetch,
    note_fetch,
    update_blocked_ranges,
    upsert_compliance,
    upsert_postmaster_days,
    upsert_snds_activity,
)
from monitor.timeseries.providers import (
    compliance_points,
    postmaster_points,
    snds_blocked_points,
    snds_points,
)

log = logging.getLogger("repmon.providers")

#: what an error says when the provider refused the credentials: the operator must renew them
RENEW_HINTS: dict[str, str] = {"snds": SNDS_RENEW, "postmaster": POSTMASTER_RENEW}


def _counts(results: Sequence[CheckResult]) -> dict[str, int]:
    return {
        "ok": sum(r.status == OK for r in results),
        "problem": sum(r.status == PROBLEM for r in results),
        "unknown": sum(r.status == UNKNOWN for r in results),
    }


def credentials_refused(collector: str, errors: Sequence[str]) -> bool:
    """Whether an error of the fetch says the key was refused (renew it)."""
    hint = RENEW_HINTS.get(collector)
    return hint is not None and any(hint in e for e in errors)


def keep_snds(store: Store, report: Any, at: dt.datetime, writer: Any = None) -> None:
    """Store an :class:`SndsReport`'s rows and write their points."""
    if not isinstance(report, SndsReport):
        return
    detail = {
        "day": report.day.isoformat() if report.day else None,
        "missing_days": [d.isoformat() for d in report.missing_days],
        "ip_status_read": report.blocked is not None,
        "blocked_ranges": sum(r.blocked for r in report.blocked or []),
    }
    with store.begin() as tx:
        rows = upsert_snds_activity(tx, report.activity, at)
        if report.blocked is not None:
            update_blocked_ranges(tx, report.blocked, at)
        fetch = note_fetch(
            tx, "snds", at, errors=report.errors, detail=detail, rows=rows,
            **_counts(report.results),
        )  # fmt: skip
    if writer is not None:
        points = snds_points(report.activity)
        if report.blocked is not None:
            points += snds_blocked_points(report.blocked, at)
        if points:
            writer.write(points)
    _noted(fetch)


def keep_postmaster(store: Store, report: Any, at: dt.datetime, writer: Any = None) -> None:
    """Store a :class:`PostmasterReport`'s rows and write their points."""
    if not isinstance(report, PostmasterReport):
        return
    detail = {
        "judged": {d: day.isoformat() for d, day in sorted(report.judged.items())},
        "missing": {d: [x.isoformat() for x in days] for d, days in sorted(report.missing.items())},
        "registered": sorted(r.domain for r in report.registered),
    }
    with store.begin() as tx:
        rows = upsert_postmaster_days(tx, report.days, at)
        upsert_compliance(tx, report.compliance, at)
        fetch = note_fetch(
            tx, "postmaster", at, errors=report.errors, detail=detail, rows=rows,
            **_counts(report.results),
        )  # fmt: skip
    if writer is not None:
        points = postmaster_points(report.days) + compliance_points(report.compliance, at)
        if points:
            writer.write(points)
    _noted(fetch)


def _noted(fetch: ProviderFetch) -> None:
    HEALTH.note(fetch)
    for error in fetch.errors:
        log.warning("%s: %s", fetch.collector, error)


#: collector name -> keeper, registered in ``monitor.recorder.KEEPERS``
KEEPERS: dict[str, Callable[[Store, Any, dt.datetime, Any], None]] = {
    "snds": keep_snds,
    "postmaster": keep_postmaster,
}


@dataclass(frozen=True, slots=True)
class FetchHealth:
    """What ``/metrics`` says of one provider: its last fetch in this process."""

    fetched_at: dt.datetime
    last_success_at: dt.datetime | None
    errors: int
    credentials_refused: bool
    unknown: int
    #: fetches in this process, with and without errors
    ok_fetches: int
    failed_fetches: int


class ProviderHealth:
    """The last fetch of each provider collector, kept for the Prometheus metrics (thread-safe:
    fetches run in worker threads, scrapes in the API's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, FetchHealth] = {}

    def note(self, fetch: ProviderFetch) -> None:
        with self._lock:
            old = self._last.get(fetch.collector)
            failed = bool(fetch.errors)
            self._last[fetch.collector] = FetchHealth(
                fetched_at=fetch.fetched_at,
                last_success_at=fetch.last_success_at,
                errors=len(fetch.errors),
                credentials_refused=credentials_refused(fetch.collector, fetch.errors),
                unknown=fetch.unknown,
                ok_fetches=(old.ok_fetches if old else 0) + int(not failed),
                failed_fetches=(old.failed_fetches if old else 0) + int(failed),
            )

    def snapshot(self) -> dict[str, FetchHealth]:
        with self._lock:
            return dict(self._last)


#: this process's provider fetches (the daemon's leader runs them)
HEALTH = ProviderHealth()

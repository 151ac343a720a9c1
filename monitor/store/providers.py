"""The mailbox providers' own data: Microsoft SNDS and Google Postmaster Tools.

Rows come from the collectors (:mod:`collectors.snds`, :mod:`collectors.postmaster`), already
parsed and attributed; the keepers in :mod:`monitor.providers` pass them here in one
transaction per fetch. Every write is an upsert by the table's key, so a day fetched again
(late, or published anew) replaces its row:

- ``snds_activity`` by (day, IP, seq); the rows of a fetched day that the new file no longer
  has are deleted (a day's file is the whole truth about that day);
- ``snds_blocked_ranges`` by (first, last); a range missing from a fetch of the IP status
  export gets ``cleared_at``, one listed again starts over;
- ``postmaster_days`` by (domain, day), ``postmaster_compliance`` by domain;
- ``provider_fetches`` by collector: the last fetch, its errors and counts, for ``repmon
  status`` and the metrics.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from collectors.postmaster.model import DomainCompliance, DomainDay
from collectors.snds.model import BlockedRange, IpActivity
from monitor.store.db import Store, Tx
from monitor.store.schema import (
    postmaster_compliance,
    postmaster_days,
    provider_fetches,
    snds_activity,
    snds_blocked_ranges,
)

#: rows per INSERT ... ON CONFLICT statement (executemany)
_CHUNK = 1000


def _upsert(tx: Tx, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE every other column, on both engines."""
    if not rows:
        return
    insert = postgresql.insert if tx.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    keys = [c.name for c in table.primary_key.columns]
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
    )
    for i in range(0, len(rows), _CHUNK):
        tx.execute(stmt, list(rows[i : i + _CHUNK]))


# --- SNDS ----------------------------------------------------------------------------------


def snds_activity_rows(rows: Iterable[IpActivity], at: dt.datetime) -> list[dict[str, Any]]:
    """The table rows of ``rows``: ``seq`` numbers an IP's rows within a day (0 normally)."""
    seen: dict[tuple[dt.date, str], int] = {}
    out = []
    for r in rows:
        seq = seen.get((r.day, r.ip), 0)
        seen[(r.day, r.ip)] = seq + 1
        out.append(
            {
                "day": r.day,
                "ip": r.ip,
                "seq": seq,
                "activity_start": r.activity_start,
                "activity_end": r.activity_end,
                "rcpt_commands": r.rcpt_commands,
                "data_commands": r.data_commands,
                "message_recipients": r.message_recipients,
                "filter_result": r.filter_result,
                "complaint_rate": r.complaint_rate,
                "complaint_rate_below": r.complaint_rate_below,
                "complaint_rate_text": r.complaint_rate_text,
                "trap_start": r.trap_start,
                "trap_end": r.trap_end,
                "trap_hits": r.trap_hits,
                "sample_helo": r.sample_helo,
                "jmr_p1_sender": r.jmr_p1_sender,
                "comments": r.comments,
                "pool": r.pool,
                "customer": r.customer,
                "watched": r.watched,
                "fetched_at": at,
            }
        )
    return out


def upsert_snds_activity(tx: Tx, rows: Sequence[IpActivity], at: dt.datetime) -> int:
    """Store the rows of every day fetched; each day fetched replaces what was stored for it.
    Returns the number of rows written."""
    table_rows = snds_activity_rows(rows, at)
    _upsert(tx, snds_activity, table_rows)
    days = sorted({r["day"] for r in table_rows})
    if days:
        # a row of a fetched day that this fetch did not write is gone from the file
        tx.execute(
            snds_activity.delete().where(
                snds_activity.c.day.in_(days), snds_activity.c.fetched_at != at
            )
        )
    return len(table_rows)


def update_blocked_ranges(tx: Tx, ranges: Sequence[BlockedRange], at: dt.datetime) -> int:
    """Record one read of the IP status export: ranges listed get ``last_seen_at = at`` (a new
    or re-listed range ``first_seen_at = at``), ranges not listed any more ``cleared_at = at``.
    Returns the number of ranges listed."""
    t = snds_blocked_ranges
    current = {
        (row.first, row.last): row
        for row in tx.execute(sa.select(t.c.first, t.c.last, t.c.first_seen_at, t.c.cleared_at))
    }
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in ranges:
        old = current.get((r.first, r.last))
        since = at if old is None or old.cleared_at is not None else old.first_seen_at
        rows[(r.first, r.last)] = {
            "first": r.first,
            "last": r.last,
            "blocked": r.blocked,
            "reason": r.reason,
            "pool": r.pool,
            "customer": r.customer,
            "watched_ips": r.watched_ips,
            "first_seen_at": since,
            "last_seen_at": at,
            "cleared_at": None,
        }
    _upsert(tx, t, list(rows.values()))
    gone = [k for k, row in current.items() if k not in rows and row.cleared_at is None]
    for first, last in gone:
        tx.execute(t.update().where(t.c.first == first, t.c.last == last).values(cleared_at=at))
    return len(rows)


@dataclass(frozen=True, slots=True)
class BlockedRangeRow:
    first: str
    last: str
    blocked: bool
    reason: str
    pool: str
    customer: str
    watched_ips: int
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    cleared_at: dt.datetime | None


def blocked_ranges(store: Store, current: bool = True) -> list[BlockedRangeRow]:
    """Ranges of the IP status export, by first address; ``current``: only those the last
    read listed (not cleared)."""
    t = snds_blocked_ranges
    q = sa.select(t).order_by(t.c.first, t.c.last)
    if current:
        q = q.where(t.c.cleared_at.is_(None))
    with store.begin() as tx:
        return [BlockedRangeRow(**r._mapping) for r in tx.execute(q)]


def snds_rows(
    store: Store, start: dt.date, end: dt.date, ip: str | None = None
) -> list[dict[str, Any]]:
    """``snds_activity`` rows with ``start <= day <= end`` (one IP's when ``ip``), by day and
    IP, as dicts shaped like the table."""
    t = snds_activity
    q = sa.select(t).where(t.c.day >= start, t.c.day <= end).order_by(t.c.day, t.c.ip, t.c.seq)
    if ip is not None:
        q = q.where(t.c.ip == ip)
    with store.begin() as tx:
        return [dict(r._mapping) for r in tx.execute(q)]


# --- Postmaster Tools ----------------------------------------------------------------------


def postmaster_day_row(d: DomainDay, at: dt.datetime) -> dict[str, Any]:
    return {
        "domain": d.domain,
        "day": d.day,
        "spam_ratio": d.spam_ratio,
        "spam_ratio_lower": d.spam_ratio_lower,
        "spam_ratio_upper": d.spam_ratio_upper,
        "domain_reputation": d.domain_reputation,
        "ip_reputations": [
            {"reputation": b.reputation, "ip_count": b.ip_count, "sample_ips": list(b.sample_ips)}
            for b in d.ip_reputations
        ],
        "spf_ratio": d.spf_ratio,
        "dkim_ratio": d.dkim_ratio,
        "dmarc_ratio": d.dmarc_ratio,
        "outbound_tls_ratio": d.outbound_tls_ratio,
        "inbound_tls_ratio": d.inbound_tls_ratio,
        "delivery_errors": [
            {"error_class": e.error_class, "error_type": e.error_type, "error_ratio": e.error_ratio}
            for e in d.delivery_errors
        ],
        "spammy_feedback_loops": [
            {"id": f.id, "spam_ratio": f.spam_ratio} for f in d.spammy_feedback_loops
        ],
        "pool": d.pool,
        "customer": d.customer,
        "watched": d.watched,
        "fetched_at": at,
    }


def upsert_postmaster_days(tx: Tx, days: Sequence[DomainDay], at: dt.datetime) -> int:
    """Store each (domain, day), replacing what was stored for it; returns the rows written."""
    rows = {(d.domain, d.day): postmaster_day_row(d, at) for d in days}
    _upsert(tx, postmaster_days, list(rows.values()))
    return len(rows)


def upsert_compliance(tx: Tx, statuses: Sequence[DomainCompliance], at: dt.datetime) -> int:
    """Store each domain's compliance status, replacing the previous one."""
    rows = {
        s.domain: {
            "domain": s.domain,
            "requirements": [
                {"requirement": r.requirement, "status": r.status, "reason": r.reason}
                for r in s.requirements
            ],
            "needs_work": len(s.needs_work),
            "pool": s.pool,
            "customer": s.customer,
            "watched": s.watched,
            "fetched_at": at,
        }
        for s in statuses
    }
    _upsert(tx, postmaster_compliance, list(rows.values()))
    return len(rows)


def postmaster_rows(
    store: Store, start: dt.date, end: dt.date, domain: str | None = None
) -> list[dict[str, Any]]:
    """``postmaster_days`` rows with ``start <= day <= end`` (one domain's when ``domain``), by
    domain and day, as dicts shaped like the table."""
    t = postmaster_days
    q = sa.select(t).where(t.c.day >= start, t.c.day <= end).order_by(t.c.domain, t.c.day)
    if domain is not None:
        q = q.where(t.c.domain == domain)
    with store.begin() as tx:
        return [dict(r._mapping) for r in tx.execute(q)]


def compliance_rows(store: Store) -> list[dict[str, Any]]:
    """Every domain's stored compliance status, by domain."""
    t = postmaster_compliance
    with store.begin() as tx:
        return [dict(r._mapping) for r in tx.execute(sa.select(t).order_by(t.c.domain))]


# --- fetches -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderFetch:
    """A provider collector's last fetch: when, what came of it, what went wrong."""

    collector: str
    fetched_at: dt.datetime
    errors: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
    ok: int = 0
    problem: int = 0
    unknown: int = 0
    last_success_at: dt.datetime | None = None
    fetches: int = 0
    failures: int = 0


def note_fetch(
    tx: Tx,
    collector: str,
    at: dt.datetime,
    *,
    errors: Sequence[str],
    detail: Mapping[str, Any],
    rows: int,
    ok: int,
    problem: int,
    unknown: int,
) -> ProviderFetch:
    """Record one fetch of ``collector`` (the row's counters go up by one); returns the row."""
    t = provider_fetches
    failed = bool(errors)
    old = tx.execute(sa.select(t).where(t.c.collector == collector)).first()
    fetch = ProviderFetch(
        collector=collector,
        fetched_at=at,
        errors=list(errors),
        detail=dict(detail),
        rows=rows,
        ok=ok,
        problem=problem,
        unknown=unknown,
        last_success_at=(old.last_success_at if old is not None else None) if failed else at,
        fetches=(old.fetches if old is not None else 0) + 1,
        failures=(old.failures if old is not None else 0) + int(failed),
    )
    _upsert(tx, t, [dataclasses.asdict(fetch)])
    return fetch


def last_fetches(store: Store) -> list[ProviderFetch]:
    """Every provider collector's last fetch, by collector."""
    t = provider_fetches
    with store.begin() as tx:
        rows = tx.execute(sa.select(t).order_by(t.c.collector))
        return [ProviderFetch(**r._mapping) for r in rows]

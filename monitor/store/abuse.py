"""Abuse reports in the store: written exactly once, read by the views, the rule and the series.

:func:`store_messages` writes prepared abuse messages (``collectors.abuse.prepare``) in
**one** transaction: it claims each message's hash in ``abuse_messages`` (a hash already
there, or claimed by a concurrent writer, makes that message a no-op), then inserts the
winners' ``abuse_reports``, their ``abuse_addresses`` (one row per customer named and one for
what is not ours) and adds to the hourly ``abuse_counts``. A failure commits nothing.

A report's *category* as the analyst sees it is ``reclassified_category`` when set, else the
category it arrived with (:data:`category_now`). The review queue is every report that needs
review and was not classified by an analyst since, about something of ours or naming nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from checks.result import PROBLEM
from collectors.abuse.prepare import MAX_STORED_URLS, PreparedMessage, PreparedReport
from monitor.store.db import Store, Tx
from monitor.store.schema import (
    BUCKET_SECONDS,
    abuse_addresses,
    abuse_counts,
    abuse_messages,
    abuse_reports,
    case_events,
    cases,
    check_state,
    feedback_events,
    utcnow,
)

__all__ = [
    "ALL_REPORTS",
    "category_now",
    "AddressRow",
    "ReportRow",
    "WindowRow",
    "abuse_counts_in",
    "case_first_actions",
    "complaints_by_ip",
    "count_reports",
    "find_reports",
    "last_reports",
    "problems_of_targets",
    "reclassifications",
    "reclassified_reports",
    "reclassify",
    "report_with_addresses",
    "review_backlog",
    "store_messages",
    "stored_hashes",
    "touched_buckets",
    "window_rows",
]

#: the ``customer`` of the ``abuse_counts`` row that counts every report once
ALL_REPORTS = "*"
#: hashes per ``IN (...)`` lookup; well under SQLite's limit of bound parameters
_CHUNK = 500

r = abuse_reports.c
a = abuse_addresses.c
#: the category a report has now: the analyst's, else the classifier's
category_now = sa.func.coalesce(r.reclassified_category, r.category)
#: in the review queue: unsure (or naming nothing), not yet classified by an analyst, and
#: about something of ours or about nothing it names
IN_REVIEW = sa.and_(
    r.needs_review.is_(True),
    r.reclassified_at.is_(None),
    sa.or_(r.ours > 0, sa.and_(r.ips == 0, r.url_count == 0)),
)


def _bucket(t: dt.datetime) -> dt.datetime:
    epoch = int(t.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % BUCKET_SECONDS, dt.UTC)


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _clean(text: str) -> str:
    return (text or "").replace("\x00", "")


def _fit(text: str, column: sa.Column[Any]) -> str:
    length = getattr(column.type, "length", None)
    text = _clean(text)
    return text[:length] if length else text


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {_clean(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    return value


# --- writing ---------------------------------------------------------------------------------


def stored_hashes(store: Store, hashes: Sequence[str]) -> set[str]:
    """Which of ``hashes`` are stored already."""
    found: set[str] = set()
    m = abuse_messages.c
    with store.begin() as conn:
        for i in range(0, len(hashes), _CHUNK):
            chunk = list(hashes[i : i + _CHUNK])
            query = sa.select(m.message_hash).where(m.message_hash.in_(chunk))
            found.update(str(h) for (h,) in conn.execute(query))
    return found


def store_messages(
    store: Store, prepared: Sequence[PreparedMessage], now: dt.datetime | None = None
) -> set[str]:
    """Store prepared abuse messages in one transaction; return the hashes this call claimed
    (a message already stored, or claimed by another writer, gets nothing written)."""
    if not prepared:
        return set()
    now = now or utcnow()
    with store.begin() as conn:
        rows = [
            {
                "message_hash": p.message_hash,
                "received_at": p.received_at,
                "processed_at": now,
                "channel": p.channel,
                "spool_path": _clean(p.spool_path),
                "reports": len(p.reports),
            }
            for p in prepared
        ]
        stmt = _insert(store.dialect)(abuse_messages).on_conflict_do_nothing(
            index_elements=["message_hash"]
        )
        claimed = {
            str(row[0]) for row in conn.execute(stmt.returning(abuse_messages.c.message_hash), rows)
        }
        winners = [p for p in prepared if p.message_hash in claimed]
        pairs = [(p, rep) for p in winners for rep in p.reports]
        if not pairs:
            return claimed
        ids = _insert_reports(conn, pairs)
        addresses = [
            _address_row(ids[(p.message_hash, rep.index)], p.received_at, att)
            for p, rep in pairs
            for att in rep.attributions
        ]
        if addresses:
            conn.execute(abuse_addresses.insert(), addresses)
        _add_counts(conn, store.dialect, _increments(pairs), now)
    return claimed


def _insert_reports(
    conn: Tx, pairs: Sequence[tuple[PreparedMessage, PreparedReport]]
) -> dict[tuple[str, int], int]:
    rows = [_report_row(p, rep) for p, rep in pairs]
    stmt = abuse_reports.insert().returning(r.id, r.message_hash, r.report_index)
    return {(str(h), int(i)): int(rid) for rid, h, i in conn.execute(stmt, rows)}


def _report_row(p: PreparedMessage, prep: PreparedReport) -> dict[str, Any]:
    rep = prep.report
    return {
        "message_hash": p.message_hash,
        "report_index": prep.index,
        "kind": _fit(rep.kind, r.kind),
        "category": _fit(rep.category, r.category),
        "confidence": float(rep.confidence),
        "reason": _clean(rep.reason),
        "severity": _fit(prep.severity, r.severity),
        "needs_review": prep.needs_review,
        "muted": prep.muted,
        "reporter": _fit(rep.reporter, r.reporter),
        "format": _fit(rep.format, r.format),
        "subject": _clean(rep.subject)[:1000],
        "reported_at": rep.reported_at,
        "received_at": p.received_at,
        "count": int(rep.count),
        "ips": len(rep.ips),
        "ours": prep.ours,
        "not_ours": prep.foreign,
        "ignored": prep.ignored,
        "url_count": len(rep.urls),
        "urls": _clean_json(rep.urls[:MAX_STORED_URLS]),
        "excerpt": _clean(rep.excerpt),
        "extra": _clean_json(dict(rep.extra)),
        "truncated": bool(rep.truncated),
    }


def _address_row(report_id: int, received_at: dt.datetime, att: Any) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "customer": _fit(att.customer, a.customer),
        "ours": att.ours,
        "pools": _clean_json(att.pools),
        "addresses": att.addresses,
        "urls": att.urls,
        "sample": _clean_json(att.sample),
        "sample_urls": _clean_json(att.sample_urls),
        "received_at": received_at,
    }


Key = tuple[dt.datetime, str, str, str]


def _increments(pairs: Sequence[tuple[PreparedMessage, PreparedReport]]) -> dict[Key, list[int]]:
    """(bucket, category, reporter, customer) -> [reports, addresses] of new reports."""
    out: dict[Key, list[int]] = {}
    for p, prep in pairs:
        rep = prep.report
        rows = [(att.customer if att.ours else "", att.addresses) for att in prep.attributions]
        if not any(not att.ours for att in prep.attributions) and not prep.ours:
            rows.append(("", 0))  # names nothing of ours: counted as not ours
        rows.append((ALL_REPORTS, len(rep.ips)))
        _count(out, _bucket(p.received_at), rep.category, rep.reporter, rows, +1)
    return out


def _count(
    out: dict[Key, list[int]],
    bucket: dt.datetime,
    category: str,
    reporter: str,
    rows: Iterable[tuple[str, int]],
    sign: int,
) -> None:
    reporter = _fit(reporter, abuse_counts.c.reporter)
    for customer, addresses in rows:
        key = (bucket, category, reporter, _fit(customer, abuse_counts.c.customer))
        entry = out.setdefault(key, [0, 0])
        entry[0] += sign
        entry[1] += sign * addresses


def _add_counts(conn: Tx, dialect: str, totals: dict[Key, list[int]], now: dt.datetime) -> None:
    if not totals:
        return
    c = abuse_counts.c
    stmt = _insert(dialect)(abuse_counts)
    stmt = stmt.on_conflict_do_update(
        index_elements=["bucket_start", "category", "reporter", "customer"],
        set_={
            "reports": c.reports + stmt.excluded.reports,
            "addresses": c.addresses + stmt.excluded.addresses,
            "updated_at": stmt.excluded.updated_at,
        },
    )
    # sorted keys: concurrent writers lock rows in the same order (no deadlock on PostgreSQL)
    conn.execute(
        stmt,
        [
            {
                "bucket_start": bucket,
                "category": category,
                "reporter": reporter,
                "customer": customer,
                "reports": n,
                "addresses": addresses,
                "updated_at": now,
            }
            for (bucket, category, reporter, customer), (n, addresses) in sorted(totals.items())
        ],
    )


# --- reading: the views ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddressRow:
    customer: str
    ours: bool
    pools: list[str]
    addresses: int
    urls: int
    sample: list[str]
    sample_urls: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "ours": self.ours,
            "pools": self.pools,
            "addresses": self.addresses,
            "urls": self.urls,
            "sample": self.sample,
            "sample_urls": self.sample_urls,
        }


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One stored report; ``customers`` is filled by the listing, ``addresses`` by
    :func:`report_with_addresses`."""

    id: int
    message_hash: str
    report_index: int
    kind: str
    category: str  # the category it has now
    original_category: str
    confidence: float
    reason: str
    severity: str
    needs_review: bool
    in_review: bool
    muted: bool
    reporter: str
    format: str
    subject: str
    reported_at: dt.datetime | None
    received_at: dt.datetime
    count: int
    ips: int
    ours: int
    not_ours: int
    ignored: int
    url_count: int
    urls: list[str]
    excerpt: str
    extra: dict[str, Any]
    truncated: bool
    reclassified_by: str | None
    reclassified_at: dt.datetime | None
    customers: list[str] = field(default_factory=list)
    addresses: list[AddressRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def iso(t: dt.datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "id": self.id,
            "message_hash": self.message_hash,
            "report_index": self.report_index,
            "kind": self.kind,
            "category": self.category,
            "classified_as": self.original_category,
            "confidence": self.confidence,
            "reason": self.reason,
            "severity": self.severity,
            "needs_review": self.needs_review,
            "in_review": self.in_review,
            "muted": self.muted,
            "reporter": self.reporter,
            "format": self.format,
            "subject": self.subject,
            "reported_at": iso(self.reported_at),
            "received_at": iso(self.received_at),
            "count": self.count,
            "ips": self.ips,
            "ours": self.ours,
            "not_ours": self.not_ours,
            "own_networks": self.ignored,
            "url_count": self.url_count,
            "urls": self.urls,
            "excerpt": self.excerpt,
            "extra": self.extra,
            "truncated": self.truncated,
            "reclassified_by": self.reclassified_by,
            "reclassified_at": iso(self.reclassified_at),
            "customers": self.customers,
            "addresses": [x.to_json() for x in self.addresses],
        }


_COLUMNS = [
    r.id, r.message_hash, r.report_index, r.kind, category_now.label("now"), r.category,
    r.confidence, r.reason, r.severity, r.needs_review, IN_REVIEW.label("in_review"), r.muted,
    r.reporter, r.format, r.subject, r.reported_at, r.received_at, r.count.label("incidents"),
    r.ips, r.ours, r.not_ours, r.ignored, r.url_count, r.urls, r.excerpt, r.extra, r.truncated,
    r.reclassified_by, r.reclassified_at,
]  # fmt: skip


def _report(row: Any, customers: list[str] | None = None) -> ReportRow:
    return ReportRow(
        id=row.id,
        message_hash=row.message_hash,
        report_index=row.report_index,
        kind=row.kind,
        category=row.now,
        original_category=row.category,
        confidence=float(row.confidence),
        reason=row.reason,
        severity=row.severity,
        needs_review=bool(row.needs_review),
        in_review=bool(row.in_review),
        muted=bool(row.muted),
        reporter=row.reporter,
        format=row.format,
        subject=row.subject,
        reported_at=row.reported_at,
        received_at=row.received_at,
        count=row.incidents,
        ips=row.ips,
        ours=row.ours,
        not_ours=row.not_ours,
        ignored=row.ignored,
        url_count=row.url_count,
        urls=list(row.urls or []),
        excerpt=row.excerpt,
        extra=dict(row.extra or {}),
        truncated=bool(row.truncated),
        reclassified_by=row.reclassified_by,
        reclassified_at=row.reclassified_at,
        customers=customers or [],
    )


def _filtered(
    query: Any,
    review: bool,
    category: str | None,
    customer: str | None,
    reporter: str | None,
    since: dt.datetime | None,
    reclassified: bool,
) -> Any:
    if review:
        query = query.where(IN_REVIEW)
    if category:
        query = query.where(category_now == category)
    if reporter:
        query = query.where(sa.func.lower(r.reporter) == reporter.lower())
    if since is not None:
        query = query.where(r.received_at >= since)
    if reclassified:
        query = query.where(r.reclassified_at.is_not(None))
    if customer:
        named = sa.select(a.report_id).where(a.customer == customer, a.ours.is_(True))
        query = query.where(r.id.in_(named))
    return query


def find_reports(
    store: Store,
    *,
    review: bool = False,
    category: str | None = None,
    customer: str | None = None,
    reporter: str | None = None,
    since: dt.datetime | None = None,
    reclassified: bool = False,
    limit: int | None = 100,
    oldest_first: bool = False,
) -> list[ReportRow]:
    """Reports, newest first (the review queue: oldest first), with their customers."""
    query = _filtered(
        sa.select(*_COLUMNS), review, category, customer, reporter, since, reclassified
    )
    order = (r.received_at, r.id) if oldest_first else (r.received_at.desc(), r.id.desc())
    query = query.order_by(*order)
    if limit is not None:
        query = query.limit(limit)
    with store.begin() as conn:
        rows = conn.execute(query).all()
        named: dict[int, list[str]] = {}
        ids = [row.id for row in rows]
        for i in range(0, len(ids), _CHUNK):
            q = (
                sa.select(a.report_id, a.customer)
                .where(a.report_id.in_(ids[i : i + _CHUNK]), a.ours.is_(True))
                .order_by(a.report_id, a.addresses.desc(), a.customer)
            )
            for rid, customer_name in conn.execute(q):
                named.setdefault(rid, []).append(customer_name)
    return [_report(row, named.get(row.id, [])) for row in rows]


def count_reports(
    store: Store,
    *,
    review: bool = False,
    category: str | None = None,
    customer: str | None = None,
    reporter: str | None = None,
    since: dt.datetime | None = None,
    reclassified: bool = False,
) -> int:
    query = _filtered(
        sa.select(sa.func.count()).select_from(abuse_reports),
        review,
        category,
        customer,
        reporter,
        since,
        reclassified,
    )
    with store.begin() as conn:
        return int(conn.execute(query).scalar() or 0)


def report_with_addresses(store: Store, report_id: int) -> ReportRow | None:
    """One report with its attribution rows (customers first, by size, then not ours)."""
    with store.begin() as conn:
        return _report_in(conn, report_id)


def _report_in(conn: Tx, report_id: int) -> ReportRow | None:
    row = conn.execute(sa.select(*_COLUMNS).where(r.id == report_id)).first()
    if row is None:
        return None
    rows = [
        AddressRow(
            x.customer,
            bool(x.ours),
            list(x.pools or []),
            x.addresses,
            x.urls,
            list(x.sample or []),
            list(x.sample_urls or []),
        )
        for x in conn.execute(
            sa.select(abuse_addresses)
            .where(a.report_id == report_id)
            .order_by(a.ours.desc(), a.addresses.desc(), a.customer)
        )
    ]
    return replace(_report(row, [x.customer for x in rows if x.ours]), addresses=rows)


def reclassify(
    store: Store,
    report_id: int,
    category: str,
    severity: str,
    actor: str,
    now: dt.datetime | None = None,
) -> tuple[str, ReportRow] | None:
    """Set a report's category (and the severity of that category) as an analyst decided;
    its hourly counts move from its category to the new one in the same transaction.
    Returns (the category it had, the report now), or None when there is no such report."""
    now = now or utcnow()
    with store.begin() as conn:
        lock = sa.select(*_COLUMNS).where(r.id == report_id)
        if store.dialect == "postgresql":
            lock = lock.with_for_update(of=abuse_reports)
        row = conn.execute(lock).first()
        if row is None:
            return None
        before = str(row.now)
        conn.execute(
            abuse_reports.update()
            .where(r.id == report_id)
            .values(
                reclassified_category=category,
                reclassified_by=_fit(actor, r.reclassified_by),
                reclassified_at=now,
                severity=severity,
            )
        )
        if before != category:
            rows = [
                (x.customer if x.ours else "", int(x.addresses))
                for x in conn.execute(
                    sa.select(a.customer, a.ours, a.addresses).where(a.report_id == report_id)
                )
            ]
            if not any(customer == "" for customer, _ in rows) and not row.ours:
                rows.append(("", 0))
            rows.append((ALL_REPORTS, int(row.ips)))
            moves: dict[Key, list[int]] = {}
            bucket = _bucket(row.received_at)
            _count(moves, bucket, before, row.reporter, rows, -1)
            _count(moves, bucket, category, row.reporter, rows, +1)
            _add_counts(conn, store.dialect, moves, now)
        after = _report_in(conn, report_id)
    assert after is not None
    return before, after


def reclassified_reports(store: Store, since: dt.datetime | None = None) -> Iterator[ReportRow]:
    """Every report an analyst classified (oldest decision first), for labelled exports."""
    query = sa.select(*_COLUMNS).where(r.reclassified_at.is_not(None))
    if since is not None:
        query = query.where(r.reclassified_at >= since)
    query = query.order_by(r.reclassified_at, r.id)
    last = (dt.datetime.min.replace(tzinfo=dt.UTC), 0)
    while True:  # pages, so that a large export never holds every excerpt at once
        with store.begin() as conn:
            page = conn.execute(
                query.where(
                    sa.or_(
                        r.reclassified_at > last[0],
                        sa.and_(r.reclassified_at == last[0], r.id > last[1]),
                    )
                ).limit(_CHUNK)
            ).all()
        if not page:
            return
        for row in page:
            yield _report(row)
        last = (page[-1].reclassified_at, page[-1].id)


# --- reading: the rule -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One (report, customer) in the rule's window, with what the case shows of it."""

    report_id: int
    customer: str
    category: str
    severity: str
    reporter: str
    received_at: dt.datetime
    reported_at: dt.datetime | None
    count: int
    addresses: int
    urls: int
    pools: list[str]
    sample: list[str]
    sample_urls: list[str]
    excerpt: str
    subject: str


def window_rows(tx: Tx, start: dt.datetime, end: dt.datetime) -> list[WindowRow]:
    """Every (report, customer of ours) received in ``[start, end)`` that may feed a case:
    not muted, and classified surely or by an analyst. Newest first."""
    query = (
        sa.select(
            r.id,
            a.customer,
            category_now.label("now"),
            r.severity,
            r.reporter,
            r.received_at,
            r.reported_at,
            r.count.label("incidents"),
            a.addresses,
            a.urls,
            a.pools,
            a.sample,
            a.sample_urls,
            r.excerpt,
            r.subject,
        )
        .select_from(abuse_addresses.join(abuse_reports, a.report_id == r.id))
        .where(
            a.ours.is_(True),
            a.received_at >= start,
            a.received_at < end,
            r.muted.is_(False),
            sa.or_(r.needs_review.is_(False), r.reclassified_at.is_not(None)),
        )
        .order_by(r.received_at.desc(), r.id.desc())
    )
    return [
        WindowRow(
            row.id,
            row.customer,
            row.now,
            row.severity,
            row.reporter,
            row.received_at,
            row.reported_at,
            row.incidents,
            row.addresses,
            row.urls,
            list(row.pools or []),
            list(row.sample or []),
            list(row.sample_urls or []),
            row.excerpt,
            row.subject,
        )
        for row in tx.execute(query)
    ]


def last_reports(tx: Tx, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dt.datetime]:
    """(customer, category) -> when the last report that may feed a case arrived."""
    wanted = set(keys)
    if not wanted:
        return {}
    customers = sorted({c for c, _ in wanted})
    out: dict[tuple[str, str], dt.datetime] = {}
    for i in range(0, len(customers), _CHUNK):
        query = (
            sa.select(a.customer, category_now.label("now"), sa.func.max(a.received_at))
            .select_from(abuse_addresses.join(abuse_reports, a.report_id == r.id))
            .where(
                a.ours.is_(True),
                a.customer.in_(customers[i : i + _CHUNK]),
                r.muted.is_(False),
                sa.or_(r.needs_review.is_(False), r.reclassified_at.is_not(None)),
            )
            .group_by(a.customer, category_now)
        )
        for customer, category, at in tx.execute(query):
            if (customer, category) in wanted and at is not None:
                if at.tzinfo is None:
                    at = at.replace(tzinfo=dt.UTC)
                out[(customer, category)] = at
    return out


def problems_of_targets(tx: Tx, targets: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """target -> its current problems (blocklistings and other checks), as the case shows
    them: check, source, severity, detail, since."""
    names = sorted(set(targets))
    out: dict[str, list[dict[str, Any]]] = {}
    c = check_state.c
    for i in range(0, len(names), _CHUNK):
        query = (
            sa.select(c.target, c.check, c.source, c.severity, c.detail, c.changed_at)
            .where(c.target.in_(names[i : i + _CHUNK]), c.status == PROBLEM)
            .order_by(c.target, c.check, c.source)
        )
        for row in tx.execute(query):
            out.setdefault(row.target, []).append(
                {
                    "check": row.check,
                    "source": row.source,
                    "severity": row.severity,
                    "detail": row.detail,
                    "since": row.changed_at.isoformat() if row.changed_at else None,
                }
            )
    return out


def complaints_by_ip(
    tx: Tx, ips: Iterable[str], start: dt.datetime, end: dt.datetime
) -> dict[str, int]:
    """Sending IP -> feedback complaints attributed to it in ``[start, end)``."""
    names = sorted(set(ips))
    out: dict[str, int] = {}
    e = feedback_events.c
    for i in range(0, len(names), _CHUNK):
        query = (
            sa.select(e.sending_ip, sa.func.count())
            .where(
                e.sending_ip.in_(names[i : i + _CHUNK]),
                e.kind == "complaint",
                e.received_at >= start,
                e.received_at < end,
            )
            .group_by(e.sending_ip)
        )
        out.update((str(ip), int(n)) for ip, n in tx.execute(query))
    return out


# --- reading: the time series ----------------------------------------------------------------


def touched_buckets(tx: Tx, since: dt.datetime) -> list[dt.datetime]:
    """Hour buckets of ``abuse_counts`` changed at or after ``since``."""
    c = abuse_counts.c
    query = sa.select(c.bucket_start).where(c.updated_at >= since).distinct()
    return sorted(row[0] for row in tx.execute(query))


def abuse_counts_in(tx: Tx, buckets: Sequence[dt.datetime]) -> list[dict[str, Any]]:
    """Every ``abuse_counts`` row of ``buckets`` (pass every bucket whole: points are sums)."""
    out: list[dict[str, Any]] = []
    c = abuse_counts.c
    for i in range(0, len(buckets), _CHUNK):
        query = sa.select(
            c.bucket_start, c.category, c.reporter, c.customer, c.reports, c.addresses
        ).where(c.bucket_start.in_(list(buckets[i : i + _CHUNK])))
        out += [dict(row._mapping) for row in tx.execute(query)]
    return out


def review_backlog(tx: Tx) -> dict[str, tuple[int, dt.datetime]]:
    """Category -> (reports waiting in the review queue, when the oldest arrived)."""
    query = (
        sa.select(r.category, sa.func.count(), sa.func.min(r.received_at))
        .where(IN_REVIEW)
        .group_by(r.category)
    )
    out = {}
    for category, n, oldest in tx.execute(query):
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        out[str(category)] = (int(n), oldest)
    return out


def case_first_actions(tx: Tx, since: dt.datetime) -> list[dict[str, Any]]:
    """First actions taken since ``since``: per abuse case the first event by a person
    (acknowledged, note, resolved …: actor not ``repmon``) and per reclassified report the
    decision, each with the seconds it came after the case opened / the report arrived."""
    out: list[dict[str, Any]] = []
    k, ev = cases.c, case_events.c
    first = (
        sa.select(ev.case_id, sa.func.min(ev.at).label("at"))
        .where(ev.actor != "repmon")
        .group_by(ev.case_id)
        .subquery()
    )
    query = (
        sa.select(k.source, k.customer, k.opened_at, first.c.at)
        .select_from(cases.join(first, first.c.case_id == k.id))
        .where(k.rule == "abuse", first.c.at >= since)
    )
    for category, customer, opened, at in tx.execute(query):
        out.append(
            {
                "what": "case",
                "category": category,
                "customer": customer,
                "at": at,
                "seconds": max(0.0, (at - opened).total_seconds()),
            }
        )
    query = sa.select(r.category, r.reclassified_at, r.received_at).where(
        r.reclassified_at >= since, r.needs_review.is_(True)
    )
    for row in tx.execute(query):
        category, at, received = row.category, row.reclassified_at, row.received_at
        out.append(
            {
                "what": "review",
                "category": category,
                "customer": "",
                "at": at,
                "seconds": max(0.0, (at - received).total_seconds()),
            }
        )
    return out


def reclassifications(tx: Tx, since: dt.datetime) -> list[dict[str, Any]]:
    """Analysts' decisions at or after ``since``: when, the category given and the
    classifier's."""
    query = sa.select(r.reclassified_at, r.reclassified_category, r.category).where(
        r.reclassified_at >= since
    )
    return [
        {"at": at, "category": category, "previous": previous}
        for at, category, previous in tx.execute(query)
    ]

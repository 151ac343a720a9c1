"""What the rules count: sent volume, DMARC totals, feedback per IP, bursts, samples.

Every function reads inside the caller's transaction (the evaluation's, see
:func:`monitor.store.cases.evaluation`). Windows are half-open ``[start, end)`` on the hourly
``sent_volume`` buckets and on ``feedback_events.received_at``; DMARC records count when
their report period ``end`` falls inside ``[start, end]``.

Trust: each event and DMARC record is joined to its message's ``feedback_senders`` row. An
untrusted message's events are counted apart (``Tally.untrusted``, with who sent them) and
its DMARC records are left out of the volumes; a message stored before that table existed
has no row and counts as trusted, as it did then.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from monitor.store.db import Tx
from monitor.store.schema import dmarc_records, feedback_events, feedback_senders, sent_volume

#: the most senders of unauthenticated reports named per subject
MAX_REPORTERS = 5


def _trusted(table: sa.Table) -> Any:
    """True unless the message's ``feedback_senders`` row says untrusted (no row: trusted)."""
    return sa.func.coalesce(feedback_senders.c.trusted, sa.true())


def _with_senders(table: sa.Table) -> Any:
    return table.outerjoin(
        feedback_senders, feedback_senders.c.message_hash == table.c.message_hash
    )


def _shown() -> Any:
    """How an untrusted sender is named: the authenticated domain, else the claimed From
    domain, else the client IP."""
    s = feedback_senders.c
    return sa.func.coalesce(
        sa.func.nullif(s.reporter, ""),
        sa.func.nullif(s.from_domain, ""),
        sa.func.nullif(s.peer, ""),
        "unknown sender",
    )


def sent_per_source(tx: Tx, start: dt.datetime, end: dt.datetime) -> list[tuple[str, str, int]]:
    """(sending IP, source, messages) reported in ``sent_volume`` in the window."""
    q = (
        sa.select(
            sent_volume.c.sending_ip,
            sent_volume.c.source,
            sa.func.sum(sent_volume.c.count).label("n"),
        )
        .where(sent_volume.c.bucket_start >= start, sent_volume.c.bucket_start < end)
        .group_by(sent_volume.c.sending_ip, sent_volume.c.source)
    )
    return [(ip, source, int(n or 0)) for ip, source, n in tx.execute(q)]


@dataclass(frozen=True, slots=True)
class DmarcTotals:
    total: int
    failing: int  # neither DKIM nor SPF passed (policy_evaluated)
    customer: str
    pool: str


def dmarc_by_ip(tx: Tx, start: dt.datetime, end: dt.datetime) -> dict[str, DmarcTotals]:
    """source IP -> DMARC-reported messages and those failing both DKIM and SPF, from
    trusted reports only."""
    out: dict[str, DmarcTotals] = {}
    for g in dmarc_groups(tx, start, end):
        if not g.trusted:
            continue
        t = out.get(g.source_ip)
        out[g.source_ip] = DmarcTotals(
            (t.total if t else 0) + g.total,
            (t.failing if t else 0) + g.failing,
            max(t.customer if t else "", g.customer),
            max(t.pool if t else "", g.pool),
        )
    return out


@dataclass(frozen=True, slots=True)
class DmarcGroup:
    """The DMARC records of one (source IP, reporter, report period), trusted or not."""

    source_ip: str
    org_name: str
    begin: dt.datetime | None
    end: dt.datetime
    trusted: bool
    total: int
    failing: int
    customer: str
    pool: str
    reporters: tuple[str, ...] = ()  # who sent the untrusted ones


def dmarc_groups(tx: Tx, start: dt.datetime, end: dt.datetime) -> list[DmarcGroup]:
    """DMARC-reported messages per (source IP, reporter, period, trusted) whose period ends
    inside ``[start, end]``."""
    d = dmarc_records.c
    failing = sa.case((sa.and_(d.dkim != "pass", d.spf != "pass"), 1), else_=0)
    trusted = _trusted(dmarc_records).label("trusted")
    q = (
        sa.select(
            d.source_ip,
            d.org_name,
            d.begin,
            d.end,
            trusted,
            sa.func.sum(d.count).label("total"),
            sa.func.sum(d.count * failing).label("failing"),
            sa.func.max(d.customer).label("customer"),
            sa.func.max(d.pool).label("pool"),
            sa.func.max(_shown()).label("shown"),
        )
        .select_from(_with_senders(dmarc_records))
        .where(d.end >= start, d.end <= end)
        .group_by(d.source_ip, d.org_name, d.begin, d.end, trusted)
    )
    return [
        DmarcGroup(
            ip,
            org or "",
            begin,
            stop,
            bool(ok),
            int(total or 0),
            int(fail or 0),
            customer or "",
            pool or "",
            () if ok else (str(shown),),
        )
        for ip, org, begin, stop, ok, total, fail, customer, pool, shown in tx.execute(q)
    ]


def sent_hourly(
    tx: Tx, ips: Iterable[str], start: dt.datetime, end: dt.datetime
) -> dict[str, dict[str, dict[dt.datetime, int]]]:
    """IP -> source -> hour bucket -> messages the MTAs reported, for ``ips`` in
    ``[start, end)``."""
    wanted = sorted(set(ips))
    out: dict[str, dict[str, dict[dt.datetime, int]]] = defaultdict(lambda: defaultdict(dict))
    v = sent_volume.c
    for i in range(0, len(wanted), 500):
        q = sa.select(v.sending_ip, v.source, v.bucket_start, v.count).where(
            v.sending_ip.in_(wanted[i : i + 500]), v.bucket_start >= start, v.bucket_start < end
        )
        for ip, source, bucket, n in tx.execute(q):
            out[ip][source][bucket] = int(n)
    return out


@dataclass(frozen=True, slots=True)
class Tally:
    """Feedback events of one subject: how many from trusted reports (``count``), the
    pool/customer they carried, and how many came in untrusted reports and from whom."""

    count: int
    pool: str
    customer: str
    untrusted: int = 0
    #: (sender as shown, events) of the untrusted reports, most first
    reporters: tuple[tuple[str, int], ...] = ()


def _tallies(tx: Tx, q: Any, keys: int) -> dict[Any, Tally]:
    """Run a query selecting ``keys`` key columns, then trusted, shown sender, n, pool,
    customer; fold it into one Tally per key."""
    counts: dict[Any, list[Any]] = {}
    senders: dict[Any, dict[str, int]] = defaultdict(dict)
    for row in tx.execute(q):
        key = row[0] if keys == 1 else tuple(row[:keys])
        ok, shown, n, pool, customer = row[keys:]
        entry = counts.setdefault(key, [0, 0, "", ""])
        entry[0 if ok else 1] += int(n)
        entry[2], entry[3] = max(entry[2], pool or ""), max(entry[3], customer or "")
        if not ok:
            senders[key][str(shown)] = senders[key].get(str(shown), 0) + int(n)
    out = {}
    for key, (trusted, untrusted, pool, customer) in counts.items():
        named = sorted(senders[key].items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_REPORTERS]
        out[key] = Tally(trusted, pool, customer, untrusted, tuple(named))
    return out


def feedback_by_ip(
    tx: Tx,
    start: dt.datetime,
    end: dt.datetime,
    kind: str,
    *,
    hard: bool | None = None,
    exclude_feedback_types: Iterable[str] = (),
) -> dict[str, Tally]:
    """sending IP -> events of ``kind`` received in the window (unattributed ones left out),
    trusted and untrusted apart."""
    e = feedback_events.c
    trusted = _trusted(feedback_events)
    shown = sa.case((trusted, ""), else_=_shown())
    q = (
        sa.select(
            e.sending_ip,
            trusted.label("trusted"),
            shown.label("shown"),
            sa.func.count().label("n"),
            sa.func.max(e.pool).label("pool"),
            sa.func.max(e.customer).label("customer"),
        )
        .select_from(_with_senders(feedback_events))
        .where(e.kind == kind, e.received_at >= start, e.received_at < end, e.sending_ip != "")
        .group_by(e.sending_ip, trusted, shown)
    )
    if hard is not None:
        q = q.where(e.hard.is_(hard))
    excluded = list(exclude_feedback_types)
    if excluded:
        q = q.where(e.feedback_type.not_in(excluded))
    return _tallies(tx, q, 1)


def bursts(
    tx: Tx, start: dt.datetime, end: dt.datetime, categories: Iterable[str]
) -> dict[tuple[str, str], Tally]:
    """(sending IP, receiving domain) -> bounces in ``categories`` received in the window,
    trusted and untrusted apart."""
    e = feedback_events.c
    trusted = _trusted(feedback_events)
    shown = sa.case((trusted, ""), else_=_shown())
    q = (
        sa.select(
            e.sending_ip,
            e.receiving_domain,
            trusted.label("trusted"),
            shown.label("shown"),
            sa.func.count().label("n"),
            sa.func.max(e.pool),
            sa.func.max(e.customer),
        )
        .select_from(_with_senders(feedback_events))
        .where(
            e.kind == "bounce",
            e.category.in_(list(categories)),
            e.received_at >= start,
            e.received_at < end,
            e.sending_ip != "",
            e.receiving_domain != "",
        )
        .group_by(e.sending_ip, e.receiving_domain, trusted, shown)
    )
    return _tallies(tx, q, 2)


@dataclass(frozen=True, slots=True)
class FeedbackSample:
    """One stored feedback event, as a case shows it (after redaction by the caller)."""

    received_at: dt.datetime
    kind: str
    category: str
    sending_ip: str
    receiving_domain: str
    recipient: str
    status: str
    diagnostic: str
    feedback_type: str
    blocklist: str
    trusted: bool = True
    sender: str = ""  # who sent an untrusted one, as shown


def feedback_samples(
    tx: Tx,
    start: dt.datetime,
    end: dt.datetime,
    limit: int,
    *,
    kind: str,
    sending_ips: Iterable[str] | None = None,
    customer: str | None = None,
    hard: bool | None = None,
    categories: Iterable[str] | None = None,
    receiving_domain: str | None = None,
) -> list[FeedbackSample]:
    """The latest ``limit`` events of ``kind`` received in the window that match the filters."""
    e = feedback_events.c
    q = (
        sa.select(
            feedback_events,
            _trusted(feedback_events).label("trusted_"),
            _shown().label("sender_"),
        )
        .select_from(_with_senders(feedback_events))
        .where(e.kind == kind, e.received_at >= start, e.received_at < end)
    )
    if sending_ips is not None:
        q = q.where(e.sending_ip.in_(list(sending_ips)))
    if customer is not None:
        q = q.where(e.customer == customer)
    if hard is not None:
        q = q.where(e.hard.is_(hard))
    if categories is not None:
        q = q.where(e.category.in_(list(categories)))
    if receiving_domain is not None:
        q = q.where(e.receiving_domain == receiving_domain)
    q = q.order_by(e.received_at.desc(), e.id.desc()).limit(limit)
    return [
        FeedbackSample(
            received_at=row.received_at,
            kind=row.kind,
            category=row.category,
            sending_ip=row.sending_ip,
            receiving_domain=row.receiving_domain,
            recipient=row.recipient,
            status=row.status,
            diagnostic=row.diagnostic,
            feedback_type=row.feedback_type,
            blocklist=row.blocklist,
            trusted=bool(row.trusted_),
            sender="" if row.trusted_ else str(row.sender_),
        )
        for row in tx.execute(q)
    ]

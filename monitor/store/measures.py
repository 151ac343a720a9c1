"""What the rules count: sent volume, DMARC totals, feedback per IP, bursts, samples.

Every function reads inside the caller's transaction (the evaluation's, see
:func:`monitor.store.cases.evaluation`). Windows are half-open ``[start, end)`` on the hourly
``sent_volume`` buckets and on ``feedback_events.received_at``; DMARC records count when
their report period ``end`` falls inside ``[start, end]``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from monitor.store.db import Tx
from monitor.store.schema import dmarc_records, feedback_events, sent_volume


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
    """source IP -> DMARC-reported messages and those failing both DKIM and SPF."""
    failing = sa.case(
        (sa.and_(dmarc_records.c.dkim != "pass", dmarc_records.c.spf != "pass"), 1), else_=0
    )
    q = (
        sa.select(
            dmarc_records.c.source_ip,
            sa.func.sum(dmarc_records.c.count).label("total"),
            sa.func.sum(dmarc_records.c.count * failing).label("failing"),
            sa.func.max(dmarc_records.c.customer).label("customer"),
            sa.func.max(dmarc_records.c.pool).label("pool"),
        )
        .where(dmarc_records.c.end >= start, dmarc_records.c.end <= end)
        .group_by(dmarc_records.c.source_ip)
    )
    return {
        ip: DmarcTotals(int(total or 0), int(fail or 0), customer or "", pool or "")
        for ip, total, fail, customer, pool in tx.execute(q)
    }


@dataclass(frozen=True, slots=True)
class Tally:
    """Feedback events of one subject: how many, and the pool/customer they carried."""

    count: int
    pool: str
    customer: str


def feedback_by_ip(
    tx: Tx,
    start: dt.datetime,
    end: dt.datetime,
    kind: str,
    *,
    hard: bool | None = None,
    exclude_feedback_types: Iterable[str] = (),
) -> dict[str, Tally]:
    """sending IP -> events of ``kind`` received in the window (unattributed ones left out)."""
    e = feedback_events.c
    q = (
        sa.select(
            e.sending_ip,
            sa.func.count().label("n"),
            sa.func.max(e.pool).label("pool"),
            sa.func.max(e.customer).label("customer"),
        )
        .where(e.kind == kind, e.received_at >= start, e.received_at < end, e.sending_ip != "")
        .group_by(e.sending_ip)
    )
    if hard is not None:
        q = q.where(e.hard.is_(hard))
    excluded = list(exclude_feedback_types)
    if excluded:
        q = q.where(e.feedback_type.not_in(excluded))
    return {ip: Tally(int(n), pool or "", cust or "") for ip, n, pool, cust in tx.execute(q)}


def bursts(
    tx: Tx, start: dt.datetime, end: dt.datetime, categories: Iterable[str]
) -> dict[tuple[str, str], Tally]:
    """(sending IP, receiving domain) -> bounces in ``categories`` received in the window."""
    e = feedback_events.c
    q = (
        sa.select(
            e.sending_ip,
            e.receiving_domain,
            sa.func.count().label("n"),
            sa.func.max(e.pool),
            sa.func.max(e.customer),
        )
        .where(
            e.kind == "bounce",
            e.category.in_(list(categories)),
            e.received_at >= start,
            e.received_at < end,
            e.sending_ip != "",
            e.receiving_domain != "",
        )
        .group_by(e.sending_ip, e.receiving_domain)
    )
    return {(ip, dom): Tally(int(n), p or "", c or "") for ip, dom, n, p, c in tx.execute(q)}


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
    q = sa.select(feedback_events).where(
        e.kind == kind, e.received_at >= start, e.received_at < end
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
        )
        for row in tx.execute(q)
    ]

"""The numbers rate rules divide: sent volume, feedback counts, DMARC totals, samples.

Everything here reads the store inside the caller's transaction; nothing
performs DNS. Windows are half-open ``[start, end)`` on the hourly
``sent_volume`` buckets and on ``feedback_events.received_at``; DMARC records
count when their report period ``end`` falls inside ``[start, end]``.

Volume of an IP (the denominator) is the larger of two independent counts of
the same mail: what the receivers' DMARC aggregate reports say they got from
it, and what our MTAs reported sending (``sent_volume``). Each undercounts in
its own way (not every receiver sends DMARC reports; an MTA that does not
report is missing), so the larger is the better estimate; summing them would
count the same messages twice. When several sources report ``sent_volume``
for one IP (HTTP and the Postfix log reader, say) they describe the same
traffic, so the largest source counts, not their sum.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from monitor.store.feedback import dmarc_records, feedback_events, sent_volume


@dataclass(frozen=True, slots=True)
class Volume:
    """Messages from one IP in a window, and which source gave the number."""

    count: int
    basis: str  # "dmarc" or "sent:<source>"


def sent_by_ip(conn: sa.Connection, start: dt.datetime, end: dt.datetime) -> dict[str, Volume]:
    """IP -> the largest per-source ``sent_volume`` total in the window."""
    q = (
        sa.select(
            sent_volume.c.sending_ip,
            sent_volume.c.source,
            sa.func.sum(sent_volume.c.count).label("n"),
        )
        .where(sent_volume.c.bucket_start >= start, sent_volume.c.bucket_start < end)
        .group_by(sent_volume.c.sending_ip, sent_volume.c.source)
    )
    out: dict[str, Volume] = {}
    for ip, source, n in conn.execute(q):
        n = int(n or 0)
        if ip not in out or n > out[ip].count:
            out[ip] = Volume(n, f"sent:{source}")
    return out


@dataclass(frozen=True, slots=True)
class DmarcTotals:
    total: int
    failing: int  # neither DKIM nor SPF passed (policy_evaluated)
    customer: str
    pool: str


def dmarc_by_ip(
    conn: sa.Connection, start: dt.datetime, end: dt.datetime
) -> dict[str, DmarcTotals]:
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
        for ip, total, fail, customer, pool in conn.execute(q)
    }


def volume_by_ip(conn: sa.Connection, start: dt.datetime, end: dt.datetime) -> dict[str, Volume]:
    """IP -> the larger of the DMARC-reported and the MTA-reported volume (module docstring)."""
    out = sent_by_ip(conn, start, end)
    for ip, totals in dmarc_by_ip(conn, start, end).items():
        if ip not in out or totals.total > out[ip].count:
            out[ip] = Volume(totals.total, "dmarc")
    return out


@dataclass(frozen=True, slots=True)
class Tally:
    """Feedback events of one subject: how many, and the pool/customer they carried."""

    count: int
    pool: str
    customer: str


def feedback_by_ip(
    conn: sa.Connection,
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
    return {ip: Tally(int(n), pool or "", cust or "") for ip, n, pool, cust in conn.execute(q)}


def bursts(
    conn: sa.Connection, start: dt.datetime, end: dt.datetime, categories: Iterable[str]
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
    return {(ip, dom): Tally(int(n), p or "", c or "") for ip, dom, n, p, c in conn.execute(q)}


# an address, or one already hashed by the intake (``sha256:<token>@domain``), kept whole
_ADDRESS = re.compile(r"(?:sha256:)?[^\s<>\"'():;,\[\]]+@([A-Za-z0-9.-]+)")


def hash_address(text: str) -> str:
    """An address as a stable digest (the domain kept); other text unchanged."""
    if "@" not in text or text.startswith("sha256:"):
        return text
    domain = text.rpartition("@")[2]
    digest = hashlib.sha256(text.strip().lower().encode()).hexdigest()[:16]
    return f"sha256:{digest}@{domain}"


def redact(text: str) -> str:
    """Every e-mail address in free text replaced by its digest (diagnostics quote them)."""
    return _ADDRESS.sub(lambda m: hash_address(m.group(0)), text)


def samples(
    conn: sa.Connection,
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
) -> list[dict[str, Any]]:
    """The latest ``limit`` matching events, recipients and quoted addresses hashed."""
    if limit <= 0:
        return []
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
        {
            "received_at": row.received_at.isoformat(),
            "kind": row.kind,
            "category": row.category,
            "sending_ip": row.sending_ip,
            "receiving_domain": row.receiving_domain,
            "recipient": hash_address(row.recipient),
            "status": row.status,
            "diagnostic": redact(row.diagnostic)[:500],
            "feedback_type": row.feedback_type,
            "blocklist": row.blocklist,
        }
        for row in conn.execute(q)
    ]

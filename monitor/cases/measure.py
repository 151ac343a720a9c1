"""The numbers rate rules divide: sent volume, feedback counts, DMARC totals, samples.

Everything here reads the store (:mod:`monitor.store.measures`) inside the
caller's transaction; nothing performs DNS. Windows are half-open ``[start, end)`` on the hourly
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

from monitor.store import Tx
from monitor.store.measures import (
    DmarcTotals,
    Tally,
    bursts,
    dmarc_by_ip,
    feedback_by_ip,
    feedback_samples,
    sent_per_source,
)

__all__ = [
    "DmarcTotals",
    "Tally",
    "Volume",
    "bursts",
    "dmarc_by_ip",
    "feedback_by_ip",
    "hash_address",
    "redact",
    "samples",
    "sent_by_ip",
    "volume_by_ip",
]


@dataclass(frozen=True, slots=True)
class Volume:
    """Messages from one IP in a window, and which source gave the number."""

    count: int
    basis: str  # "dmarc" or "sent:<source>"


def sent_by_ip(conn: Tx, start: dt.datetime, end: dt.datetime) -> dict[str, Volume]:
    """IP -> the largest per-source ``sent_volume`` total in the window."""
    out: dict[str, Volume] = {}
    for ip, source, n in sent_per_source(conn, start, end):
        if ip not in out or n > out[ip].count:
            out[ip] = Volume(n, f"sent:{source}")
    return out


def volume_by_ip(conn: Tx, start: dt.datetime, end: dt.datetime) -> dict[str, Volume]:
    """IP -> the larger of the DMARC-reported and the MTA-reported volume (module docstring)."""
    out = sent_by_ip(conn, start, end)
    for ip, totals in dmarc_by_ip(conn, start, end).items():
        if ip not in out or totals.total > out[ip].count:
            out[ip] = Volume(totals.total, "dmarc")
    return out


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
    conn: Tx,
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
    rows = feedback_samples(
        conn,
        start,
        end,
        limit,
        kind=kind,
        sending_ips=sending_ips,
        customer=customer,
        hard=hard,
        categories=categories,
        receiving_domain=receiving_domain,
    )
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
        for row in rows
    ]

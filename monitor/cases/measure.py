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

Only **trusted** DMARC reports count (docs/feedback.md, "Trusted feedback"), and
not even those when they claim far more than the MTAs logged: a DMARC group
(one reporter's records for one IP and report period) claiming more than
:data:`ANOMALY_FACTOR` times what the MTAs reported for that IP over the same
hours, when they reported any, is an **anomaly**: left out of the volume and
named in the case's evidence (``volume_anomalies``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from monitor.store import BUCKET_SECONDS, Tx
from monitor.store.measures import (
    DmarcGroup,
    DmarcTotals,
    Tally,
    bursts,
    dmarc_groups,
    feedback_by_ip,
    feedback_samples,
    sent_hourly,
    sent_per_source,
)

__all__ = [
    "ANOMALY_FACTOR",
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


#: a trusted DMARC group claiming more than this many times the MTA-logged volume of the
#: same IP over the same hours is an anomaly, not a denominator
ANOMALY_FACTOR = 10
#: a report period without a begin is taken as the day before its end
_DEFAULT_PERIOD = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Volume:
    """Messages from one IP in a window, and which source gave the number.

    ``anomalies``: trusted DMARC groups left out for claiming far more than the MTAs
    logged; ``untrusted``: DMARC-reported messages of untrusted reports, left out."""

    count: int
    basis: str  # "dmarc" or "sent:<source>"
    anomalies: tuple[dict[str, Any], ...] = ()
    untrusted: int = 0

    def evidence(self) -> dict[str, Any]:
        """What a case says about its denominator beyond the basis (empty when nothing)."""
        out: dict[str, Any] = {}
        if self.anomalies:
            out["volume_anomalies"] = list(self.anomalies)
        if self.untrusted:
            out["dmarc_unauthenticated_messages"] = self.untrusted
        return out


def sent_by_ip(conn: Tx, start: dt.datetime, end: dt.datetime) -> dict[str, Volume]:
    """IP -> the largest per-source ``sent_volume`` total in the window."""
    out: dict[str, Volume] = {}
    for ip, source, n in sent_per_source(conn, start, end):
        if ip not in out or n > out[ip].count:
            out[ip] = Volume(n, f"sent:{source}")
    return out


def _bucket(t: dt.datetime) -> dt.datetime:
    epoch = int(t.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % BUCKET_SECONDS, dt.UTC)


def _mta_volume(
    hourly: dict[str, dict[dt.datetime, int]], begin: dt.datetime, end: dt.datetime
) -> int:
    """What the MTAs logged for one IP over the hours ``[begin, end]`` (largest source)."""
    first, last = _bucket(begin), end
    return max(
        (sum(n for b, n in buckets.items() if first <= b <= last) for buckets in hourly.values()),
        default=0,
    )


@dataclass
class _DmarcVolume:
    total: int = 0
    failing: int = 0
    customer: str = ""
    pool: str = ""
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    untrusted: int = 0


def dmarc_volumes(conn: Tx, start: dt.datetime, end: dt.datetime) -> dict[str, _DmarcVolume]:
    """IP -> DMARC-reported volume from trusted, non-anomalous reports (module docstring),
    with what was left out."""
    groups = dmarc_groups(conn, start, end)
    periods = [(g, g.begin or g.end - _DEFAULT_PERIOD) for g in groups if g.trusted]
    earliest = min((b for _, b in periods), default=start)
    hourly = sent_hourly(conn, {g.source_ip for g, _ in periods}, _bucket(earliest), end)
    out: dict[str, _DmarcVolume] = {}
    for g in groups:
        v = out.setdefault(g.source_ip, _DmarcVolume())
        if not g.trusted:
            v.untrusted += g.total
            continue
        begin = g.begin or g.end - _DEFAULT_PERIOD
        mta = _mta_volume(hourly.get(g.source_ip, {}), begin, g.end)
        if mta and g.total > ANOMALY_FACTOR * mta:
            v.anomalies.append(_anomaly(g, begin, mta))
            continue
        v.total += g.total
        v.failing += g.failing
        v.customer, v.pool = max(v.customer, g.customer), max(v.pool, g.pool)
    return out


def _anomaly(g: DmarcGroup, begin: dt.datetime, mta: int) -> dict[str, Any]:
    return {
        "reporter": g.org_name,
        "begin": begin.isoformat(),
        "end": g.end.isoformat(),
        "dmarc_reported": g.total,
        "mta_logged": mta,
        "factor": ANOMALY_FACTOR,
    }


def dmarc_by_ip(conn: Tx, start: dt.datetime, end: dt.datetime) -> dict[str, DmarcTotals]:
    """IP -> DMARC totals (all and failing) from trusted, non-anomalous reports."""
    return {
        ip: DmarcTotals(v.total, v.failing, v.customer, v.pool)
        for ip, v in dmarc_volumes(conn, start, end).items()
        if v.total
    }


def volume_by_ip(conn: Tx, start: dt.datetime, end: dt.datetime) -> dict[str, Volume]:
    """IP -> the larger of the DMARC-reported and the MTA-reported volume (module docstring)."""
    out = sent_by_ip(conn, start, end)
    for ip, d in dmarc_volumes(conn, start, end).items():
        sent = out.get(ip)
        if sent is None and not (d.total or d.anomalies or d.untrusted):
            continue
        if sent is not None and sent.count >= d.total:
            count, basis = sent.count, sent.basis
        else:
            count, basis = d.total, "dmarc" if d.total else "none"
        out[ip] = Volume(count, basis, tuple(d.anomalies), d.untrusted)
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
            # an untrusted report says so on the case (docs/feedback.md, "Trusted feedback")
            **({} if row.trusted else {"unauthenticated": True, "sender": row.sender}),
        }
        for row in rows
    ]

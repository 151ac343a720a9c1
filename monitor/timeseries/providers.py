"""Time-series points of the mailbox providers' own data: Microsoft SNDS, Google Postmaster Tools.

Measurements (docs/timeseries.md, "Mailbox providers"): ``snds`` per (sending IP, day),
``snds_blocked`` per read of the IP status export, ``postmaster`` per (domain, day),
``postmaster_compliance`` per domain and fetch. The rules of :mod:`monitor.timeseries.schema`
hold: tags are bounded identifiers (the IPs SNDS reports are the ones registered in the SNDS
account, the domains those registered in Postmaster Tools; sample IPs and free text never become
tags), an empty tag is ``none``, and a point's time is the day it is about (midnight UTC) or the
fetch, so a day fetched again overwrites its points. Ratios are written as ratios (0.0-1.0,
0.003 = 0.3 %); a metric the provider left out is left out, never written as 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from collectors.postmaster.model import DomainCompliance, DomainDay
from collectors.snds.model import BlockedRange, IpActivity
from monitor.timeseries.line import EMPTY, FieldValue, line

#: SNDS filter result -> ``filter_level`` (higher is worse: ``max()`` is the worst day)
FILTER_LEVELS: dict[str, int] = {"GREEN": 0, "YELLOW": 1, "RED": 2}
#: Gmail reputation -> ``reputation_level`` (higher is worse, like ``filter_level``)
REPUTATION_LEVELS: dict[str, int] = {"HIGH": 0, "MEDIUM": 1, "LOW": 2, "BAD": 3}


def day_start(day: dt.date) -> dt.datetime:
    """Midnight UTC of ``day``: the time of a provider's daily point."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _owner_tags(pool: str, customer: str) -> dict[str, str]:
    return {"pool": pool or EMPTY, "customer": customer or EMPTY}


def _sum(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def snds_points(rows: Iterable[IpActivity]) -> list[str]:
    """``snds`` points, one per (sending IP, day) of the data export.

    Fields: ``rcpt``, ``data``, ``recipients`` (RCPT and DATA commands, message recipients;
    left out when SNDS left the column empty), ``filter_level`` (0 GREEN, 1 YELLOW, 2 RED; left
    out without a filter result), ``complaint_rate`` (a ratio, only when SNDS published a
    value) or ``complaint_rate_under`` (the bound of a published ``< 0.1%``: the rate is below
    it, so it is not written as a rate), ``trap_hits``. The rare IP listed twice on a day
    makes one point: counts summed, the worst filter result, the highest rate.
    """
    groups: dict[tuple[dt.date, str], list[IpActivity]] = {}
    for r in rows:
        groups.setdefault((r.day, r.ip), []).append(r)
    out = []
    for (day, ip), group in groups.items():
        first = group[0]
        fields: dict[str, FieldValue] = {}
        for name, value in (
            ("rcpt", _sum(r.rcpt_commands for r in group)),
            ("data", _sum(r.data_commands for r in group)),
            ("recipients", _sum(r.message_recipients for r in group)),
        ):
            if value is not None:
                fields[name] = value
        levels = [FILTER_LEVELS[r.filter_result] for r in group if r.filter_result]
        if levels:
            fields["filter_level"] = max(levels)
        exact = [
            r.complaint_rate
            for r in group
            if r.complaint_rate is not None and not r.complaint_rate_below
        ]
        bounds = [
            r.complaint_rate
            for r in group
            if r.complaint_rate is not None and r.complaint_rate_below
        ]
        if exact:
            fields["complaint_rate"] = float(max(exact))
        elif bounds:
            fields["complaint_rate_under"] = float(max(bounds))
        fields["trap_hits"] = sum(r.trap_hits for r in group)
        tags = {"sending_ip": ip, **_owner_tags(first.pool, first.customer)}
        out.append(line("snds", tags, fields, day_start(day)))
    return out


def snds_blocked_points(ranges: Sequence[BlockedRange], at: dt.datetime) -> list[str]:
    """One ``snds_blocked`` point per read of the IP status export (no tags): ``ranges``
    blocked, the ``addresses`` in them (a float: an IPv6 range can hold more than 2^63),
    ``watched_ips`` (inventory IPs inside) and ``unwatched_ranges`` (blocked ranges holding
    none of ours: registered in SNDS, unknown to the inventory)."""
    blocked = [r for r in ranges if r.blocked]
    fields: dict[str, FieldValue] = {
        "ranges": len(blocked),
        "addresses": float(sum(r.size for r in blocked)),
        "watched_ips": sum(r.watched_ips for r in blocked),
        "unwatched_ranges": sum(1 for r in blocked if r.watched_ips == 0),
    }
    return [line("snds_blocked", {}, fields, at)]


def postmaster_points(days: Iterable[DomainDay]) -> list[str]:
    """``postmaster`` points, one per (domain, day) with statistics.

    Fields (ratios 0.0-1.0, each left out when Gmail left it out): ``spam_rate`` with
    ``spam_rate_lower`` / ``spam_rate_upper``, ``spf``, ``dkim``, ``dmarc`` (pass ratios),
    ``inbound_tls`` (our mail to Gmail over TLS), ``outbound_tls``; ``reputation_level``
    (0 HIGH, 1 MEDIUM, 2 LOW, 3 BAD); when Gmail gave IP reputations, ``ips_high``,
    ``ips_medium``, ``ips_low``, ``ips_bad`` (sending IPs per category, counted: the sample
    IPs are never tags); always ``delivery_errors`` with ``permanent_errors`` /
    ``temporary_errors`` (sums of the listed error ratios, 0 when none is listed) and
    ``spammy_feedback_ids`` (Feedback-ID values Gmail flagged).
    """
    out = []
    for d in days:
        fields: dict[str, FieldValue] = {}
        for name, value in (
            ("spam_rate", d.spam_ratio),
            ("spam_rate_lower", d.spam_ratio_lower),
            ("spam_rate_upper", d.spam_ratio_upper),
            ("spf", d.spf_ratio),
            ("dkim", d.dkim_ratio),
            ("dmarc", d.dmarc_ratio),
            ("inbound_tls", d.inbound_tls_ratio),
            ("outbound_tls", d.outbound_tls_ratio),
        ):
            if value is not None:
                fields[name] = float(value)
        if d.domain_reputation in REPUTATION_LEVELS:
            fields["reputation_level"] = REPUTATION_LEVELS[d.domain_reputation]
        if any(b.reputation in REPUTATION_LEVELS for b in d.ip_reputations):
            for category in REPUTATION_LEVELS:
                fields[f"ips_{category.lower()}"] = d.ips_in(category)[0]
        errors = {"PERMANENT_ERROR": 0.0, "TEMPORARY_ERROR": 0.0}
        for e in d.delivery_errors:
            errors[e.error_class] = errors.get(e.error_class, 0.0) + e.error_ratio
        fields["delivery_errors"] = float(sum(e.error_ratio for e in d.delivery_errors))
        fields["permanent_errors"] = errors["PERMANENT_ERROR"]
        fields["temporary_errors"] = errors["TEMPORARY_ERROR"]
        fields["spammy_feedback_ids"] = len(d.spammy_feedback_loops)
        tags = {"domain": d.domain, **_owner_tags(d.pool, d.customer)}
        out.append(line("postmaster", tags, fields, day_start(d.day)))
    return out


def compliance_points(statuses: Iterable[DomainCompliance], at: dt.datetime) -> list[str]:
    """``postmaster_compliance`` points, one per domain with a status: ``requirements``
    (rows Gmail gave), ``needs_work`` (those at NEEDS_WORK), ``compliant`` (1 when none is)."""
    out = []
    for s in statuses:
        if not s.requirements:
            continue
        work = len(s.needs_work)
        fields: dict[str, FieldValue] = {
            "requirements": len(s.requirements),
            "needs_work": work,
            "compliant": int(work == 0),
        }
        tags = {"domain": s.domain, **_owner_tags(s.pool, s.customer)}
        out.append(line("postmaster_compliance", tags, fields, at))
    return out

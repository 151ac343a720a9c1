"""The abuse rule: attributed abuse reports open one case per (customer, category).

A case ``abuse`` / ``<customer>`` / ``<category>`` holds while a report of that category about
the customer arrived within :data:`WINDOW_SECONDS`; each new report updates it (an ``updated``
event on the timeline) with its addresses, reporter, time and redacted excerpt. Reports that
wait in the review queue, muted reporters' reports and addresses that are not ours never
count. Its severity is the worst ``[abuse] severity`` of the reports in the window (stored
with each report when it arrived or was reclassified), one step higher when the window holds
:data:`ESCALATE_REPORTS` reports or :data:`ESCALATE_ADDRESSES` addresses (never up to
``critical`` by volume: only a category configured ``critical`` asks for enforcement). The
evidence shows, for the reported addresses, their current blocklistings and other check
problems and the feedback complaints they drew. Clear: no such report for the window; the
case then resolves after ``rules.hold_down`` like every case. See docs/cases.md, "Abuse".
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from checks.result import SEVERITIES
from monitor.cases.model import CaseKey, Clear, Finding, severity_rank
from monitor.store import Tx
from monitor.store.abuse import (
    WindowRow,
    complaints_by_ip,
    last_reports,
    problems_of_targets,
    window_rows,
)

__all__ = ["ESCALATE_ADDRESSES", "ESCALATE_REPORTS", "WINDOW_SECONDS", "AbuseRule"]

#: a case holds while a report arrived within this (7 days)
WINDOW_SECONDS = 7 * 86400
#: reports in the window that raise the case one severity step
ESCALATE_REPORTS = 10
#: addresses of the customer named in the window that raise it one step
ESCALATE_ADDRESSES = 100
#: what the evidence keeps: latest reports, addresses, URLs
SAMPLE_REPORTS = 10
SAMPLE_IPS = 50
SAMPLE_URLS = 20
EXCERPT_CHARS = 1500


class _Context(Protocol):
    """What the rule reads of an evaluation (``monitor.cases.rules.Context``)."""

    conn: Tx
    now: dt.datetime


@dataclass
class _Group:
    customer: str
    category: str
    rows: list[WindowRow] = field(default_factory=list)

    @property
    def reports(self) -> list[int]:
        return list(dict.fromkeys(r.report_id for r in self.rows))

    def sample(self, attr: str, limit: int) -> list[str]:
        out: dict[str, None] = {}
        for row in self.rows:
            for value in getattr(row, attr):
                if len(out) >= limit:
                    return list(out)
                out[value] = None
        return list(out)


class AbuseRule:
    """Abuse reports about one customer in one category, within the window."""

    name = "abuse"
    names: tuple[str, ...] = (name,)

    def __init__(
        self,
        window_seconds: int = WINDOW_SECONDS,
        escalate_reports: int = ESCALATE_REPORTS,
        escalate_addresses: int = ESCALATE_ADDRESSES,
    ) -> None:
        self.window = window_seconds
        self.escalate_reports = escalate_reports
        self.escalate_addresses = escalate_addresses

    def _span(self, ctx: _Context) -> tuple[dt.datetime, dt.datetime]:
        # the end is inclusive of a report stored in the same second as the evaluation
        return ctx.now - dt.timedelta(seconds=self.window), ctx.now + dt.timedelta(seconds=1)

    def findings(self, ctx: _Context) -> list[Finding]:
        start, end = self._span(ctx)
        groups: dict[tuple[str, str], _Group] = {}
        for row in window_rows(ctx.conn, start, end):
            key = (row.customer, row.category)
            groups.setdefault(key, _Group(*key)).rows.append(row)
        if not groups:
            return []
        ips = {ip for g in groups.values() for ip in g.sample("sample", SAMPLE_IPS)}
        listed = problems_of_targets(ctx.conn, ips)
        complaints = complaints_by_ip(ctx.conn, ips, start, end)
        return [self._finding(g, listed, complaints) for _, g in sorted(groups.items())]

    def _severity(self, g: _Group, addresses: int) -> tuple[str, bool]:
        worst = max((r.severity for r in g.rows), key=severity_rank)
        loud = len(g.reports) >= self.escalate_reports or addresses >= self.escalate_addresses
        if not loud or worst == "critical":
            return worst, False
        rank = min(severity_rank(worst) + 1, severity_rank("high"))
        raised = next(s for s in SEVERITIES if severity_rank(s) == rank)
        return raised, raised != worst

    def _finding(
        self,
        g: _Group,
        listed: dict[str, list[dict[str, Any]]],
        complaints: dict[str, int],
    ) -> Finding:
        reports = g.reports
        per_report: dict[int, WindowRow] = {}
        for row in g.rows:
            per_report.setdefault(row.report_id, row)
        addresses = sum(r.addresses for r in per_report.values())
        urls = sum(r.urls for r in per_report.values())
        incidents = sum(r.count for r in per_report.values())
        severity, escalated = self._severity(g, addresses)
        reporters = Counter(r.reporter or "unknown" for r in per_report.values())
        latest = g.rows[0]
        ips = g.sample("sample", SAMPLE_IPS)
        pools = g.sample("pools", 20)
        days = self.window / 86400
        named = f"{addresses} address{'es' if addresses != 1 else ''}" + (
            f", {urls} URL{'s' if urls != 1 else ''}" if urls else ""
        )
        summary = (
            f"{len(reports)} {g.category} report{'s' if len(reports) != 1 else ''} about "
            f"customer {g.customer} in {days:g}d ({named}; "
            f"{', '.join(name for name, _ in reporters.most_common(3))}); "
            f"latest {latest.received_at:%Y-%m-%d %H:%M} from {latest.reporter or 'unknown'}"
        )
        evidence: dict[str, Any] = {
            "category": g.category,
            "reports": len(reports),
            "incidents": incidents,
            "addresses": addresses,
            "urls": urls,
            "reporters": dict(reporters.most_common(10)),
            "ips": ips,
            "sample_urls": g.sample("sample_urls", SAMPLE_URLS),
            "pools": pools,
            "report_ids": reports[:SAMPLE_REPORTS],
            "latest": {
                "report": latest.report_id,
                "reporter": latest.reporter,
                "received_at": latest.received_at.isoformat(),
                "reported_at": latest.reported_at.isoformat() if latest.reported_at else None,
                "subject": latest.subject[:300],
                "excerpt": latest.excerpt[:EXCERPT_CHARS],
            },
            "escalated_by_volume": escalated,
            "volume_thresholds": {
                "reports": self.escalate_reports,
                "addresses": self.escalate_addresses,
            },
        }
        on_lists = {ip: listed[ip] for ip in ips if ip in listed}
        if on_lists:
            evidence["listed"] = on_lists
        drew = {ip: complaints[ip] for ip in ips if complaints.get(ip)}
        if drew:
            evidence["complaints"] = drew
        facts = []
        if on_lists:
            facts.append(f"{len(on_lists)} of its addresses listed or failing checks")
        if drew:
            facts.append(f"{len(drew)} drew feedback complaints")
        if facts:
            summary += "; " + ", ".join(facts)
        return Finding(
            rule=self.name,
            type="abuse",
            subject_kind="customer",
            subject=g.customer,
            source=g.category,
            severity=severity,
            summary=summary,
            pool=",".join(pools)[:128],
            customer=g.customer,
            numerator=len(reports),
            window_seconds=int(self.window),
            evidence=evidence,
            digest=f"{severity}|{len(reports)}|{latest.report_id}|{len(on_lists)}|{len(drew)}",
        )

    def clear(self, ctx: _Context, keys: Iterable[CaseKey]) -> dict[CaseKey, Clear]:
        """Clear since the last report plus the window (the condition ended then); a case
        whose reports all went away (reclassified, muted) is clear now."""
        wanted = {(key[1], key[2]): key for key in keys}
        last = last_reports(ctx.conn, wanted)
        window = dt.timedelta(seconds=self.window)
        out: dict[CaseKey, Clear] = {}
        for pair, key in wanted.items():
            at = last.get(pair)
            since = min(at + window, ctx.now) if at is not None else None
            out[key] = Clear(verified_at=ctx.now, since=since)
        return out

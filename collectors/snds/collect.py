"""One SNDS run: ask for the last days and the blocked ranges, attribute, judge.

:func:`collect_snds` is what the scheduled job calls. It never raises for a failed lookup:
SNDS being down, a refused key or an unreadable file become ``unknown`` results carrying the
reason (and the run's ``errors``), never a clean ``ok``.

Which day is judged: SNDS publishes each day's file late, and lists only IPs that sent at
least 100 messages that day. So the ``snds`` results are about the newest day that has a file,
as long as it is at most ``max_lag_days`` old; days without a file are listed in
``missing_days`` (no rows are made up for them). An IP without a row on the judged day gets no
``snds`` result: SNDS said nothing about it, which is neither ok nor a problem.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import httpx

from checks.errors import ParseError
from checks.result import OK, PROBLEM, SEVERITIES, UNKNOWN, CheckResult
from collectors.snds.client import SndsClient, SndsError, SndsKeyRejected
from collectors.snds.config import SndsConfig
from collectors.snds.model import BlockedRange, IpActivity
from collectors.snds.parse import parse_activity, parse_ip_status
from collectors.targets import Owner, Targets

log = logging.getLogger(__name__)

CHECK = "snds"
CHECK_BLOCKED = "snds-blocked"

#: SNDS filter colours (share of mail the filter judged spam) and what each is worth
RED_SEVERITY = "high"  # more than 90 %: nearly everything lands in junk or is refused
TRAP_SEVERITY = "high"  # Microsoft: any trap hit calls for investigating the traffic at once
YELLOW_SEVERITY = "medium"  # 10-90 %: a real share is filtered already, and it trends to RED
BLOCKED_SEVERITY = "high"  # Outlook.com refuses the mail outright


@dataclass
class SndsReport:
    """What one run found; ``results`` go to the recorder, the rest to the store."""

    today: dt.date
    #: the day the ``snds`` results are about; None when no recent day had data
    day: dt.date | None = None
    #: every row of every day fetched, attributed
    activity: list[IpActivity] = field(default_factory=list)
    #: days asked whose file was not there (yet)
    missing_days: list[dt.date] = field(default_factory=list)
    #: the IP status export; None when it was not read
    blocked: list[BlockedRange] | None = None
    results: list[CheckResult] = field(default_factory=list)
    #: why something could not be read (the key is masked)
    errors: list[str] = field(default_factory=list)


def collect_snds(
    config: SndsConfig,
    targets: Targets,
    *,
    today: dt.date | None = None,
    transport: httpx.BaseTransport | None = None,
    backoff: float = 1.0,
) -> SndsReport:
    """Run once (blocking): fetch, parse, attribute and judge. See the module docstring."""
    today = today or dt.datetime.now(dt.UTC).date()
    report = SndsReport(today)
    inventory = list(dict.fromkeys(targets.ips()))
    owners = _Owners(targets)
    if not config.configured:
        reason = "[snds] key is not set"
        report.errors.append(reason)
        for check in (CHECK, CHECK_BLOCKED) if config.ip_status else (CHECK,):
            report.results += unknown_results(check, inventory, reason, owners)
        return report
    with SndsClient(config, transport=transport, backoff=backoff) as client:
        by_day, refused = _fetch_days(client, config, today, report)
        by_day = {day: [owners.attribute(r) for r in rows] for day, rows in by_day.items()}
        report.activity = [r for rows in by_day.values() for r in rows]
        report.results += _judge_days(config, today, by_day, report, inventory, owners)
        if config.ip_status:
            if refused:
                reason = report.errors[-1]
                report.results += unknown_results(CHECK_BLOCKED, inventory, reason, owners)
            else:
                report.results += _blocked(client, report, inventory, owners)
    return report


def _fetch_days(
    client: SndsClient, config: SndsConfig, today: dt.date, report: SndsReport
) -> tuple[dict[dt.date, list[IpActivity]], bool]:
    """Rows per day that had a file, newest first; True when the key was refused."""
    by_day: dict[dt.date, list[IpActivity]] = {}
    for back in range(1, config.days + 1):
        day = today - dt.timedelta(days=back)
        try:
            rows = parse_activity(client.activity(day), day)
        except SndsKeyRejected as exc:
            report.errors.append(str(exc))
            return by_day, True
        except SndsError as exc:
            # SNDS is down: the other days would fail the same way
            report.errors.append(str(exc))
            break
        except ParseError as exc:
            report.errors.append(f"SNDS data export for {day} cannot be read: {exc}")
            continue
        if rows:
            by_day[day] = rows
        else:
            report.missing_days.append(day)
    return by_day, False


def _judge_days(
    config: SndsConfig,
    today: dt.date,
    by_day: dict[dt.date, list[IpActivity]],
    report: SndsReport,
    inventory: Sequence[str],
    owners: _Owners,
) -> list[CheckResult]:
    newest = max(by_day, default=None)
    if newest is not None and (today - newest).days <= config.max_lag_days:
        report.day = newest
        return activity_results(by_day[newest])
    if report.errors:
        reason = report.errors[-1]
    else:
        since = f"the newest is {newest}" if newest else "none in the days asked"
        reason = (
            f"no SNDS data file for the last {config.max_lag_days} days ({since}); "
            "SNDS publishes late, or the IPs sent under 100 messages a day"
        )
    return unknown_results(CHECK, inventory, reason, owners)


def _blocked(
    client: SndsClient, report: SndsReport, inventory: Sequence[str], owners: _Owners
) -> list[CheckResult]:
    try:
        ranges = parse_ip_status(client.ip_status())
    except (SndsError, ParseError) as exc:
        reason = str(exc)
        report.errors.append(reason)
        return unknown_results(CHECK_BLOCKED, inventory, reason, owners)
    results, report.blocked = blocked_results(ranges, inventory, owners)
    return results


def activity_results(rows: Iterable[IpActivity]) -> list[CheckResult]:
    """``snds`` results for one day's rows (attributed), one per IP."""
    per_ip: dict[str, list[IpActivity]] = {}
    for row in rows:
        per_ip.setdefault(row.ip, []).append(row)
    return [_judge_ip(ip, group) for ip, group in per_ip.items()]


def _judge_ip(ip: str, rows: list[IpActivity]) -> CheckResult:
    first = rows[0]
    colours = {r.filter_result for r in rows}
    traps = sum(r.trap_hits for r in rows)
    problems: list[tuple[str, str]] = []
    if "RED" in colours:
        problems.append((RED_SEVERITY, "filter result RED (over 90% of its mail judged spam)"))
    if traps:
        period = _trap_period(rows)
        problems.append((TRAP_SEVERITY, f"{traps} spam-trap hit{'s' * (traps != 1)}{period}"))
    if "YELLOW" in colours:
        problems.append((YELLOW_SEVERITY, "filter result YELLOW (10-90% of its mail judged spam)"))
    worst = "RED" if "RED" in colours else "YELLOW" if "YELLOW" in colours else max(colours)
    rates = [r.complaint_rate for r in rows if r.complaint_rate is not None]
    fields = {
        "day": first.day.isoformat(),
        "filter_result": worst,
        "trap_hits": traps,
        "complaint_rate": max(rates) if rates else None,
        "complaint_rate_text": first.complaint_rate_text,
        "message_recipients": sum(r.message_recipients or 0 for r in rows),
        "pool": first.pool,
        "customer": first.customer,
        "watched": first.watched,
    }
    if problems:
        severity = min((s for s, _ in problems), key=SEVERITIES.index)
        detail = "; ".join(text for _, text in problems)
        return CheckResult(ip, CHECK, "", PROBLEM, detail, severity=severity, fields=fields)
    if colours == {"GREEN"}:
        return CheckResult(ip, CHECK, "", OK, "filter result GREEN, no trap hits", fields=fields)
    return CheckResult(
        ip, CHECK, "", UNKNOWN, error="the SNDS row has no filter result", fields=fields
    )


def _trap_period(rows: list[IpActivity]) -> str:
    starts = [r.trap_start for r in rows if r.trap_start]
    ends = [r.trap_end for r in rows if r.trap_end]
    if not starts or not ends:
        return ""
    return f" between {min(starts):%Y-%m-%d %H:%M} and {max(ends):%Y-%m-%d %H:%M}"


def blocked_results(
    ranges: Sequence[BlockedRange], inventory: Sequence[str], owners: _Owners | Targets
) -> tuple[list[CheckResult], list[BlockedRange]]:
    """``snds-blocked`` results and the ranges with their inventory count and owner.

    Each inventory IP is looked up among the blocked ranges (a binary search, so a blocked
    /8 costs no more than a /32); a blocked range holding no inventory IP is reported per
    CIDR block it is made of (a bounded number), with empty pool and customer.
    """
    owners = owners if isinstance(owners, _Owners) else _Owners(owners)
    index = _RangeIndex([r for r in ranges if r.blocked])
    counts = [0] * len(index.ranges)
    results = []
    for ip in inventory:
        hit = index.find(ip)
        owner = owners.of(ip)
        base = {"pool": owner.pool, "customer": owner.customer, "watched": True}
        if hit is None:
            results.append(
                CheckResult(ip, CHECK_BLOCKED, "", OK, "not in a blocked range", fields=base)
            )
            continue
        counts[hit] += 1
        r = index.ranges[hit]
        results.append(
            CheckResult(
                ip,
                CHECK_BLOCKED,
                "",
                PROBLEM,
                f"blocked by Outlook.com: {r.reason or 'no reason given'}",
                severity=BLOCKED_SEVERITY,
                fields={**base, "range": f"{r.first}-{r.last}", "reason": r.reason},
            )
        )
    out_ranges = []
    for r in ranges:
        if r.blocked:
            i = index.position[id(r)]
            first_owner = owners.of(r.first)
            r = dataclasses.replace(
                r, watched_ips=counts[i], pool=first_owner.pool, customer=first_owner.customer
            )
            if counts[i] == 0:
                results += _unwatched_range(r)
        out_ranges.append(r)
    return results, out_ranges


def _unwatched_range(r: BlockedRange) -> list[CheckResult]:
    fields = {
        "range": f"{r.first}-{r.last}",
        "reason": r.reason,
        "pool": "",
        "customer": "",
        "watched": False,
        "addresses": r.size,
    }
    out = []
    for net in r.networks():
        target = str(net.network_address) if net.num_addresses == 1 else str(net)
        out.append(
            CheckResult(
                target,
                CHECK_BLOCKED,
                "",
                PROBLEM,
                f"blocked by Outlook.com (not in the inventory): {r.reason or 'no reason given'}",
                severity=BLOCKED_SEVERITY,
                fields=fields,
            )
        )
    return out


def unknown_results(
    check: str, inventory: Iterable[str], reason: str, owners: _Owners | Targets
) -> list[CheckResult]:
    """One ``unknown`` per inventory IP, all with the same reason."""
    owners = owners if isinstance(owners, _Owners) else _Owners(owners)
    out = []
    for ip in inventory:
        owner = owners.of(ip)
        fields = {"pool": owner.pool, "customer": owner.customer, "watched": True}
        out.append(CheckResult(ip, check, "", UNKNOWN, error=reason, fields=fields))
    return out


class _Owners:
    """``Targets.owner_of_ip`` with a memo (the same IP comes up once per day and check)."""

    def __init__(self, targets: Targets) -> None:
        self._targets = targets
        self._memo: dict[str, Owner | None] = {}

    def lookup(self, ip: str) -> Owner | None:
        if ip not in self._memo:
            self._memo[ip] = self._targets.owner_of_ip(ip)
        return self._memo[ip]

    def of(self, ip: str) -> Owner:
        return self.lookup(ip) or Owner()

    def attribute(self, row: IpActivity) -> IpActivity:
        owner = self.lookup(row.ip)
        if owner is None:
            return row
        return dataclasses.replace(row, pool=owner.pool, customer=owner.customer, watched=True)


class _RangeIndex:
    """Blocked ranges sorted by start, with the running maximum of their ends, per IP version."""

    def __init__(self, ranges: list[BlockedRange]) -> None:
        self.ranges = ranges
        self.position = {id(r): i for i, r in enumerate(ranges)}
        self._by_version: dict[int, tuple[list[int], list[int], list[int], list[int]]] = {}
        for version in (4, 6):
            items = sorted(
                (int(lo), int(hi), i)
                for i, r in enumerate(ranges)
                for lo, hi in [r.bounds]
                if lo.version == version
            )
            running, top = [], -1
            for _, hi, _ in items:
                top = max(top, hi)
                running.append(top)
            self._by_version[version] = (
                [lo for lo, _, _ in items],
                [hi for _, hi, _ in items],
                [i for _, _, i in items],
                running,
            )

    def find(self, ip: str) -> int | None:
        """The index of a blocked range holding ``ip``, or None."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        los, his, idx, running = self._by_version[addr.version]
        x = int(addr)
        j = bisect.bisect_right(los, x) - 1
        while j >= 0 and running[j] >= x:
            if his[j] >= x:
                return idx[j]
            j -= 1
        return None

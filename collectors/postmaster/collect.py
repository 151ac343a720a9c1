"""One Postmaster Tools run: list the domains, read their days, attribute, judge.

:func:`collect_postmaster` is what the scheduled job calls. It never raises for a failed
lookup: a refused key, a domain without access, an outage or an unreadable answer become
``unknown`` results with the reason (and the run's ``errors``), never a clean ``ok``.

Which day is judged: Gmail publishes a day's statistics a day or two late, and only for
domains with enough traffic that day. Each domain's results are about its newest day with
statistics, as long as it is at most ``max_lag_days`` old; days without statistics are listed
in ``missing`` (nothing is made up for them), and a metric Gmail left out is ``unknown``.

Checks (target = the domain):

* ``gmail-spam-rate``: user-reported spam rate; problem ``medium`` from ``spam_rate_medium``
  (0.10 %), ``high`` from ``spam_rate_high`` (0.30 %): Gmail's bulk-sender thresholds.
* ``gmail-reputation``, source ``domain``: domain reputation LOW (``medium``) or BAD
  (``high``); source ``ip``: any sending IP in LOW or BAD, same severities.
* ``gmail-auth``: SPF, DKIM or DMARC pass ratio under ``auth_min_ratio``, ``medium``.
* ``gmail-compliance`` (``compliance = true``): a bulk-sender requirement at NEEDS_WORK,
  ``medium``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from checks.errors import ParseError
from checks.result import OK, PROBLEM, UNKNOWN, CheckResult
from collectors.postmaster.auth import CredentialsError
from collectors.postmaster.client import (
    GRANT,
    AuthRejected,
    PostmasterClient,
    PostmasterError,
    Unavailable,
)
from collectors.postmaster.config import PostmasterConfig
from collectors.postmaster.model import DomainCompliance, DomainDay, RegisteredDomain
from collectors.targets import Owner, Targets

CHECK_SPAM = "gmail-spam-rate"
CHECK_REPUTATION = "gmail-reputation"
CHECK_AUTH = "gmail-auth"
CHECK_COMPLIANCE = "gmail-compliance"

#: severity of a reputation category: LOW means mail often goes to spam, BAD that it is
#: almost always refused or filtered
REPUTATION_SEVERITY = {"LOW": "medium", "BAD": "high"}
AUTH_SEVERITY = "medium"
COMPLIANCE_SEVERITY = "medium"

#: (check, source) of every result a domain gets from its traffic statistics
DAY_CHECKS = (
    (CHECK_SPAM, ""),
    (CHECK_REPUTATION, "domain"),
    (CHECK_REPUTATION, "ip"),
    (CHECK_AUTH, ""),
)


@dataclass
class PostmasterReport:
    """What one run found; ``results`` go to the recorder, the rest to the store."""

    today: dt.date
    #: what ``domains.list`` returned for the service account
    registered: list[RegisteredDomain] = field(default_factory=list)
    #: every (domain, day) read, attributed
    days: list[DomainDay] = field(default_factory=list)
    #: domain -> the day its results are about
    judged: dict[str, dt.date] = field(default_factory=dict)
    #: domain -> days of the window without statistics
    missing: dict[str, list[dt.date]] = field(default_factory=dict)
    compliance: list[DomainCompliance] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def collect_postmaster(
    config: PostmasterConfig,
    targets: Targets,
    *,
    today: dt.date | None = None,
    transport: httpx.BaseTransport | None = None,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> PostmasterReport:
    """Run once (blocking): fetch, parse, attribute and judge. See the module docstring."""
    today = today or dt.datetime.now(dt.UTC).date()
    report = PostmasterReport(today)
    checks = _checks(config)
    expected = config.domains or sorted({d.lower() for d in targets.domains()})
    if not config.configured:
        _fail(report, expected, checks, targets, "[postmaster] credentials_file is not set")
        return report
    try:
        client = PostmasterClient(config, transport=transport, backoff=backoff, sleep=sleep)
    except CredentialsError as exc:
        _fail(report, expected, checks, targets, str(exc))
        return report
    with client:
        try:
            report.registered = client.domains()
        except (PostmasterError, ParseError) as exc:
            _fail(report, expected, checks, targets, str(exc))
            return report
        _each_domain(client, config, targets, report, checks)
    return report


def _checks(config: PostmasterConfig) -> list[tuple[str, str]]:
    return [*DAY_CHECKS, *([(CHECK_COMPLIANCE, "")] if config.compliance else [])]


def _each_domain(
    client: PostmasterClient,
    config: PostmasterConfig,
    targets: Targets,
    report: PostmasterReport,
    checks: list[tuple[str, str]],
) -> None:
    listed = {d.domain: d for d in report.registered}
    wanted = config.domains or sorted(listed)
    start = report.today - dt.timedelta(days=config.days)
    for i, domain in enumerate(wanted):
        registered = listed.get(domain)
        if registered is None:
            reason = (
                f"{domain} is not registered in Postmaster Tools for {client.account}: "
                "add and verify it there"
            )
            report.results += unknown_results(domain, checks, reason, targets)
            continue
        if registered.permission not in ("OWNER", "READER"):
            reason = f"{client.account} has no access to {domain}: {GRANT}"
            report.results += unknown_results(domain, checks, reason, targets)
            continue
        try:
            days = client.traffic_stats(domain, start, report.today)
        except (AuthRejected, Unavailable) as exc:
            # the key or the service is gone: the other domains would fail the same way
            _fail(report, wanted[i:], checks, targets, str(exc))
            return
        except (PostmasterError, ParseError) as exc:
            report.errors.append(str(exc))
            report.results += unknown_results(domain, checks, str(exc), targets)
            continue
        _judge_domain(config, targets, report, domain, days, start)
        if config.compliance:
            _compliance(client, targets, report, domain)


def _judge_domain(
    config: PostmasterConfig,
    targets: Targets,
    report: PostmasterReport,
    domain: str,
    days: Sequence[DomainDay],
    start: dt.date,
) -> None:
    owner = targets.owner_of_domain(domain)
    # one row a day, even if pages overlapped
    by_day = {d.day: _attribute(d, owner) for d in days if d.domain == domain}
    rows = [by_day[day] for day in sorted(by_day)]
    report.days += rows
    present = {d.day for d in rows}
    window = [start + dt.timedelta(days=n) for n in range((report.today - start).days)]
    missing = [day for day in window if day not in present]
    if missing:
        report.missing[domain] = missing
    newest = rows[-1] if rows else None
    if newest is not None and (report.today - newest.day).days <= config.max_lag_days:
        report.judged[domain] = newest.day
        report.results += day_results(newest, config, targets)
        return
    since = f"the newest is {newest.day}" if newest else "none in the days asked"
    reason = (
        f"no Postmaster Tools statistics for {domain} in the last {config.max_lag_days} days "
        f"({since}); Gmail publishes late, and only for days with enough traffic"
    )
    report.results += unknown_results(domain, DAY_CHECKS, reason, targets)


def _compliance(
    client: PostmasterClient, targets: Targets, report: PostmasterReport, domain: str
) -> None:
    try:
        status = client.compliance(domain)
    except (PostmasterError, ParseError) as exc:
        report.errors.append(str(exc))
        report.results += unknown_results(domain, [(CHECK_COMPLIANCE, "")], str(exc), targets)
        return
    owner = targets.owner_of_domain(domain)
    if owner is not None:
        status = dataclasses.replace(status, pool=owner.pool, customer=owner.customer, watched=True)
    report.compliance.append(status)
    report.results.append(compliance_result(status))


def _attribute(day: DomainDay, owner: Owner | None) -> DomainDay:
    if owner is None:
        return day
    return dataclasses.replace(day, pool=owner.pool, customer=owner.customer, watched=True)


def _fail(
    report: PostmasterReport,
    domains: Iterable[str],
    checks: Sequence[tuple[str, str]],
    targets: Targets,
    reason: str,
) -> None:
    report.errors.append(reason)
    for domain in domains:
        report.results += unknown_results(domain, checks, reason, targets)


def unknown_results(
    domain: str, checks: Iterable[tuple[str, str]], reason: str, targets: Targets
) -> list[CheckResult]:
    """One ``unknown`` per (check, source) for ``domain``, all with the same reason."""
    owner = targets.owner_of_domain(domain)
    fields = _owner_fields(owner)
    return [CheckResult(domain, c, s, UNKNOWN, error=reason, fields=fields) for c, s in checks]


def _owner_fields(owner: Owner | None) -> dict[str, Any]:
    known = owner or Owner()
    return {"pool": known.pool, "customer": known.customer, "watched": owner is not None}


def day_results(day: DomainDay, config: PostmasterConfig, targets: Targets) -> list[CheckResult]:
    """The four results of one domain's day (``DAY_CHECKS``)."""
    base = {
        "day": day.day.isoformat(),
        "pool": day.pool,
        "customer": day.customer,
        "watched": day.watched,
    }
    return [
        _spam_rate(day, config, base),
        _domain_reputation(day, base),
        _ip_reputation(day, base, targets),
        _authentication(day, config, base),
    ]


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.2f}%"


def _spam_rate(day: DomainDay, config: PostmasterConfig, base: dict[str, Any]) -> CheckResult:
    rate = day.spam_ratio
    fields = {
        **base,
        "spam_rate": rate,
        "spam_rate_lower": day.spam_ratio_lower,
        "spam_rate_upper": day.spam_ratio_upper,
    }
    if rate is None:
        return CheckResult(
            day.domain,
            CHECK_SPAM,
            "",
            UNKNOWN,
            error=f"Gmail gave no spam rate for {day.day} (too little DKIM-signed mail)",
            fields=fields,
        )
    bounds = ""
    if day.spam_ratio_lower is not None and day.spam_ratio_upper is not None:
        bounds = f" ({_pct(day.spam_ratio_lower)}-{_pct(day.spam_ratio_upper)})"
    text = f"user-reported spam rate {_pct(rate)}{bounds} on {day.day}"
    if rate >= config.spam_rate_high:
        severity = "high"
        text += f", at or over Gmail's {_pct(config.spam_rate_high)} limit"
    elif rate >= config.spam_rate_medium:
        severity = "medium"
        text += f", at or over Gmail's {_pct(config.spam_rate_medium)} guidance"
    else:
        return CheckResult(day.domain, CHECK_SPAM, "", OK, text, fields=fields)
    return CheckResult(day.domain, CHECK_SPAM, "", PROBLEM, text, severity=severity, fields=fields)


def _domain_reputation(day: DomainDay, base: dict[str, Any]) -> CheckResult:
    reputation = day.domain_reputation
    fields = {**base, "reputation": reputation or None}
    if not reputation:
        return CheckResult(
            day.domain,
            CHECK_REPUTATION,
            "domain",
            UNKNOWN,
            error=f"Gmail gave no domain reputation for {day.day}",
            fields=fields,
        )
    text = f"domain reputation {reputation} on {day.day}"
    severity = REPUTATION_SEVERITY.get(reputation)
    if severity is None:
        return CheckResult(day.domain, CHECK_REPUTATION, "domain", OK, text, fields=fields)
    return CheckResult(
        day.domain, CHECK_REPUTATION, "domain", PROBLEM, text, severity=severity, fields=fields
    )


def _ip_reputation(day: DomainDay, base: dict[str, Any], targets: Targets) -> CheckResult:
    counts = {b.reputation: b.ip_count for b in day.ip_reputations}
    low, low_ips = day.ips_in("LOW")
    bad, bad_ips = day.ips_in("BAD")
    samples = []
    for ip in (*bad_ips, *low_ips):
        owner = targets.owner_of_ip(ip) or Owner()
        samples.append({"ip": ip, "pool": owner.pool, "customer": owner.customer})
    fields = {**base, "ip_counts": counts, "sample_ips": samples}
    if not any(counts.values()):
        return CheckResult(
            day.domain,
            CHECK_REPUTATION,
            "ip",
            UNKNOWN,
            error=f"Gmail gave no IP reputation for {day.day}",
            fields=fields,
        )
    if not (low or bad):
        text = "no sending IP with LOW or BAD reputation on " + str(day.day)
        return CheckResult(day.domain, CHECK_REPUTATION, "ip", OK, text, fields=fields)
    parts = [f"{n} IP{'s' * (n != 1)} {cat}" for cat, n in (("BAD", bad), ("LOW", low)) if n]
    examples = ", ".join(s["ip"] for s in samples[:5])
    text = f"{' and '.join(parts)} on {day.day}" + (f" (e.g. {examples})" if examples else "")
    severity = REPUTATION_SEVERITY["BAD" if bad else "LOW"]
    return CheckResult(
        day.domain, CHECK_REPUTATION, "ip", PROBLEM, text, severity=severity, fields=fields
    )


def _authentication(day: DomainDay, config: PostmasterConfig, base: dict[str, Any]) -> CheckResult:
    ratios = {"SPF": day.spf_ratio, "DKIM": day.dkim_ratio, "DMARC": day.dmarc_ratio}
    fields = {**base, **{f"{k.lower()}_ratio": v for k, v in ratios.items()}}
    known = {k: v for k, v in ratios.items() if v is not None}
    if not known:
        return CheckResult(
            day.domain,
            CHECK_AUTH,
            "",
            UNKNOWN,
            error=f"Gmail gave no SPF, DKIM or DMARC pass ratio for {day.day}",
            fields=fields,
        )
    low = {k: v for k, v in known.items() if v < config.auth_min_ratio}
    shown = ", ".join(f"{k} {_pct(v)}" for k, v in known.items())
    if not low:
        return CheckResult(day.domain, CHECK_AUTH, "", OK, f"{shown} on {day.day}", fields=fields)
    text = (
        f"{', '.join(f'{k} {_pct(v)}' for k, v in low.items())} pass on {day.day}, under "
        f"{_pct(config.auth_min_ratio)}"
    )
    return CheckResult(
        day.domain, CHECK_AUTH, "", PROBLEM, text, severity=AUTH_SEVERITY, fields=fields
    )


def compliance_result(status: DomainCompliance) -> CheckResult:
    """``gmail-compliance`` of one domain."""
    rows = [
        {"requirement": r.requirement, "status": r.status, "reason": r.reason}
        for r in status.requirements
    ]
    fields = {
        "requirements": rows,
        "pool": status.pool,
        "customer": status.customer,
        "watched": status.watched,
    }
    if not status.requirements:
        return CheckResult(
            status.domain,
            CHECK_COMPLIANCE,
            "",
            UNKNOWN,
            error="Gmail gave no compliance status",
            fields=fields,
        )
    work = status.needs_work
    if not work:
        return CheckResult(
            status.domain, CHECK_COMPLIANCE, "", OK, "every requirement COMPLIANT", fields=fields
        )
    text = "needs work: " + ", ".join(
        r.requirement + (f" ({r.reason})" if r.reason else "") for r in work
    )
    return CheckResult(
        status.domain,
        CHECK_COMPLIANCE,
        "",
        PROBLEM,
        text,
        severity=COMPLIANCE_SEVERITY,
        fields=fields,
    )

"""A synthetic two-day run of repmon, as line protocol from the real point builders.

Used by the dashboard tests and by ``render.py``: three pools, eleven sending
IPs, three sending domains, four blocklist zones with listings that appear and
clear, hygiene states that break, hourly feedback counts with one customer's
complaint rate climbing past 0.3 %, daily DMARC reports, sweeps and cases; and
two weeks of what the mailbox providers say (SNDS per IP and day: one IP going
YELLOW then RED with trap hits, one blocked; Postmaster Tools per domain and day:
that customer's Gmail spam rate climbing past 0.3 % and its reputation sliding
to LOW, another domain's DKIM dipping), fetched every 6 hours, one SNDS fetch
refused. The run ends at ``end`` (default: now), because the dashboards' "right
now" panels look back from now(). Deterministic for a given ``end`` and ``seed``.

Also here: :func:`expand`, the substitution Grafana does on a panel's query.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import re
from collections.abc import Mapping
from typing import Any

from checks.result import CheckResult
from collectors.postmaster.model import (
    DeliveryError,
    DomainCompliance,
    DomainDay,
    FeedbackLoop,
    IpReputation,
    Requirement,
)
from collectors.snds.model import BlockedRange, IpActivity
from monitor.timeseries.providers import (
    compliance_points,
    postmaster_points,
    snds_blocked_points,
    snds_points,
)
from monitor.timeseries.schema import (
    case_points,
    check_points,
    dmarc_points,
    feedback_points,
    sent_points,
    sweep_points,
)

HOURS = 48

POOLS = {
    "bulk-a": ("acme", ["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13"], "acme.example"),
    "bulk-b": (
        "globex",
        ["198.51.100.20", "198.51.100.21", "198.51.100.22", "198.51.100.23"],
        "globex.example",
    ),
    "transactional": ("initech", ["203.0.113.5", "203.0.113.6", "2001:db8::25"], "initech.example"),
}
IP_ZONES = ["zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net"]
DOMAIN_ZONES = ["dbl.spamhaus.org"]
PROVIDERS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "gmx.de", "web.de"]
BOUNCE_CATEGORIES = ["bad-mailbox", "bad-domain", "quota", "blocklisted", "reputation", "other"]

#: (target, zone) -> (first hour listed, first hour clear again or None), hours from the start
LISTINGS = {
    ("192.0.2.11", "bl.spamcop.net"): (10, 30),
    ("198.51.100.21", "b.barracudacentral.org"): (20, None),
    ("198.51.100.22", "zen.spamhaus.org"): (40, None),
    ("globex.example", "dbl.spamhaus.org"): (44, None),
}
SEVERITY = {
    "zen.spamhaus.org": "critical",
    "b.barracudacentral.org": "high",
    "bl.spamcop.net": "medium",
    "dbl.spamhaus.org": "high",
}


def owners() -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for pool, (customer, ips, domain) in POOLS.items():
        for ip in ips:
            out[ip] = (pool, customer)
        out[domain] = (pool, customer)
    return out


def _dnsbl(hour: int, rnd: random.Random) -> list[CheckResult]:
    out = []
    targets = [(ip, IP_ZONES) for _, ips, _ in POOLS.values() for ip in ips]
    targets += [(domain, DOMAIN_ZONES) for _, _, domain in POOLS.values()]
    for target, zones in targets:
        for zone in zones:
            start, stop = LISTINGS.get((target, zone), (None, None))
            if zone == "bl.spamcop.net" and 5 <= hour < 8 or rnd.random() < 0.02:
                out.append(CheckResult(target, "dnsbl", zone, "unknown", error="timeout"))
            elif start is not None and hour >= start and (stop is None or hour < stop):
                out.append(CheckResult(target, "dnsbl", zone, "problem", severity=SEVERITY[zone]))
            else:
                out.append(CheckResult(target, "dnsbl", zone, "ok"))
    return out


def _hygiene(hour: int, rnd: random.Random) -> list[CheckResult]:
    out = []
    for _, (_, ips, domain) in POOLS.items():
        for check in ("spf", "dmarc", "dkim", "mx", "mta-sts", "tls-rpt", "dnssec"):
            status = "ok"
            if domain == "globex.example" and check == "dmarc" and hour >= 24:
                status = "problem"
            if domain == "initech.example" and check == "dkim" and rnd.random() < 0.3:
                status = "unknown"
            if domain == "acme.example" and check == "mta-sts" and 12 <= hour < 36:
                status = "problem"
            out.append(_result(domain, check, status))
        for ip in ips:
            status = "problem" if ip == "203.0.113.6" else "ok"
            out.append(_result(ip, "ptr", status))
            out.append(
                _result(
                    ip, "spf-authorizes", "ok" if hour < 30 or ip != "192.0.2.13" else "problem"
                )
            )
    return out


def _result(target: str, check: str, status: str) -> CheckResult:
    if status == "unknown":
        return CheckResult(target, check, "", "unknown", error="SERVFAIL")
    return CheckResult(target, check, "", status, severity="high" if status == "problem" else None)  # type: ignore[arg-type]


def _feedback(at: dt.datetime, hour: int, rnd: random.Random) -> tuple[list[dict], list[dict]]:
    counts: list[dict] = []
    sent: list[dict] = []
    for pool, (customer, ips, _) in POOLS.items():
        for ip in ips:
            volume = rnd.randint(3000, 6000)
            sent.append({"bucket_start": at, "sending_ip": ip, "source": "http", "count": volume})
            complaint_rate = 0.0005 + (0.00008 * hour if customer == "globex" else 0.0)
            bounce_rate = 0.02 + (0.8 if ip == "192.0.2.11" and 10 <= hour < 30 else 0.0)
            for domain in [*PROVIDERS, "example.net", "example.org"]:
                share = volume / (len(PROVIDERS) + 2)
                n = int(share * complaint_rate * rnd.uniform(0.5, 1.5) + rnd.random())
                if n:
                    kind = "fraud" if rnd.random() < 0.1 else "abuse"
                    counts.append(_row(at, ip, pool, customer, "complaint", kind, domain, n))
                for category in BOUNCE_CATEGORIES:
                    n = int(share * bounce_rate / len(BOUNCE_CATEGORIES) * rnd.uniform(0.5, 1.5))
                    if n:
                        counts.append(_row(at, ip, pool, customer, "bounce", category, domain, n))
                if rnd.random() < 0.2:
                    counts.append(_row(at, ip, pool, customer, "delay", "", domain, 3))
    counts.append(_row(at, "", "", "", "bounce", "other", "example.com", 2))
    return counts, sent


def _row(
    at: dt.datetime,
    ip: str,
    pool: str,
    customer: str,
    kind: str,
    category: str,
    domain: str,
    n: int,
) -> dict[str, Any]:
    return {
        "bucket_start": at,
        "sending_ip": ip,
        "pool": pool,
        "customer": customer,
        "kind": kind,
        "category": category,
        "receiving_domain": domain,
        "count": n,
    }


def _dmarc(end: dt.datetime, rnd: random.Random) -> list[dict]:
    rows = []
    for reporter in ("google.com", "Yahoo", "Outlook.com"):
        for pool, (customer, ips, domain) in POOLS.items():
            for ip in ips:
                fail = domain == "globex.example" and rnd.random() < 0.5
                rows.append(
                    {
                        "end": end,
                        "org_name": reporter,
                        "source_ip": ip,
                        "pool": pool,
                        "customer": customer,
                        "count": rnd.randint(2000, 20000),
                        "disposition": "none",
                        "dkim": "fail" if fail else "pass",
                        "spf": "fail" if fail else "pass",
                        "header_from": domain,
                    }
                )
        rows.append(
            {
                "end": end,
                "org_name": reporter,
                "source_ip": "198.18.0.66",
                "pool": "",
                "customer": "",
                "count": rnd.randint(10, 300),
                "disposition": "quarantine",
                "dkim": "fail",
                "spf": "fail",
                "header_from": "acme.example",
            }
        )
    return rows


#: days of provider data (SNDS, Postmaster Tools), the newest yesterday
PROVIDER_DAYS = 14
#: an SNDS-registered IP outside the inventory, and a blocked range holding none of ours
SNDS_STRANGER = "198.18.7.7"
UNWATCHED_RANGE = BlockedRange("100.64.0.0", "100.64.0.3", True, "Blocked due to spam", "", "")
#: hour of the run from which Outlook.com blocks this IP
BLOCKED = ("198.51.100.23", 30)
#: the SNDS fetch at this hour of the run was refused (an expired key: every result unknown)
REFUSED_FETCH = 27


def _ipv4(target: str) -> bool:
    try:
        return ipaddress.ip_address(target).version == 4
    except ValueError:
        return False


def _snds_day(day: dt.date, back: int, rnd: random.Random) -> list[IpActivity]:
    """One day's SNDS rows: ``back`` days before yesterday (0 = yesterday)."""
    out = []
    own = owners()
    for ip in [*own, SNDS_STRANGER]:
        if not _ipv4(ip):
            continue  # SNDS is IPv4 only (and the inventory's domains are no IPs)
        colour, rate, below, traps = "GREEN", 0.001, True, 0
        if ip == "198.51.100.21":  # listed on a blocklist, then junked at Outlook.com
            colour = "RED" if back <= 1 else "YELLOW" if back <= 5 else "GREEN"
            rate, below = 0.0015 + 0.0005 * (6 - min(back, 6)), back > 8
            traps = 4 if back <= 1 else 0
        elif ip == "198.51.100.22":
            colour = "YELLOW" if back <= 2 else "GREEN"
            rate, below, traps = 0.003, back > 6, 3 if back == 0 else 0
        elif own.get(ip, ("", ""))[1] == "globex":
            rate, below = 0.0005 + 0.0003 * (PROVIDER_DAYS - back), back > 10
        elif ip == "192.0.2.11" and back == 8:
            traps = 1
        sent = rnd.randint(70_000, 140_000)
        start = dt.datetime(day.year, day.month, day.day) - dt.timedelta(hours=7)
        out.append(
            IpActivity(
                day=day,
                ip=ip,
                activity_start=start,
                activity_end=start + dt.timedelta(days=1),
                rcpt_commands=sent + 40,
                data_commands=sent + 20,
                message_recipients=sent,
                filter_result=colour,  # type: ignore[arg-type]
                complaint_rate=rate,
                complaint_rate_below=below,
                complaint_rate_text=f"< {rate * 100:g}%" if below else f"{rate * 100:g}%",
                trap_start=start if traps else None,
                trap_end=start + dt.timedelta(hours=9) if traps else None,
                trap_hits=traps,
                sample_helo="mta.example.net",
                jmr_p1_sender="bounce@example.net",
                comments="",
                pool=own.get(ip, ("", ""))[0],
                customer=own.get(ip, ("", ""))[1],
                watched=ip in own,
            )
        )
    return out


def _postmaster_day(domain: str, day: dt.date, back: int) -> DomainDay:
    pool, customer = owners()[domain]
    spam: float | None = 0.0002 + 0.00002 * (back % 3)
    reputation, ips = "HIGH", [IpReputation("HIGH", 4, ("192.0.2.10",))]
    dkim, dmarc, permanent = 1.0, 0.999, 0.0
    if domain == "globex.example":  # the complaint story, as Gmail tells it
        spam = 0.0005 + 0.00028 * (PROVIDER_DAYS - back)
        reputation = "LOW" if back <= 2 else "MEDIUM" if back <= 6 else "HIGH"
        ips = [IpReputation("HIGH", 2, ("198.51.100.20",)), IpReputation("MEDIUM", 1)]
        if back <= 4:
            ips += [IpReputation("LOW", 1, ("198.51.100.22",))]
        if back <= 1:
            ips += [IpReputation("BAD", 1, ("198.51.100.21",))]
        dmarc, permanent = (0.86 if back <= 3 else 0.995), (0.02 if back <= 2 else 0.0)
    if domain == "initech.example":
        dkim = 0.9 if back in (3, 4) else 1.0
        spam = None if back == 5 else spam  # too little DKIM-signed mail that day
    return DomainDay(
        domain=domain,
        day=day,
        spam_ratio=spam,
        spam_ratio_lower=spam * 0.8 if spam is not None else None,
        spam_ratio_upper=spam * 1.2 if spam is not None else None,
        domain_reputation=reputation,
        ip_reputations=tuple(ips),
        spf_ratio=1.0,
        dkim_ratio=dkim,
        dmarc_ratio=dmarc,
        outbound_tls_ratio=0.99,
        inbound_tls_ratio=1.0 if domain != "initech.example" else 0.97,
        delivery_errors=(
            DeliveryError("TEMPORARY_ERROR", "RATE_LIMIT_EXCEEDED", 0.001),
            *([DeliveryError("PERMANENT_ERROR", "SUSPECTED_SPAM", permanent)] if permanent else []),
        ),
        spammy_feedback_loops=(FeedbackLoop("campaign-42", 0.004),) if back <= 1 else (),
        pool=pool,
        customer=customer,
        watched=True,
    )


def _compliance(domain: str) -> DomainCompliance:
    pool, customer = owners()[domain]
    work = domain == "globex.example"
    rows = [
        Requirement(r, "COMPLIANT")
        for r in ("SPF", "DKIM", "DMARC_POLICY", "DMARC_ALIGNMENT", "ENCRYPTION")
    ]
    rows.append(Requirement("HONOR_UNSUBSCRIBE", "NEEDS_WORK" if work else "COMPLIANT"))
    return DomainCompliance(domain, tuple(rows), pool, customer, True)


def _provider_fetch(hour: int, at: dt.datetime, days: dict[str, list[Any]]) -> list[str]:
    """One SNDS and one Postmaster Tools fetch: their check results (``hygiene`` points),
    blocked ranges, compliance and ``sweep`` points, as the recorder and keepers write them."""
    own = owners()
    results: list[CheckResult] = []
    refused = hour == REFUSED_FETCH
    newest = {r.ip: r for r in days["snds"] if r.day == max(x.day for x in days["snds"])}
    for ip, row in newest.items():
        if refused:
            results.append(CheckResult(ip, "snds", "", "unknown", error="renew the SNDS key"))
        elif row.filter_result == "GREEN" and not row.trap_hits:
            results.append(CheckResult(ip, "snds", "", "ok"))
        else:
            sev = "high" if row.filter_result == "RED" or row.trap_hits else "medium"
            results.append(CheckResult(ip, "snds", "", "problem", severity=sev))  # type: ignore[arg-type]
    ranges = [UNWATCHED_RANGE]
    if hour >= BLOCKED[1]:
        ip = BLOCKED[0]
        ranges.append(BlockedRange(ip, ip, True, "Blocked due to spam", *own[ip], watched_ips=1))
    blocked = {r.first for r in ranges}
    for ip in newest:
        if ip in own:
            if refused:
                results.append(
                    CheckResult(ip, "snds-blocked", "", "unknown", error="renew the SNDS key")
                )
            elif ip in blocked:
                results.append(CheckResult(ip, "snds-blocked", "", "problem", severity="high"))
            else:
                results.append(CheckResult(ip, "snds-blocked", "", "ok"))
    if not refused:
        results.append(CheckResult("100.64.0.0/30", "snds-blocked", "", "problem", severity="high"))
    for domain in ("acme.example", "globex.example", "initech.example"):
        rows = [d for d in days["postmaster"] if d.domain == domain]
        last = rows[-1]
        spam = last.spam_ratio or 0.0
        sev = "high" if spam >= 0.003 else "medium" if spam >= 0.001 else None
        results.append(
            CheckResult(domain, "gmail-spam-rate", "", "problem" if sev else "ok", severity=sev)  # type: ignore[arg-type]
        )
        low = last.domain_reputation in ("LOW", "BAD")
        results.append(
            CheckResult(
                domain, "gmail-reputation", "domain", "problem" if low else "ok",  # type: ignore[arg-type]
                severity="medium" if low else None,
            )
        )  # fmt: skip
    out = check_points(results, at, own)
    unknown = sum(r.status == "unknown" for r in results if r.check.startswith("snds"))
    snds_n = sum(r.check.startswith("snds") for r in results)
    out += sweep_points("snds", at, 0.4, 0, snds_n, unknown)
    out += sweep_points("postmaster", at, 1.1, 0, len(results) - snds_n, 0)
    if not refused:
        out += snds_blocked_points(ranges, at)
    out += compliance_points(
        [_compliance(d) for d in ("acme.example", "globex.example", "initech.example")], at
    )
    return out


def provider_days(end: dt.datetime, seed: int = 7) -> dict[str, list[Any]]:
    """The SNDS rows and Postmaster Tools days of the run: :data:`PROVIDER_DAYS` days, the
    newest yesterday (UTC)."""
    rnd = random.Random(seed)
    yesterday = end.date() - dt.timedelta(days=1)
    snds: list[IpActivity] = []
    postmaster: list[DomainDay] = []
    for back in range(PROVIDER_DAYS - 1, -1, -1):
        day = yesterday - dt.timedelta(days=back)
        snds += _snds_day(day, back, rnd)
        postmaster += [
            _postmaster_day(d, day, back)
            for d in ("acme.example", "globex.example", "initech.example")
        ]
    return {"snds": snds, "postmaster": postmaster}


def lines(end: dt.datetime | None = None, seed: int = 7) -> list[str]:
    """Every point of the run, oldest first, ending just before ``end``."""
    end = end or dt.datetime.now(dt.UTC)
    start = end.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=HOURS - 1)
    rnd = random.Random(seed)
    own = owners()
    days = provider_days(end, seed)
    out: list[str] = snds_points(days["snds"]) + postmaster_points(days["postmaster"])
    for hour in range(HOURS):
        at = start + dt.timedelta(hours=hour)
        sweep_at = min(at + dt.timedelta(minutes=2), end - dt.timedelta(minutes=1))
        results = _dnsbl(hour, rnd)
        if hour % 6 == 0:
            hygiene = _hygiene(hour, rnd)
            results += hygiene
            out += sweep_points("hygiene", sweep_at, rnd.uniform(4, 9), 14, len(hygiene), 0)
        out += check_points(results, sweep_at, own)
        if hour % 6 == 3:
            out += _provider_fetch(hour, sweep_at, days)
        unknown = sum(r.status == "unknown" and r.check == "dnsbl" for r in results)
        dnsbl_n = sum(r.check == "dnsbl" for r in results)
        out += sweep_points("dnsbl", sweep_at, rnd.uniform(1.5, 3.0), 14, dnsbl_n, unknown)
        counts, sent = _feedback(at, hour, rnd)
        out += feedback_points(counts) + sent_points(sent, own)
        if at.hour == 0:
            out += dmarc_points(_dmarc(at, rnd))
        listed = sum(
            1 for (_, z), (a, b) in LISTINGS.items() if a <= hour and (b is None or hour < b)
        )
        out += case_points(
            {
                ("critical", "dnsbl-listing"): int(hour >= 40),
                ("high", "dnsbl-listing"): listed - int(hour >= 40),
                ("high", "complaint-rate"): int(hour >= 36),
                ("medium", "hygiene"): 1 + int(hour >= 24),
            },
            sweep_at,
        )
    return out


def expand(
    query: str,
    variables: Mapping[str, str],
    start: dt.datetime,
    end: dt.datetime,
    interval: str = "1h",
    interval_ms: int = 3_600_000,
) -> str:
    """``query`` as Grafana sends it: ``$timeFilter``, ``$__interval``, ``$__interval_ms``
    and ``$name`` / ``${name}`` variables replaced (longest names first)."""
    q = query.replace(
        "$timeFilter",
        f"time >= {int(start.timestamp() * 1000)}ms and time <= {int(end.timestamp() * 1000)}ms",
    )
    q = q.replace("$__interval_ms", str(interval_ms)).replace("$__interval", interval)
    for name in sorted(variables, key=len, reverse=True):
        q = q.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    leftover = re.search(r"\$\{?\w+", q)
    if leftover:
        raise ValueError(f"undefined variable {leftover.group()} in {query!r}")
    return q

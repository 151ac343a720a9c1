"""A synthetic two-day run of repmon, as line protocol from the real point builders.

Used by the dashboard tests and by ``render.py``: three pools, eleven sending
IPs, three sending domains, four blocklist zones with listings that appear and
clear, hygiene states that break, hourly feedback counts with one customer's
complaint rate climbing past 0.3 %, daily DMARC reports, sweeps and cases. The
run ends at ``end`` (default: now), because the dashboards' "right now" panels
look back from now(). Deterministic for a given ``end`` and ``seed``.

Also here: :func:`expand`, the substitution Grafana does on a panel's query.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Mapping
from typing import Any

from checks.result import CheckResult
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


def lines(end: dt.datetime | None = None, seed: int = 7) -> list[str]:
    """Every point of the run, oldest first, ending just before ``end``."""
    end = end or dt.datetime.now(dt.UTC)
    start = end.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=HOURS - 1)
    rnd = random.Random(seed)
    own = owners()
    out: list[str] = []
    for hour in range(HOURS):
        at = start + dt.timedelta(hours=hour)
        sweep_at = min(at + dt.timedelta(minutes=2), end - dt.timedelta(minutes=1))
        results = _dnsbl(hour, rnd)
        if hour % 6 == 0:
            hygiene = _hygiene(hour, rnd)
            results += hygiene
            out += sweep_points("hygiene", sweep_at, rnd.uniform(4, 9), 14, len(hygiene), 0)
        out += check_points(results, sweep_at, own)
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

"""Threshold rules over a real store (SQLite and PostgreSQL): each opens one case when it should."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from checks.result import CheckResult
from monitor.cases import evaluate, list_cases
from monitor.config import Config, parse_config
from monitor.store import Store
from monitor.store.checks import record_results
from monitor.store.schema import dmarc_records, feedback_events, sent_volume

T0 = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)
IP = "203.0.113.7"
IP2 = "203.0.113.8"


def make_config(**sections: Any) -> Config:
    """Rules as in TOML; an inventory with two IPs of customer acme, pool p1."""
    data: dict[str, Any] = {
        "inventory": {
            "pools": [{"name": "p1", "cidrs": [f"{IP}/32", f"{IP2}/32"], "customer": "acme"}]
        }
    }
    data.update(sections)
    return parse_config(data)


def add_sent(store: Store, ip: str, count: int, at: dt.datetime = T0, source: str = "mta") -> None:
    bucket = at.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    with store.begin() as conn:
        conn.execute(
            sent_volume.insert().values(
                bucket_start=bucket, sending_ip=ip, source=source, count=count
            )
        )


def add_events(
    store: Store,
    n: int,
    kind: str,
    ip: str = IP,
    at: dt.datetime = T0,
    **fields: Any,
) -> None:
    """``n`` feedback events received just before ``at``."""
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            "message_hash": uuid.uuid4().hex,
            "seq": 0,
            "received_at": at - dt.timedelta(minutes=10, seconds=i),
            "kind": kind,
            "sending_ip": ip,
            "receiving_domain": "mail.example",
            "recipient": f"user{i}@mail.example",
            "status": "5.7.1" if kind == "bounce" else "",
            "diagnostic": f"550 5.7.1 <user{i}@mail.example> refused" if kind == "bounce" else "",
            "feedback_type": "abuse" if kind == "complaint" else "",
            "detail": {},
        }
        row.update(fields)
        rows.append(row)
    if rows:
        with store.begin() as conn:
            conn.execute(feedback_events.insert(), rows)


def add_dmarc(
    store: Store,
    ip: str,
    count: int,
    dkim: str = "pass",
    spf: str = "pass",
    end: dt.datetime = T0,
    **fields: Any,
) -> None:
    with store.begin() as conn:
        conn.execute(
            dmarc_records.insert().values(
                message_hash=uuid.uuid4().hex,
                seq=0,
                source_ip=ip,
                count=count,
                dkim=dkim,
                spf=spf,
                begin=end - dt.timedelta(days=1),
                end=end - dt.timedelta(hours=1),
                header_from="example.com",
                detail={},
                **fields,
            )
        )


def check(
    store: Store,
    status: str,
    at: dt.datetime,
    target: str = IP,
    name: str = "dnsbl",
    source: str = "zen.spamhaus.org",
    severity: str | None = "high",
    **fields: Any,
) -> None:
    """Record one check answer as a sweep would (``unknown`` needs no severity)."""
    if status == "problem" and name == "dnsbl" and not fields:
        fields = {
            "codes": ["127.0.0.2"],
            "meaning": "SBL",
            "reason": "https://check.spamhaus.org/sbl/query/SBL1",
            "delist": f"https://check.spamhaus.org/listed/?searchterm={target}",
        }
    result = CheckResult(
        target,
        name,
        source,
        status,  # type: ignore[arg-type]
        detail=status,
        error="timeout" if status == "unknown" else None,
        severity=severity if status == "problem" else None,
        fields=fields,
    )
    record_results(store, [result], at, owners={IP: ("p1", "acme"), IP2: ("p1", "acme")})


def test_blocklisting_opens_one_case_with_the_lists_own_answer(store: Store) -> None:
    config = make_config()
    check(store, "problem", T0)
    summary = evaluate(store, config, now=T0)
    assert summary.opened == 1
    [case] = list_cases(store)
    assert (case.type, case.rule, case.subject, case.source) == (
        "blocklisting",
        "dnsbl",
        IP,
        "zen.spamhaus.org",
    )
    assert case.severity == "high" and case.subject_kind == "ip"
    assert (case.pool, case.customer) == ("p1", "acme")
    assert case.evidence["codes"] == ["127.0.0.2"]
    assert case.evidence["delist"].endswith(IP)
    assert case.evidence["reason"].startswith("https://check.spamhaus.org")
    # the same listing again: still one case
    assert evaluate(store, config, now=T0 + dt.timedelta(minutes=5)).opened == 0
    assert len(list_cases(store, state="all")) == 1


def test_complaint_rate_per_ip_and_per_customer(store: Store) -> None:
    config = make_config()
    add_sent(store, IP, 10_000)
    add_sent(store, IP2, 10_000)
    add_events(store, 35, "complaint", IP)  # 0.35 %: critical
    add_events(store, 5, "complaint", IP2)  # 0.05 %: fine on its own
    summary = evaluate(store, config, now=T0)
    assert summary.opened == 2
    by_rule = {c.rule: c for c in list_cases(store)}
    ip_case = by_rule["complaint-rate"]
    assert (ip_case.subject, ip_case.severity, ip_case.type) == (IP, "critical", "complaints")
    assert (ip_case.numerator, ip_case.denominator, ip_case.window_seconds) == (35, 10_000, 86400)
    assert ip_case.evidence["volume_basis"] == "sent:mta"
    assert len(ip_case.samples) == 5
    assert all(s["recipient"].startswith("sha256:") for s in ip_case.samples)
    # the customer: 40 / 20,000 = 0.2 %, medium
    cust = by_rule["customer-complaint-rate"]
    assert (cust.subject_kind, cust.subject, cust.severity) == ("customer", "acme", "medium")
    assert (cust.numerator, cust.denominator) == (40, 20_000)


def test_one_event_opens_one_case(store: Store) -> None:
    """Complaints from one IP make the IP rule and the customer rule fire on the same events:
    one case (the IP's), with the customer's numbers on it, not a second case."""
    config = make_config()
    add_sent(store, IP, 10_000)
    add_events(store, 35, "complaint", IP)
    assert evaluate(store, config, now=T0).opened == 1
    (case,) = list_cases(store)
    assert case.rule == "complaint-rate" and case.subject == IP
    assert case.evidence["customer"]["customer"] == "acme"
    assert case.evidence["customer"]["numerator"] == 35


def test_complaint_rate_needs_the_minimum_volume(store: Store) -> None:
    config = make_config()
    add_sent(store, IP, 999)
    add_events(store, 50, "complaint", IP)  # 5 % of 999 messages means little
    assert evaluate(store, config, now=T0).opened == 0
    add_sent(store, IP, 1, source="other")  # another source of the same mail: max, not sum
    assert evaluate(store, config, now=T0).opened == 0


def test_volume_is_the_larger_of_dmarc_and_sent(store: Store) -> None:
    config = make_config()
    # 4x what the MTA logged: larger, and not an anomaly (over 10x would be, docs/cases.md)
    add_sent(store, IP, 5_000)
    add_dmarc(store, IP, 20_000)
    add_events(store, 30, "complaint", IP)  # 30 / 20,000 = 0.15 %
    evaluate(store, config, now=T0)
    [case] = [c for c in list_cases(store) if c.rule == "complaint-rate"]
    assert (case.denominator, case.evidence["volume_basis"], case.severity) == (
        20_000,
        "dmarc",
        "medium",
    )


def test_not_spam_reports_are_not_complaints(store: Store) -> None:
    config = make_config()
    add_sent(store, IP, 10_000)
    add_events(store, 40, "complaint", IP, feedback_type="not-spam")
    assert evaluate(store, config, now=T0).opened == 0


def test_hard_bounce_rate_counts_only_hard_bounces(store: Store) -> None:
    config = make_config(rules={"bounces": {"per_customer": False}})
    add_sent(store, IP, 2_000)
    add_events(store, 300, "bounce", IP, hard=False, category="quota")  # 15 % soft: not counted
    assert evaluate(store, config, now=T0).opened == 0
    add_events(store, 120, "bounce", IP, hard=True, category="bad-mailbox")  # 6 %
    evaluate(store, config, now=T0)
    [case] = list_cases(store)
    assert (case.rule, case.type, case.severity, case.numerator) == (
        "bounce-rate",
        "bounces",
        "medium",
        120,
    )
    assert all(s["category"] == "bad-mailbox" for s in case.samples)
    # quoted addresses in diagnostics are hashed too
    assert all("user" not in s["diagnostic"] for s in case.samples)


def test_bounce_burst_from_one_receiving_domain(store: Store) -> None:
    config = make_config(rules={"bounce_burst": {"count": 20, "window": "1h"}})
    add_events(store, 19, "bounce", IP, category="blocklisted", receiving_domain="big.example")
    add_events(store, 30, "bounce", IP, category="bad-mailbox", receiving_domain="big.example")
    assert evaluate(store, config, now=T0).opened == 0
    add_events(store, 1, "bounce", IP, category="reputation", receiving_domain="big.example")
    add_events(store, 25, "bounce", IP, category="blocklisted", receiving_domain="other.example")
    evaluate(store, config, now=T0)
    cases = sorted(list_cases(store), key=lambda c: c.source)
    assert [(c.rule, c.subject, c.source, c.numerator) for c in cases] == [
        ("bounce-burst", IP, "big.example", 20),
        ("bounce-burst", IP, "other.example", 25),
    ]
    assert cases[0].severity == "high"
    # events older than the window do not count
    later = T0 + dt.timedelta(hours=2)
    assert evaluate(store, config, now=later).opened == 0


def test_dmarc_failures_of_our_ips_only(store: Store) -> None:
    config = make_config()
    add_dmarc(store, IP, 900, dkim="pass", spf="fail")
    add_dmarc(store, IP, 100, dkim="fail", spf="fail")  # 10 % of 1,000 fail both: high
    add_dmarc(store, "198.51.100.9", 5_000, dkim="fail", spf="fail")  # a spoofer, not ours
    evaluate(store, config, now=T0)
    [case] = list_cases(store)
    assert (case.rule, case.type, case.subject, case.severity) == (
        "dmarc-alignment",
        "dmarc",
        IP,
        "high",
    )
    assert (case.numerator, case.denominator) == (100, 1_000)


@pytest.mark.parametrize(
    ("name", "source", "severity", "case_type"),
    [
        ("spf", "", "high", "authentication"),
        ("dmarc", "", "medium", "authentication"),
        ("dkim", "s1", "critical", "authentication"),
        ("spf-authorizes", "example.com", "high", "authentication"),
        ("ptr", "", "medium", "hygiene"),
    ],
)
def test_hygiene_problems_open_cases(
    store: Store, name: str, source: str, severity: str, case_type: str
) -> None:
    target = IP if name in ("ptr", "spf-authorizes") else "example.com"
    check(store, "problem", T0, target=target, name=name, source=source, severity=severity,
          why="broken")  # fmt: skip
    check(store, "problem", T0, target="example.org", name="mx", source="", severity="low")
    evaluate(store, make_config(), now=T0)
    [case] = list_cases(store)  # mx is not a case by default
    assert (case.rule, case.type, case.severity, case.source) == (name, case_type, severity, source)
    assert case.subject_kind == ("ip" if target == IP else "domain")
    assert case.evidence["data"]["why"] == "broken"


def test_an_unknown_check_opens_nothing(store: Store) -> None:
    check(store, "ok", T0)
    check(store, "unknown", T0 + dt.timedelta(minutes=1))
    assert evaluate(store, make_config(), now=T0 + dt.timedelta(minutes=2)).opened == 0


def test_disabled_rules_open_nothing(store: Store) -> None:
    config = make_config(
        rules={"blocklisting": {"enabled": False}, "complaints": {"enabled": False}}
    )
    check(store, "problem", T0)
    add_sent(store, IP, 10_000)
    add_events(store, 50, "complaint", IP)
    assert evaluate(store, config, now=T0).opened == 0

"""The abuse rule through ``evaluate``: a case per (customer, category), updated by each new
report, severity by category and volume, blocklistings and complaints on the case, the review
queue and foreign addresses kept out, and the case clearing after the window."""

from __future__ import annotations

import datetime as dt
import hashlib

from checks.result import PROBLEM, CheckResult
from collectors.feedback.pipeline import SpooledItem
from monitor.abuse_intake import ingest_batch, reclassify_report
from monitor.cases import evaluate, get_case, list_cases
from monitor.cases.abuse_rule import WINDOW_SECONDS
from monitor.cases.model import Case
from monitor.feedback_intake import ingest_spooled
from monitor.inventory import Inventory
from monitor.store import Store
from monitor.store.abuse import find_reports
from monitor.store.checks import record_results
from tests.monitor.abuse.samples import (
    ACME_IPS,
    FOREIGN,
    GLOBEX_IPS,
    config,
    shadowserver_mail,
    unsure_letter,
    xarf_login,
)
from tests.monitor.test_feedback_pipeline import arf

NOW = dt.datetime(2024, 5, 14, 10, 0, tzinfo=dt.UTC)


def take(store: Store, cfg: object, *mails: bytes, at: dt.datetime = NOW) -> None:
    items = [SpooledItem(m, hashlib.sha256(m).hexdigest(), at, "") for m in mails]
    results = ingest_batch(store, cfg, Inventory.from_config(cfg), items)  # type: ignore[arg-type]
    assert not [r for r in results if isinstance(r, Exception)], results


def abuse_cases(store: Store) -> dict[tuple[str, str], Case]:
    return {(c.subject, c.source): c for c in list_cases(store) if c.rule == "abuse"}


def test_one_case_per_customer_and_category(store: Store) -> None:
    cfg = config(store.url)
    take(store, cfg, xarf_login(ACME_IPS[0], 1), shadowserver_mail(ACME_IPS + GLOBEX_IPS))
    take(store, cfg, xarf_login(FOREIGN, 9), unsure_letter(GLOBEX_IPS[0]))
    summary = evaluate(store, cfg, NOW + dt.timedelta(minutes=5))
    cases = abuse_cases(store)
    assert set(cases) == {
        ("acme", "login-attack"),
        ("acme", "open-service"),
        ("globex", "open-service"),
    }, "the foreign report and the unsure letter open nothing"
    assert summary.opened == 3
    login = get_case(store, cases[("acme", "login-attack")].id)
    assert (login.type, login.subject_kind, login.severity, login.customer) == (
        "abuse",
        "customer",
        "medium",
        "acme",
    )
    assert login.evidence["ips"] == [ACME_IPS[0]]
    assert login.evidence["incidents"] == 1
    assert login.evidence["reporters"] == {"fail2ban.example": 1}
    assert "Failed password" in login.evidence["latest"]["excerpt"]
    assert login.evidence["latest"]["reported_at"].startswith("2024-05-14T07:58:01")
    assert cases[("globex", "open-service")].severity == "low"
    assert cases[("globex", "open-service")].evidence["ips"] == GLOBEX_IPS
    # a second report about the same customer and category updates the case
    take(store, cfg, xarf_login(ACME_IPS[1], 2), at=NOW + dt.timedelta(hours=1))
    summary = evaluate(store, cfg, NOW + dt.timedelta(hours=1, minutes=5))
    assert summary.opened == 0 and summary.updated == 1
    login = get_case(store, login.id)
    assert login.numerator == 2 and login.evidence["ips"] == [ACME_IPS[1], ACME_IPS[0]]
    assert [e.kind for e in login.events] == ["opened", "updated"]


def test_volume_raises_the_severity_but_never_to_critical(store: Store) -> None:
    cfg = config(store.url)
    take(store, cfg, *(xarf_login(ACME_IPS[i % 5], i) for i in range(10)))
    evaluate(store, cfg, NOW + dt.timedelta(minutes=5))
    [case] = abuse_cases(store).values()
    assert case.severity == "high" and case.evidence["escalated_by_volume"]
    assert not [e for e in get_case(store, case.id).events if e.kind == "enforcement"]


def test_a_category_configured_critical_asks_for_enforcement(store: Store) -> None:
    cfg = config(store.url, severity={"login-attack": "critical"})
    take(store, cfg, xarf_login(ACME_IPS[0], 1))
    evaluate(store, cfg, NOW + dt.timedelta(minutes=5))
    [case] = abuse_cases(store).values()
    events = get_case(store, case.id).events
    assert case.severity == "critical"
    assert any(e.kind == "enforcement" and "customer acme" in e.text for e in events)


def test_blocklistings_and_complaints_show_on_the_case(store: Store) -> None:
    cfg = config(store.url)
    ip = "192.0.2.9"  # the ARF complaint's Source-IP, in acme's pool
    record_results(
        store,
        [CheckResult(ip, "dnsbl", "zen.spamhaus.org", PROBLEM, "listed", severity="critical")],
        NOW - dt.timedelta(hours=2),
        {ip: ("web-a", "acme")},
    )
    complaint = arf(source_ip=ip)
    ingest_spooled(
        store, cfg, Inventory.from_config(cfg), complaint,
        hashlib.sha256(complaint).hexdigest(), NOW - dt.timedelta(hours=1), "",
    )  # fmt: skip
    take(store, cfg, xarf_login(ip, 1))
    evaluate(store, cfg, NOW + dt.timedelta(minutes=5))
    [case] = [c for c in abuse_cases(store).values() if c.source == "login-attack"]
    assert case.evidence["listed"][ip][0]["source"] == "zen.spamhaus.org"
    assert case.evidence["complaints"] == {ip: 1}
    assert "listed or failing checks" in case.summary and "complaints" in case.summary


def test_the_review_queue_feeds_no_case_until_classified(store: Store) -> None:
    cfg = config(store.url)
    take(store, cfg, unsure_letter(ACME_IPS[3]))
    evaluate(store, cfg, NOW + dt.timedelta(minutes=5))
    assert abuse_cases(store) == {}
    [queued] = find_reports(store, review=True)
    done = reclassify_report(
        store, cfg, queued.id, "phishing", "alice", now=NOW + dt.timedelta(minutes=10)
    )
    assert done.evaluation is not None and done.evaluation["opened"] == 1
    [case] = abuse_cases(store).values()
    assert (case.subject, case.source, case.severity) == ("acme", "phishing", "high")


def test_reclassifying_moves_the_report_to_the_other_case(store: Store) -> None:
    cfg = config(store.url)
    take(store, cfg, xarf_login(ACME_IPS[0], 1))
    evaluate(store, cfg, NOW + dt.timedelta(minutes=5))
    [old] = abuse_cases(store).values()
    [report] = find_reports(store)
    done = reclassify_report(
        store, cfg, report.id, "web-attack", "bob", now=NOW + dt.timedelta(minutes=10)
    )
    assert done.noted_cases == [old.id]
    notes = [e for e in get_case(store, old.id).events if e.kind == "note"]
    assert notes and notes[0].actor == "bob" and "to web-attack" in notes[0].text
    cases = abuse_cases(store)
    assert ("acme", "web-attack") in cases
    # the old case has no report left: clear now, resolved after the hold-down
    later = NOW + dt.timedelta(minutes=10) + dt.timedelta(seconds=cfg.rules.hold_down_seconds + 60)
    evaluate(store, cfg, later)
    assert get_case(store, old.id).state == "resolved"


def test_a_case_clears_after_the_window_and_the_hold_down(store: Store) -> None:
    cfg = config(store.url)
    take(store, cfg, xarf_login(ACME_IPS[0], 1))
    evaluate(store, cfg, NOW + dt.timedelta(minutes=5))
    [case] = abuse_cases(store).values()
    inside = NOW + dt.timedelta(seconds=WINDOW_SECONDS - 60)
    evaluate(store, cfg, inside)
    assert get_case(store, case.id).state == "open"
    after = NOW + dt.timedelta(seconds=WINDOW_SECONDS + cfg.rules.hold_down_seconds + 60)
    evaluate(store, cfg, after)
    assert get_case(store, case.id).state == "resolved"

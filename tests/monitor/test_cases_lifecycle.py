"""Case lifecycle: one case per problem, escalation, hold-down, unknown, reopen, concurrency."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from monitor.cases import (
    CaseNotFound,
    CaseStateError,
    acknowledge,
    add_note,
    evaluate,
    get_case,
    list_cases,
    open_case_counts,
    resolve,
)
from monitor.store import Store, StoreConflict
from monitor.store.schema import case_events, cases
from tests.monitor.test_cases_rules import IP, IP2, T0, add_events, add_sent, check, make_config

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def kinds(store: Store, case_id: int) -> list[str]:
    return [e.kind for e in get_case(store, case_id).events]


def test_repeat_appends_only_when_the_evidence_changes(store: Store) -> None:
    config = make_config()
    add_sent(store, IP, 10_000)
    add_events(store, 12, "complaint", IP)
    evaluate(store, config, now=T0)
    [case] = [c for c in list_cases(store) if c.rule == "complaint-rate"]
    evaluate(store, config, now=T0 + M)  # nothing new: no event, but seen again
    again = get_case(store, case.id)
    assert (again.last_seen_at, again.updated_at) == (T0 + M, T0)
    assert again.samples and again.evidence["volume_basis"] == "sent:mta"
    add_events(store, 3, "complaint", IP, at=T0 + 2 * M)
    summary = evaluate(store, config, now=T0 + 2 * M)
    assert summary.updated >= 1 and summary.opened == 0
    assert kinds(store, case.id) == ["opened", "updated"]
    assert get_case(store, case.id).numerator == 15


def test_severity_rises_and_never_silently_falls(store: Store) -> None:
    config = make_config(rules={"complaints": {"per_customer": False}})
    add_sent(store, IP, 10_000)
    add_events(store, 12, "complaint", IP)  # 0.12 %: medium
    evaluate(store, config, now=T0)
    [case] = list_cases(store)
    assert case.severity == "medium"
    add_events(store, 30, "complaint", IP, at=T0 + M)  # 0.42 %: critical
    assert evaluate(store, config, now=T0 + M).escalated == 1
    c = get_case(store, case.id)
    assert c.severity == "critical"
    assert kinds(store, case.id) == ["opened", "escalated", "enforcement"]
    assert "would throttle ip 203.0.113.7" in c.events[-1].text  # enforce.dry_run default
    # more volume dilutes the rate back to medium: noted, the case keeps critical
    add_sent(store, IP, 20_000, source="mta", at=T0 - H)
    evaluate(store, config, now=T0 + 2 * M)
    c = get_case(store, case.id)
    assert (c.severity, c.last_severity) == ("critical", "medium")
    assert c.events[-1].kind == "lowered"
    evaluate(store, config, now=T0 + 3 * M)
    assert kinds(store, case.id).count("lowered") == 1


def test_resolves_only_after_hold_down_of_checked_clear(store: Store) -> None:
    config = make_config(rules={"hold_down": "2h"})
    check(store, "problem", T0)
    evaluate(store, config, now=T0)
    [case] = list_cases(store)
    check(store, "ok", T0 + H)
    assert evaluate(store, config, now=T0 + H).resolved == 0
    assert get_case(store, case.id).clear_since == T0 + H
    check(store, "ok", T0 + 2 * H)
    assert evaluate(store, config, now=T0 + 2 * H + 30 * M).resolved == 0  # 1h of checked clear
    check(store, "ok", T0 + 3 * H)
    assert evaluate(store, config, now=T0 + 3 * H + M).resolved == 1
    c = get_case(store, case.id)
    assert (c.state, c.resolution) == ("resolved", "auto")
    assert kinds(store, case.id) == ["opened", "resolved"]


def test_no_fresh_check_means_no_resolution(store: Store) -> None:
    """The state says ok, but nobody checked again: time passing proves nothing."""
    config = make_config()
    check(store, "problem", T0)
    evaluate(store, config, now=T0)
    check(store, "ok", T0 + H)
    assert evaluate(store, config, now=T0 + 10 * H).resolved == 0  # last check at T0+1h only


def test_unknown_never_resolves_and_breaks_the_clear_streak(store: Store) -> None:
    config = make_config(rules={"hold_down": "2h"})
    check(store, "problem", T0)
    evaluate(store, config, now=T0)
    [case] = list_cases(store)
    check(store, "ok", T0 + H)
    evaluate(store, config, now=T0 + H)
    check(store, "unknown", T0 + 2 * H)  # e.g. the zone timed out
    for hours in (3, 6, 24):
        assert evaluate(store, config, now=T0 + hours * H).resolved == 0
    assert get_case(store, case.id).clear_since is None
    # ok again: the streak restarts after the unknown, not from the first ok
    check(store, "ok", T0 + 25 * H)
    assert evaluate(store, config, now=T0 + 25 * H).resolved == 0
    assert get_case(store, case.id).clear_since == T0 + 25 * H
    check(store, "ok", T0 + 27 * H)
    assert evaluate(store, config, now=T0 + 27 * H).resolved == 1


def test_unknown_between_two_evaluations_still_counts(store: Store) -> None:
    config = make_config(rules={"hold_down": "2h"})
    check(store, "problem", T0)
    evaluate(store, config, now=T0)
    check(store, "ok", T0 + H)
    evaluate(store, config, now=T0 + H)
    check(store, "unknown", T0 + 2 * H)
    check(store, "ok", T0 + 3 * H + 30 * M)  # the evaluator never saw the unknown
    assert evaluate(store, config, now=T0 + 3 * H + 31 * M).resolved == 0


def test_rate_case_needs_volume_to_clear(store: Store) -> None:
    config = make_config(rules={"hold_down": "1h", "complaints": {"per_customer": False}})
    add_sent(store, IP, 10_000)
    add_events(store, 20, "complaint", IP)
    evaluate(store, config, now=T0)
    [case] = list_cases(store)
    # a day later the complaints and the volume are out of the window: no data, no verdict
    later = T0 + 30 * H
    for step in range(4):
        assert evaluate(store, config, now=later + step * H).resolved == 0
    # volume returns without complaints: checked and clear, then hold-down
    add_sent(store, IP, 5_000, at=later + 4 * H)
    assert evaluate(store, config, now=later + 4 * H).resolved == 0
    assert evaluate(store, config, now=later + 5 * H).resolved == 1
    assert get_case(store, case.id).state == "resolved"


def test_reopen_within_the_window_else_a_new_case(store: Store) -> None:
    config = make_config(rules={"hold_down": "1h", "reopen_window": "24h"})
    check(store, "problem", T0)
    evaluate(store, config, now=T0)
    [case] = list_cases(store)
    check(store, "ok", T0 + H)
    check(store, "ok", T0 + 2 * H)
    assert evaluate(store, config, now=T0 + 2 * H).resolved == 1
    check(store, "problem", T0 + 5 * H)
    assert evaluate(store, config, now=T0 + 5 * H).reopened == 1
    c = get_case(store, case.id)
    assert (c.state, c.resolved_at) == ("reopened", None)
    assert kinds(store, case.id) == ["opened", "resolved", "reopened"]
    # resolve again, come back two days later: a new case
    check(store, "ok", T0 + 6 * H)
    check(store, "ok", T0 + 7 * H)
    assert evaluate(store, config, now=T0 + 7 * H).resolved == 1
    check(store, "problem", T0 + 60 * H)
    assert evaluate(store, config, now=T0 + 60 * H).opened == 1
    assert len(list_cases(store, state="all")) == 2


def test_ack_note_and_manual_resolve(store: Store) -> None:
    config = make_config()
    check(store, "problem", T0)
    evaluate(store, config, now=T0)
    [case] = list_cases(store)
    assert acknowledge(store, case.id, now=T0 + M).state == "acknowledged"
    assert acknowledge(store, case.id, now=T0 + M).state == "acknowledged"  # harmless twice
    add_note(store, case.id, "asked Spamhaus for delisting", now=T0 + 2 * M)
    with pytest.raises(CaseStateError):
        resolve(store, case.id, "  ")
    c = resolve(store, case.id, "delisted", now=T0 + 3 * M)
    assert (c.state, c.resolution) == ("resolved", "manual")
    assert [e.kind for e in c.events] == ["opened", "acknowledged", "note", "resolved"]
    assert c.events[2].actor == "cli"
    with pytest.raises(CaseStateError):
        acknowledge(store, case.id)
    with pytest.raises(CaseNotFound):
        get_case(store, 9999)
    # still listed: resolving by hand does not silence it
    assert evaluate(store, config, now=T0 + 10 * M).reopened == 1


def test_open_case_counts_by_severity_and_type(store: Store) -> None:
    config = make_config()
    check(store, "problem", T0, target=IP, severity="high")
    check(store, "problem", T0, target=IP2, severity="high")
    check(store, "problem", T0, target=IP2, source="b.barracudacentral.org", severity="medium")
    check(store, "problem", T0, target="example.com", name="spf", source="", severity="high",
          why="permerror")  # fmt: skip
    evaluate(store, config, now=T0)
    assert open_case_counts(store) == {
        ("high", "blocklisting"): 2,
        ("medium", "blocklisting"): 1,
        ("high", "authentication"): 1,
    }
    assert [c.severity for c in list_cases(store)][0] == "high"
    assert len(list_cases(store, severity="medium")) == 1


def test_only_one_active_case_per_key_in_the_database(store: Store) -> None:
    """The partial unique index itself, without the evaluator's lock."""
    row = {
        "rule": "dnsbl",
        "type": "blocklisting",
        "subject_kind": "ip",
        "subject": IP,
        "source": "zen.spamhaus.org",
        "state": "open",
        "severity": "high",
        "last_severity": "high",
        "evidence": {},
        "samples": [],
        "opened_at": T0,
        "updated_at": T0,
        "last_seen_at": T0,
    }
    with store.begin() as conn:
        conn.execute(cases.insert().values(row | {"state": "resolved"}))
        conn.execute(cases.insert().values(row | {"state": "resolved"}))
        conn.execute(cases.insert().values(row))
    with pytest.raises(StoreConflict), store.begin() as conn:
        conn.execute(cases.insert().values(row | {"state": "acknowledged"}))


def _race(store: Store, config_rounds: list[dt.datetime], threads: int) -> list[BaseException]:
    config = make_config()
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def worker() -> None:
        try:
            for now in config_rounds:
                barrier.wait(timeout=30)
                evaluate(store, config, now=now)
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    return errors


def _event_counts(store: Store) -> Counter[tuple[int, str]]:
    with store.begin() as conn:
        return Counter(
            (r.case_id, r.kind)
            for r in conn.execute(sa.select(case_events.c.case_id, case_events.c.kind))
        )


@pytest.mark.postgres
def test_concurrent_evaluators_open_no_duplicates_on_postgresql(pg_url: str) -> None:
    store = Store.open(pg_url)
    try:
        ips = [f"203.0.113.{i}" for i in range(1, 31)]
        for ip in ips:
            check(store, "problem", T0, target=ip)
        errors = _race(store, [T0 + i * M for i in range(10)], threads=4)
        assert not errors, errors
        active = list_cases(store)
        assert len(active) == len(ips)
        assert sorted(c.subject for c in active) == sorted(ips)
        events = _event_counts(store)
        assert all(events[(c.id, "opened")] == 1 for c in active)
        # everything clears; four evaluators race to resolve, each case resolves once
        for ip in ips:
            check(store, "ok", T0 + H, target=ip)
            check(store, "ok", T0 + 4 * H, target=ip)
        errors = _race(store, [T0 + 4 * H + i * M for i in range(5)], threads=4)
        assert not errors, errors
        assert list_cases(store) == []
        events = _event_counts(store)
        assert all(events[(c.id, "resolved")] == 1 for c in active)
        # and back: each reopens exactly once
        for ip in ips:
            check(store, "problem", T0 + 5 * H, target=ip)
        errors = _race(store, [T0 + 5 * H + i * M for i in range(5)], threads=4)
        assert not errors, errors
        events = _event_counts(store)
        assert all(events[(c.id, "reopened")] == 1 for c in active)
        assert len(list_cases(store, state="all")) == len(ips)
    finally:
        store.close()


def test_concurrent_evaluators_on_sqlite(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    try:
        for i in range(1, 11):
            check(store, "problem", T0, target=f"203.0.113.{i}")
        errors = _race(store, [T0 + i * M for i in range(5)], threads=3)
        assert not errors, errors
        assert len(list_cases(store)) == 10
        assert all(n == 1 for (_, kind), n in _event_counts(store).items() if kind == "opened")
    finally:
        store.close()

"""Recording results: state changes and episodes, also across many targets (several IN lists)."""

from __future__ import annotations

import datetime as dt

from checks.result import CheckResult
from monitor.store import Store
from monitor.store.checks import current_problems, record_results


def results(n: int, listed: set[int]) -> list[CheckResult]:
    return [
        CheckResult(f"10.0.{i // 256}.{i % 256}", "dnsbl", "bl.example", "problem", "listed")
        if i in listed
        else CheckResult(f"10.0.{i // 256}.{i % 256}", "dnsbl", "bl.example", "ok", "not listed")
        for i in range(n)
    ]


def test_changes_across_many_targets(store: Store) -> None:
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    first = record_results(store, results(2000, {5, 1500}), t0)
    assert {c.target for c in first} == {"10.0.0.5", "10.0.5.220"}
    again = record_results(store, results(2000, {5, 1999}), t0 + dt.timedelta(hours=1))
    assert {(c.target, c.old_status, c.new_status) for c in again} == {
        ("10.0.5.220", "problem", "ok"),
        ("10.0.7.207", "ok", "problem"),
    }
    assert {p.target for p in current_problems(store)} == {"10.0.0.5", "10.0.7.207"}
    # an unknown never changes what is recorded
    unknown = [CheckResult("10.0.0.5", "dnsbl", "bl.example", "unknown", error="timeout")]
    assert record_results(store, unknown, t0 + dt.timedelta(hours=2)) == []
    assert {p.target for p in current_problems(store)} == {"10.0.0.5", "10.0.7.207"}

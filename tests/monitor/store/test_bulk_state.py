"""The bulk-sweep state (dnsbl): rows only for problems and unknowns, coverage for the rest.

Through the recorder, the way ``repmon sweep`` records: chunks whose clean pairs are counts,
never result objects. Checked on SQLite and PostgreSQL: what is stored, the state changes and
episodes, the ok row a case still reads, the zone that could not answer.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

import monitor.recorder as recorder_module
from checks.errors import StoreUnavailable
from checks.result import CheckResult
from collectors.sweep import Chunk, SourceCount, SweepSummary
from monitor.config import InventoryConfig
from monitor.inventory import Inventory
from monitor.recorder import StoreRecorder
from monitor.store import Store
from monitor.store import cases as store_cases
from monitor.store.checks import clean_since, current_problems, last_coverage, state_of
from monitor.store.schema import check_state, problem_episodes, state_changes

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
ZONES = ("bl.example", "bl2.example")
TARGETS = [f"192.0.2.{i}" for i in range(16)]


class Points:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, lines: list[str]) -> None:
        self.lines += lines


def inventory() -> Inventory:
    return Inventory.from_config(
        InventoryConfig.model_validate(
            {"pools": [{"name": "p1", "cidrs": ["192.0.2.0/28"], "customer": "acme"}]}
        )
    )


def listed(target: str, zone: str = "bl.example", code: str = "127.0.0.2") -> CheckResult:
    fields = {"zone": zone, "codes": [code], "meaning": "spam", "reason": "why", "delist": ""}
    return CheckResult(
        target, "dnsbl", zone, "problem", f"listed on {zone}: spam", None, "high", fields
    )


def unknown(target: str, zone: str = "bl.example", why: str = "timeout") -> CheckResult:
    return CheckResult(target, "dnsbl", zone, "unknown", "lookup failed", why)


def sweep(
    store: Store,
    at: dt.datetime,
    results: list[CheckResult],
    writer: Points | None = None,
    failed: dict[str, str] | None = None,
) -> StoreRecorder:
    """One sweep of the 16 addresses in two chunks of 8, on both zones."""
    rec = StoreRecorder(store, inventory(), writer)
    summary = SweepSummary("dnsbl", at, targets=len(TARGETS))
    for part in (TARGETS[:8], TARGETS[8:]):
        mine = [r for r in results if r.target in part]
        sources = {}
        for z in ZONES:
            ours = [r for r in mine if r.source == z]
            count = SourceCount(("ip4",), len(part), sum(r.status == "problem" for r in ours))
            count.unknown = sum(r.status == "unknown" for r in ours)
            if failed and z in failed:
                count.failed_chunks, count.failed = 1, failed[z]
            sources[z] = count
        chunk = Chunk("dnsbl", at, part, mine, sources)
        rec.record_chunk(chunk, at)
        summary.add_chunk(chunk)
    rec.finish(summary)
    return rec


def rows(store: Store) -> dict[tuple[str, str], Any]:
    with store.begin() as tx:
        return {(r.target, r.source): r for r in tx.execute(sa.select(check_state))}


def test_only_problems_and_unknowns_are_rows(store: Store) -> None:
    rec = sweep(store, T0, [listed("192.0.2.1"), listed("192.0.2.9", "bl2.example")])
    assert set(rows(store)) == {("192.0.2.1", "bl.example"), ("192.0.2.9", "bl2.example")}
    shown, total = rec.take_changes("dnsbl")
    assert total == 2 and {c.new_status for c in shown} == {"problem"}
    p = {(x.target, x.source): x for x in current_problems(store)}
    assert p[("192.0.2.1", "bl.example")].pool == "p1"
    assert p[("192.0.2.1", "bl.example")].customer == "acme"
    cov = {c.source: c for c in last_coverage(store, "dnsbl")}
    assert cov["bl.example"].covered == 16 and cov["bl.example"].listed == 1
    assert cov["bl.example"].pools == ["p1"] and cov["bl.example"].complete
    assert set(clean_since(store, "dnsbl")) == set(ZONES)


def test_a_listing_that_ends_is_a_change_and_ends_its_episode(store: Store) -> None:
    sweep(store, T0, [listed("192.0.2.1")])
    sweep(store, T0 + H, [listed("192.0.2.1")])
    with store.begin() as tx:
        ep = tx.execute(sa.select(problem_episodes)).one()
    assert ep.started_at == T0 and ep.last_seen_at == T0 + H and ep.ended_at is None
    rec = sweep(store, T0 + 2 * H, [])
    shown, total = rec.take_changes("dnsbl")
    assert [(c.target, c.old_status, c.new_status) for c in shown] == [
        ("192.0.2.1", "problem", "ok")
    ]
    with store.begin() as tx:
        ep = tx.execute(sa.select(problem_episodes)).one()
        changes = tx.execute(sa.select(state_changes).order_by(state_changes.c.id)).all()
    assert ep.ended_at == T0 + 2 * H
    assert [(c.old_status, c.new_status, c.at) for c in changes] == [
        (None, "problem", T0),
        ("problem", "ok", T0 + 2 * H),
    ]
    assert current_problems(store) == []
    # no case on it: the ok row goes at the next sweep that finds it clean
    assert ("192.0.2.1", "bl.example") in rows(store)
    sweep(store, T0 + 3 * H, [])
    assert rows(store) == {}


def test_an_ok_row_stays_while_its_case_is_open_and_proves_the_clear(store: Store) -> None:
    sweep(store, T0, [listed("192.0.2.1")])
    with store.begin() as tx:
        store_cases.insert_case(
            tx,
            {
                "rule": "dnsbl", "type": "blocklisting", "subject_kind": "ip",
                "subject": "192.0.2.1", "source": "bl.example", "state": "open",
                "severity": "high", "last_severity": "high", "opened_at": T0,
                "updated_at": T0, "last_seen_at": T0,
            },
        )  # fmt: skip
    for n in (1, 2, 3):
        sweep(store, T0 + n * H, [])
    with store.begin() as tx:
        st = state_of(tx, "192.0.2.1", "dnsbl", "bl.example")
    # what the rule's clear verdict reads: ok since the delisting, last checked by the last sweep
    assert st is not None and st.status == "ok"
    assert st.changed_at == T0 + H and st.checked_at == T0 + 3 * H
    with store.begin() as tx:
        tx.execute(sa.text("UPDATE cases SET state = 'resolved'"))
    sweep(store, T0 + 4 * H, [])
    assert rows(store) == {}


def test_an_unknown_keeps_the_listing_and_its_episode(store: Store) -> None:
    sweep(store, T0, [listed("192.0.2.1")])
    rec = sweep(store, T0 + H, [unknown("192.0.2.1")])
    assert rec.take_changes("dnsbl") == ([], 0)
    row = rows(store)[("192.0.2.1", "bl.example")]
    assert row.status == "problem" and row.last_unknown_at == T0 + H
    assert row.last_error == "timeout"
    with store.begin() as tx:
        assert tx.execute(sa.select(problem_episodes.c.ended_at)).scalar_one() is None
    assert [p.target for p in current_problems(store)] == ["192.0.2.1"]


def test_an_unknown_alone_is_a_row_until_it_is_answered(store: Store) -> None:
    points = Points()
    rec = sweep(store, T0, [unknown("192.0.2.3", why="SERVFAIL")], points)
    assert rec.take_changes("dnsbl") == ([], 0)
    row = rows(store)[("192.0.2.3", "bl.example")]
    assert row.status == "unknown" and row.last_error == "SERVFAIL"
    assert current_problems(store) == []
    assert any("target=192.0.2.3" in x and " unknown=1i " in x for x in points.lines)
    points.lines.clear()
    sweep(store, T0 + H, [], points)
    assert rows(store) == {}
    assert [x for x in points.lines if "target=192.0.2.3" in x and "listed=0i" in x]


def test_a_zone_that_cannot_answer_makes_no_rows_and_ends_nothing(store: Store) -> None:
    sweep(store, T0, [listed("192.0.2.1")])
    everything = [unknown(t, why="self-test failed: x") for t in TARGETS]
    rec = sweep(store, T0 + H, everything, failed={"bl.example": "self-test failed: x"})
    assert rec.take_changes("dnsbl") == ([], 0)
    assert set(rows(store)) == {("192.0.2.1", "bl.example")}
    assert rows(store)[("192.0.2.1", "bl.example")].last_unknown_at == T0 + H
    cov = {c.source: c for c in last_coverage(store, "dnsbl")}
    assert not cov["bl.example"].selftest_ok and cov["bl.example"].unknown == 16
    assert cov["bl.example"].error == "self-test failed: x" and cov["bl2.example"].selftest_ok
    assert set(clean_since(store, "dnsbl")) == set(ZONES)  # from the sweep before
    with store.begin() as tx:
        assert tx.execute(sa.select(problem_episodes.c.ended_at)).scalar_one() is None


def test_points_only_for_listings_unknowns_and_ends(store: Store) -> None:
    points = Points()
    sweep(store, T0, [listed("192.0.2.1")], points)
    per_target = [x for x in points.lines if x.startswith("dnsbl,")]
    assert len(per_target) == 1 and "listed=1i" in per_target[0]
    assert sum(x.startswith("dnsbl_zone,") for x in points.lines) == 2
    pool = [x for x in points.lines if x.startswith("dnsbl_pool,")]
    assert sorted(pool) == sorted(
        [
            f"dnsbl_pool,customer=acme,pool=p1,zone=bl.example covered=16i,listed=1i,unknown=0i "
            f"{int(T0.timestamp()) * 10**9}",
            f"dnsbl_pool,customer=acme,pool=p1,zone=bl2.example covered=16i,listed=0i,unknown=0i "
            f"{int(T0.timestamp()) * 10**9}",
        ]
    )
    # a new listing gets the clean answer of the sweep before, so difference() sees it begin
    points.lines.clear()
    sweep(store, T0 + H, [listed("192.0.2.1"), listed("192.0.2.2")], points)
    new = [x for x in points.lines if "target=192.0.2.2" in x]
    assert sorted(x.split()[-2:][0] for x in new) == [
        "listed=0i,unknown=0i",
        "listed=1i,unknown=0i",
    ]
    assert any(x.endswith(f" {int(T0.timestamp()) * 10**9}") for x in new)
    # delisted: one last point listed=0
    points.lines.clear()
    sweep(store, T0 + 2 * H, [listed("192.0.2.2")], points)
    ended = [x for x in points.lines if "target=192.0.2.1" in x]
    assert len(ended) == 1 and "listed=0i" in ended[0]


def test_changes_shown_are_bounded_and_all_counted(store: Store) -> None:
    rec = sweep(store, T0, [listed(t, z) for t in TARGETS for z in ZONES])
    shown, total = rec.take_changes("dnsbl")
    assert len(shown) == 20 and total == 32
    assert rec.take_changes("dnsbl") == ([], 0)


def test_a_failure_to_record_reaches_the_sweep(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that fails stops the sweep at the chunk it could not record, never silently."""

    def down(*_a: object, **_k: object) -> None:
        raise StoreUnavailable("store down")

    monkeypatch.setattr(recorder_module, "record_chunk", down)
    with pytest.raises(StoreUnavailable, match="store down"):
        sweep(store, T0, [listed("192.0.2.1")])
    monkeypatch.undo()
    assert rows(store) == {}  # nothing half-written; the next sweep records normally
    sweep(store, T0 + H, [listed("192.0.2.1")])
    assert set(rows(store)) == {("192.0.2.1", "bl.example")}

"""The migration framework and its first step, on SQLite and PostgreSQL.

A store made with the schema as it was before ``schema_version`` (the check-state tables and
``cases`` declared here as they were, commit 8bab5c8 ``monitor/store/schema.py``) and filled
the old way (a row per (target, zone), clean ones included) is opened with this code: it is
migrated once, and what is read from it (status, episodes, changes, the state the rules read,
the last sweep) is what was read before; then sweeps go on on top of it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from checks.result import CheckResult
from collectors.sweep import Chunk, SourceCount, SweepSummary
from monitor.config import InventoryConfig
from monitor.inventory import Inventory
from monitor.recorder import StoreRecorder
from monitor.store import Store, UtcDateTime
from monitor.store.checks import current_problems, last_coverage, last_sweep, state_of
from monitor.store.db import engine_url
from monitor.store.migrate import LATEST, current_version
from monitor.store.schema import check_state, problem_episodes, state_changes, sweep_coverage

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)

# --- the schema before this framework ------------------------------------------------------

old = sa.MetaData()
sa.Table(
    "check_state",
    old,
    sa.Column("target", sa.String(255), primary_key=True),
    sa.Column("check", sa.String(32), primary_key=True),
    sa.Column("source", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("severity", sa.String(16)),
    sa.Column("detail", sa.Text(), nullable=False, server_default=""),
    sa.Column("data", sa.JSON(), nullable=False, default=dict),
    sa.Column("pool", sa.String(128), nullable=False, server_default=""),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("checked_at", UtcDateTime(), nullable=False),
    sa.Column("changed_at", UtcDateTime(), nullable=False),
    sa.Column("last_unknown_at", UtcDateTime()),
    sa.Column("last_error", sa.Text()),
)
sa.Table(
    "state_changes",
    old,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False, index=True),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("check", sa.String(32), nullable=False),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("old_status", sa.String(8)),
    sa.Column("new_status", sa.String(8), nullable=False),
    sa.Column("severity", sa.String(16)),
    sa.Column("detail", sa.Text(), nullable=False, server_default=""),
)
sa.Table(
    "problem_episodes",
    old,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("check", sa.String(32), nullable=False),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen_at", UtcDateTime(), nullable=False),
    sa.Column("ended_at", UtcDateTime()),
    sa.Column("data", sa.JSON(), nullable=False, default=dict),
    sa.Index("ix_episode_key", "target", "check", "source"),
)
sa.Table(
    "sweep_runs",
    old,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sweep", sa.String(32), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("duration", sa.Float, nullable=False),
    sa.Column("targets", sa.Integer, nullable=False),
    sa.Column("ok", sa.Integer, nullable=False),
    sa.Column("problem", sa.Integer, nullable=False),
    sa.Column("unknown", sa.Integer, nullable=False),
    sa.Column("unknown_by_source", sa.JSON(), nullable=False, default=dict),
)
sa.Table(
    "cases",
    old,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("subject_kind", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("source", sa.String(255), nullable=False, server_default=""),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("last_severity", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False, server_default=""),
    sa.Column("pool", sa.String(128), nullable=False, server_default=""),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("numerator", sa.Integer()),
    sa.Column("denominator", sa.Integer()),
    sa.Column("window_seconds", sa.Integer()),
    sa.Column("evidence", sa.JSON(), nullable=False, default=dict),
    sa.Column("samples", sa.JSON(), nullable=False, default=list),
    sa.Column("digest", sa.String(64), nullable=False, server_default=""),
    sa.Column("opened_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen_at", UtcDateTime(), nullable=False),
    sa.Column("acknowledged_at", UtcDateTime()),
    sa.Column("resolved_at", UtcDateTime()),
    sa.Column("clear_since", UtcDateTime()),
    sa.Column("resolution", sa.String(16)),
    sa.Index(
        "uq_case_active",
        "rule",
        "subject",
        "source",
        unique=True,
        postgresql_where=sa.text("state != 'resolved'"),
        sqlite_where=sa.text("state != 'resolved'"),
    ),
)

ZONES = ("bl.example", "bl2.example")
IPS = [f"10.0.0.{i}" for i in range(64)]
LISTED = {("10.0.0.5", "bl.example"), ("10.0.0.6", "bl.example"), ("10.0.0.9", "bl2.example")}
DELISTED_WITH_CASE = ("10.0.0.7", "bl.example")  # delisted an hour ago, its case still open
DELISTED = ("10.0.0.8", "bl.example")  # delisted, case resolved
PENDING_OK = ("10.0.0.11", "bl2.example")  # ok, then a timeout on the last sweep
PENDING_PROBLEM = ("10.0.0.6", "bl.example")


def listing(target: str, zone: str) -> dict[str, Any]:
    return {"zone": zone, "codes": ["127.0.0.2"], "meaning": "spam", "reason": "r", "delist": ""}


def fill(url: str) -> None:
    """Two sweeps' worth of rows, written the old way (every pair a row)."""
    engine = sa.create_engine(engine_url(url))
    old.create_all(engine)
    t = {name: old.tables[name] for name in old.tables}
    state, rows = [], []
    for ip in IPS:
        for zone in ZONES:
            key = (ip, zone)
            problem = key in LISTED
            was = key in (DELISTED_WITH_CASE, DELISTED)
            state.append(
                {
                    "target": ip, "check": "dnsbl", "source": zone,
                    "status": "problem" if problem else "ok",
                    "severity": "high" if problem else None,
                    "detail": f"listed on {zone}: spam" if problem else "not listed",
                    "data": listing(ip, zone) if problem else {"zone": zone, "codes": []},
                    "pool": "p1", "customer": "acme", "checked_at": T0 + H,
                    "changed_at": T0 + H if was else T0,
                    "last_unknown_at": T0 + H + dt.timedelta(minutes=5)
                    if key in (PENDING_OK, PENDING_PROBLEM) else None,
                    "last_error": "timeout" if key in (PENDING_OK, PENDING_PROBLEM) else None,
                }
            )  # fmt: skip
            if problem or was:
                rows.append(
                    {
                        "target": ip, "check": "dnsbl", "source": zone, "started_at": T0,
                        "last_seen_at": T0 + (0 * H if was else H),
                        "ended_at": T0 + H if was else None, "data": listing(ip, zone),
                    }
                )  # fmt: skip
    for domain, status in (("example.com", "ok"), ("example.net", "problem")):
        state.append(
            {
                "target": domain, "check": "spf", "source": "", "status": status,
                "severity": "high" if status == "problem" else None, "detail": "spf",
                "data": {}, "pool": "", "customer": "acme", "checked_at": T0 + H,
                "changed_at": T0, "last_unknown_at": None, "last_error": None,
            }
        )  # fmt: skip
    changes = [
        {"at": T0, "target": ip, "check": "dnsbl", "source": zone, "old_status": None,
         "new_status": "problem", "severity": "high", "detail": "listed"}
        for ip, zone in sorted(LISTED | {DELISTED_WITH_CASE, DELISTED})
    ] + [
        {"at": T0 + H, "target": ip, "check": "dnsbl", "source": zone,
         "old_status": "problem", "new_status": "ok", "severity": None, "detail": "not listed"}
        for ip, zone in (DELISTED_WITH_CASE, DELISTED)
    ]  # fmt: skip
    case = {
        "rule": "dnsbl", "type": "blocklisting", "subject_kind": "ip", "severity": "high",
        "last_severity": "high", "opened_at": T0, "updated_at": T0, "last_seen_at": T0,
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(t["check_state"].insert(), state)
        conn.execute(t["problem_episodes"].insert(), rows)
        conn.execute(t["state_changes"].insert(), changes)
        conn.execute(
            t["sweep_runs"].insert(),
            [
                {"sweep": "dnsbl", "started_at": T0 + H, "duration": 1.5, "targets": 64,
                 "ok": 121, "problem": 3, "unknown": 2, "unknown_by_source": {"bl.example": 1}},
            ],
        )  # fmt: skip
        conn.execute(
            t["cases"].insert(),
            [
                case | {"subject": DELISTED_WITH_CASE[0], "source": "bl.example", "state": "open"},
                case | {"subject": DELISTED[0], "source": "bl.example", "state": "resolved"},
            ],
        )
    engine.dispose()


def reads(store: Store) -> dict[str, Any]:
    """Everything that is read from the check state: must read the same after the upgrade."""
    with store.begin() as tx:
        episodes = [
            tuple(r)
            for r in tx.execute(sa.select(problem_episodes).order_by(problem_episodes.c.id))
        ]
        changes = [
            tuple(r) for r in tx.execute(sa.select(state_changes).order_by(state_changes.c.id))
        ]
        states = {
            key: state_of(tx, key[0], "dnsbl", key[1])
            for key in (*LISTED, DELISTED_WITH_CASE, PENDING_OK)
        }
        states[("example.com", "spf")] = state_of(tx, "example.com", "spf", "")
    return {
        "problems": current_problems(store),
        "episodes": episodes,
        "changes": changes,
        "states": states,
        "last_sweep": last_sweep(store, "dnsbl"),
    }


def test_the_old_schema_is_migrated_and_reads_the_same(store_url: str) -> None:
    fill(store_url)
    engine = sa.create_engine(engine_url(store_url))
    before = reads(Store(engine, store_url))  # today's code path on today's schema
    engine.dispose()

    store = Store.open(store_url)
    try:
        with store.engine.connect() as conn:
            assert current_version(conn) == LATEST
        assert reads(store) == before
        with store.begin() as tx:
            kept = {(r.target, r.source) for r in tx.execute(sa.select(check_state))}
            coverage = tx.execute(sa.select(sweep_coverage).order_by(sweep_coverage.c.source))
            coverage = {r.source: r for r in coverage}
        # the clean ok rows of dnsbl are gone; problems, pending unknowns, the ok row an open
        # case reads and every other check's rows stay
        assert kept == {
            *LISTED,
            DELISTED_WITH_CASE,
            PENDING_OK,
            ("example.com", ""),
            ("example.net", ""),
        }
        assert coverage["bl.example"].scope == "migrated"
        assert coverage["bl.example"].covered == 64 and coverage["bl.example"].listed == 2
        assert coverage["bl.example"].unknown == 1 and coverage["bl.example"].pools == ["p1"]
        assert coverage["bl.example"].started_at == T0 + H
        assert coverage["bl2.example"].listed == 1
    finally:
        store.close()

    # opening again changes nothing
    store = Store.open(store_url)
    try:
        assert reads(store) == before
        with store.begin() as tx:
            assert tx.execute(sa.select(sa.func.count()).select_from(sweep_coverage)).scalar() == 2
    finally:
        store.close()


def test_sweeps_go_on_on_a_migrated_store(store_url: str) -> None:
    fill(store_url)
    store = Store.open(store_url)
    try:
        inv = Inventory.from_config(
            InventoryConfig.model_validate(
                {"pools": [{"name": "p1", "cidrs": ["10.0.0.0/26"], "customer": "acme"}]}
            )
        )
        at = T0 + 2 * H
        results = [  # 10.0.0.5 is delisted, 10.0.0.20 newly listed, the rest as before
            CheckResult(ip, "dnsbl", zone, "problem", f"listed on {zone}: spam", None, "high",
                        listing(ip, zone))
            for ip, zone in sorted((LISTED - {("10.0.0.5", "bl.example")})
                                   | {("10.0.0.20", "bl2.example")})
        ]  # fmt: skip
        rec = StoreRecorder(store, inv)
        summary = SweepSummary("dnsbl", at, targets=len(IPS))
        chunk = Chunk(
            "dnsbl",
            at,
            IPS,
            results,
            {
                z: SourceCount(("ip4",), len(IPS), sum(r.source == z for r in results))
                for z in ZONES
            },
        )
        rec.record_chunk(chunk, at)
        summary.add_chunk(chunk)
        rec.finish(summary)
        shown, total = rec.take_changes("dnsbl")
        assert {(c.target, c.old_status, c.new_status) for c in shown} == {
            ("10.0.0.5", "problem", "ok"),
            ("10.0.0.20", None, "problem"),
        }
        assert {(p.target, p.source) for p in current_problems(store, ["dnsbl"])} == (
            LISTED - {("10.0.0.5", "bl.example")}
        ) | {("10.0.0.20", "bl2.example")}
        with store.begin() as tx:
            ended = tx.execute(
                sa.select(problem_episodes.c.ended_at).where(
                    problem_episodes.c.target == "10.0.0.5"
                )
            ).scalar_one()
            case_row = state_of(tx, DELISTED_WITH_CASE[0], "dnsbl", DELISTED_WITH_CASE[1])
            pending = state_of(tx, PENDING_OK[0], "dnsbl", PENDING_OK[1])
        assert ended == at
        # the ok row the open case reads was checked again by this sweep
        assert case_row is not None and case_row.status == "ok" and case_row.checked_at == at
        # the pending unknown was answered ok: it was ok before, so the row is gone
        assert pending is None
        assert {c.source for c in last_coverage(store, "dnsbl")} == set(ZONES)
    finally:
        store.close()

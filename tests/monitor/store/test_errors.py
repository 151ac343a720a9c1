"""Store errors at the boundary: the store's public functions raise repmon's errors
(``StoreUnavailable``, ``StoreConflict``, ``StoreError``), never a SQLAlchemy exception, and
their messages never carry the password.

A dead PostgreSQL is a URL nothing listens on; a lost connection is a real session killed on
the local PostgreSQL; a locked SQLite is one another connection holds ``BEGIN EXCLUSIVE`` on;
a read-only SQLite is opened with ``mode=ro``.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from checks.errors import StoreConflict, StoreError, StoreUnavailable
from checks.result import CheckResult
from collectors.feedback.config import FeedbackConfig
from collectors.feedback.model import Report
from collectors.feedback.pipeline import Preparer
from collectors.sweep import SweepSummary
from collectors.targets import Owner
from collectors.volume.sent import sent_count
from monitor.daemon.leader import Leadership
from monitor.store import Store
from monitor.store import cases as store_cases
from monitor.store import checks as store_checks
from monitor.store import feedback as store_feedback
from monitor.store import jobs as store_jobs
from monitor.store import measures as store_measures
from monitor.store import outbox as store_outbox
from monitor.store import retention as store_retention
from monitor.store import series as store_series
from monitor.store import volume as store_volume
from monitor.store.db import engine_url, safe_url
from monitor.store.leases import AdvisoryLock

T0 = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
PASSWORD = "s3cret-Pa55"
#: nothing listens on port 1 of the loopback: connection refused at once
DEAD_PG = f"postgresql://repmon:{PASSWORD}@127.0.0.1:1/test"


class NoTargets:
    def ips(self) -> Iterator[str]:
        return iter(())

    def domains(self) -> list[str]:
        return []

    def owner_of_ip(self, ip: str) -> Owner | None:
        return None

    def owner_of_domain(self, domain: str) -> Owner | None:
        return None

    def domains_of_ip(self, ip: str) -> list[str]:
        return []

    def dkim_selectors(self, domain: str) -> list[str]:
        return []


def prepared(n: int = 1) -> list[Any]:
    preparer = Preparer(NoTargets(), FeedbackConfig())
    return [preparer.report(Report(kind="other"), f"{i:064x}", T0) for i in range(n)]


def _in_tx(fn: Callable[[Any], object]) -> Callable[[Store], object]:
    """A function that runs inside a store transaction, as the rules and the queue use them."""

    def run(store: Store) -> object:
        with store.begin() as tx:
            return fn(tx)

    return run


def _evaluation(store: Store) -> object:
    with store_cases.evaluation(store) as tx:
        return store_cases.count_active(tx)


#: every public function of the store that writes, each called once
WRITERS: dict[str, Callable[[Store], object]] = {
    "checks.record_results": lambda s: store_checks.record_results(
        s, [CheckResult("192.0.2.1", "dnsbl", "bl.example", "problem", "listed")], T0
    ),
    "checks.record_sweep": lambda s: store_checks.record_sweep(s, SweepSummary("dnsbl", T0)),
    "checks.record_chunk": lambda s: store_checks.record_chunk(
        s,
        "dnsbl",
        [CheckResult("192.0.2.1", "dnsbl", "bl.example", "problem", "listed")],
        T0,
        candidates=(),
        asked=lambda _t, _s: True,
        owner=lambda _t: ("", ""),
    ),
    "checks.forget_settled": lambda s: store_checks.forget_settled(s, "dnsbl", T0),
    "feedback.store_messages": lambda s: store_feedback.store_messages(s, prepared()),
    "volume.add_sent": lambda s: store_volume.add_sent(s, [sent_count("192.0.2.1", 5, T0)]),
    "jobs.note_job": lambda s: store_jobs.note_job(s, "dnsbl", "i1", start=T0),
    "retention.delete_expired": lambda s: store_retention.delete_expired(s, T0, T0),
    "cases.evaluation": _evaluation,
    "cases.insert_case": _in_tx(
        lambda tx: store_cases.insert_case(
            tx,
            {
                "rule": "dnsbl",
                "type": "blocklisting",
                "subject_kind": "ip",
                "subject": "192.0.2.1",
                "state": "open",
                "severity": "high",
                "last_severity": "high",
                "opened_at": T0,
                "updated_at": T0,
                "last_seen_at": T0,
            },
        )
    ),
}

#: every public function of the store that only reads
READERS: dict[str, Callable[[Store], object]] = {
    "checks.current_problems": store_checks.current_problems,
    "checks.last_sweep": lambda s: store_checks.last_sweep(s, "dnsbl"),
    "checks.known_targets": lambda s: store_checks.known_targets(s, "dnsbl"),
    "checks.clean_since": lambda s: store_checks.clean_since(s, "dnsbl"),
    "checks.last_coverage": lambda s: store_checks.last_coverage(s, "dnsbl"),
    "checks.problems_of_check": _in_tx(lambda tx: store_checks.problems_of_check(tx, "dnsbl")),
    "checks.state_of": _in_tx(lambda tx: store_checks.state_of(tx, "192.0.2.1", "dnsbl", "")),
    "feedback.stored_kinds": lambda s: store_feedback.stored_kinds(s, ["0" * 64]),
    "volume.sent_total": lambda s: store_volume.sent_total(s, "192.0.2.1", T0, T0 + H),
    "measures.sent_per_source": _in_tx(lambda tx: store_measures.sent_per_source(tx, T0, T0)),
    "measures.dmarc_by_ip": _in_tx(lambda tx: store_measures.dmarc_by_ip(tx, T0, T0)),
    "measures.feedback_by_ip": _in_tx(
        lambda tx: store_measures.feedback_by_ip(tx, T0, T0, "bounce")
    ),
    "measures.bursts": _in_tx(lambda tx: store_measures.bursts(tx, T0, T0, ["blocked"])),
    "measures.feedback_samples": _in_tx(
        lambda tx: store_measures.feedback_samples(tx, T0, T0, 5, kind="bounce")
    ),
    "series.last_ids": store_series.last_ids,
    "series.events_after": _in_tx(lambda tx: store_series.events_after(tx, 0)),
    "cases.find_cases": store_cases.find_cases,
    "cases.case_with_events": lambda s: store_cases.case_with_events(s, 1),
    "cases.open_case_counts": store_cases.open_case_counts,
    "cases.active_cases": _in_tx(store_cases.active_cases),
    "outbox.due_notices": lambda s: store_outbox.due_notices(s, T0, 10),
    "outbox.pending_notices": store_outbox.pending_notices,
    "jobs.job_table": store_jobs.job_table,
}


def test_safe_url_hides_the_password() -> None:
    assert PASSWORD not in safe_url(DEAD_PG)
    assert "***" in safe_url(DEAD_PG)
    assert safe_url("sqlite:///repmon.db") == "sqlite:///repmon.db"


def test_dead_postgresql_url_cannot_be_opened() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        Store.open(DEAD_PG)
    assert PASSWORD not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
    assert caught.value.__cause__ is None  # the driver's exception is not chained either


def test_no_sqlalchemy_error_escapes_a_dead_postgresql() -> None:
    """A store whose server went away: every public function raises StoreUnavailable."""
    store = Store(sa.create_engine(engine_url(DEAD_PG)), DEAD_PG)
    try:
        for name, fn in {**WRITERS, **READERS}.items():
            with pytest.raises(StoreUnavailable) as caught:
                fn(store)
            assert PASSWORD not in str(caught.value), name
        # the leader lock's dedicated session: the same error; leadership just ends
        with pytest.raises(StoreUnavailable):
            AdvisoryLock(store, 42).try_take()
        leadership = Leadership(store, "i1")
        assert leadership.refresh() is False
        leadership.release()
    finally:
        store.close()


def _locked_store(tmp_path: Path) -> tuple[Store, sqlite3.Connection]:
    path = tmp_path / "repmon.db"
    Store.open(f"sqlite:///{path}").close()
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    return Store.open(f"sqlite:///{path}?timeout=0.05"), holder


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_locked_sqlite_is_unavailable(tmp_path: Path, name: str) -> None:
    store, holder = _locked_store(tmp_path)
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            WRITERS[name](store)
    finally:
        holder.rollback()
        holder.close()
        store.close()


def test_locked_sqlite_recovers_when_released(tmp_path: Path) -> None:
    store, holder = _locked_store(tmp_path)
    try:
        with pytest.raises(StoreUnavailable):
            store_volume.add_sent(store, [sent_count("192.0.2.1", 5, T0)])
        holder.rollback()
        assert store_volume.add_sent(store, [sent_count("192.0.2.1", 5, T0)]) == 1
        assert store_volume.sent_total(store, "192.0.2.1", T0, T0 + H) == {"api": 5}
    finally:
        holder.close()
        store.close()


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_readonly_sqlite_is_unavailable(tmp_path: Path, name: str) -> None:
    path = tmp_path / "repmon.db"
    Store.open(f"sqlite:///{path}").close()
    store = Store.open(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        if name == "cases.evaluation":
            WRITERS[name](store)  # takes the write lock, writes nothing: SQLite lets it be
            return
        with pytest.raises(StoreUnavailable, match="readonly"):
            WRITERS[name](store)
        for reader in READERS.values():  # reading still works
            reader(store)
    finally:
        store.close()


def test_unique_key_collision_is_a_conflict(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    try:
        with pytest.raises(StoreConflict), store.begin() as tx:
            # the same case key twice while not resolved: the partial unique index refuses
            for _ in range(2):
                store_cases.insert_case(
                    tx,
                    {
                        "rule": "dnsbl",
                        "type": "blocklisting",
                        "subject_kind": "ip",
                        "subject": "192.0.2.1",
                        "state": "open",
                        "severity": "high",
                        "last_severity": "high",
                        "opened_at": T0,
                        "updated_at": T0,
                        "last_seen_at": T0,
                    },
                )
    finally:
        store.close()


def test_other_database_errors_are_store_errors(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    try:
        with pytest.raises(StoreError) as caught, store.begin() as tx:
            tx.exec_driver_sql("SELECT ?, ?", (1,))  # the driver's ProgrammingError
        assert not isinstance(caught.value, StoreUnavailable | StoreConflict)
        assert isinstance(caught.value.__cause__, sa.exc.ProgrammingError)  # kept for the log
    finally:
        store.close()


@pytest.mark.postgres
def test_lost_postgresql_session_is_unavailable_then_recovers(pg_url: str) -> None:
    store = Store.open(pg_url)
    killer = sa.create_engine(engine_url(pg_url))
    try:
        with store.begin() as tx:
            pid = tx.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with killer.begin() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(StoreUnavailable):
            store_checks.current_problems(store)
        assert store_checks.current_problems(store) == []  # a new connection from the pool
    finally:
        killer.dispose()
        store.close()


@pytest.mark.postgres
def test_lost_lock_session_is_unavailable_and_the_lock_can_be_taken_again(pg_url: str) -> None:
    # a key of this test's own: the daemon's leader lock may be held by another test run
    key = 0x7265706D0000 + os.getpid() % 0xFFFF
    store = Store.open(pg_url)
    killer = sa.create_engine(engine_url(pg_url))
    lock = AdvisoryLock(store, key)
    try:
        assert lock.try_take() is True
        other = AdvisoryLock(store, key)
        assert other.try_take() is False  # another session: taken
        other.release()
        with killer.begin() as conn:
            pids = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = :hi AND objid = :lo"
                ),
                {"hi": key >> 32, "lo": key & 0xFFFFFFFF},
            ).scalars()
            for pid in list(pids):
                conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(StoreUnavailable):
            lock.confirm()
        assert lock.try_take() is True  # on a new session
    finally:
        lock.release()
        killer.dispose()
        store.close()

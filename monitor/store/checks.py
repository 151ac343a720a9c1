"""Check state: current state per (target, check, source), state changes, problem episodes,
and the record of finished sweeps.

``unknown`` never changes a recorded state: it only notes when the last
unknown happened and why. An episode runs from the first ``problem`` to the
first ``ok`` after it (for a blocklist: first seen listed .. delisted at).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from checks.result import OK, PROBLEM, UNKNOWN, CheckResult
from collectors.sweep import SweepSummary
from monitor.store.db import Store, Tx
from monitor.store.schema import check_state, problem_episodes, state_changes, sweep_runs


@dataclass(frozen=True, slots=True)
class StateChange:
    target: str
    check: str
    source: str
    old_status: str | None
    new_status: str
    at: dt.datetime


#: targets per IN (...) list: well under SQLite's limit on bound parameters
_IN_BATCH = 900


def _batches(targets: set[str]) -> list[list[str]]:
    """The targets of one call in IN-list sized pieces: a sweep records chunk by chunk, and
    each chunk reads back only its own targets' rows, not the whole table."""
    ordered = sorted(targets)
    return [ordered[i : i + _IN_BATCH] for i in range(0, len(ordered), _IN_BATCH)]


def _data(r: CheckResult) -> dict[str, Any]:
    d = dict(r.fields)
    if r.error:
        d["error"] = r.error
    return d


def record_results(
    store: Store,
    results: Sequence[CheckResult],
    at: dt.datetime,
    owners: Mapping[str, tuple[str, str]] | None = None,
) -> list[StateChange]:
    """Record one run's results; return the ok<->problem changes it caused.

    ``owners`` maps a target to its (pool, customer). ``unknown`` results
    leave the recorded status alone.
    """
    owners = owners or {}
    changes: list[StateChange] = []
    by_check: dict[str, list[CheckResult]] = {}
    for r in results:
        by_check.setdefault(r.check, []).append(r)
    with store.begin() as conn:
        for check, rows in by_check.items():
            current = {
                (row.target, row.source): row
                for batch in _batches({r.target for r in rows})
                for row in conn.execute(
                    sa.select(
                        check_state.c.target,
                        check_state.c.source,
                        check_state.c.status,
                    ).where(check_state.c.check == check, check_state.c.target.in_(batch))
                )
            }
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            unknowns: list[dict[str, Any]] = []
            for r in rows:
                pool, customer = owners.get(r.target, ("", ""))
                old = current.get((r.target, r.source))
                if r.status == UNKNOWN:
                    if old is not None:
                        unknowns.append(
                            {"k_t": r.target, "k_s": r.source, "at": at, "err": r.error}
                        )
                    continue
                values = {
                    "status": r.status,
                    "severity": r.severity,
                    "detail": r.detail,
                    "data": _data(r),
                    "pool": pool,
                    "customer": customer,
                    "checked_at": at,
                }
                if old is None:
                    inserts.append(
                        {"target": r.target, "check": check, "source": r.source, "changed_at": at}
                        | values
                    )
                    if r.status == PROBLEM:
                        changes.append(StateChange(r.target, check, r.source, None, r.status, at))
                else:
                    changed = old.status != r.status
                    updates.append(
                        {"k_t": r.target, "k_s": r.source}
                        | values
                        | {"changed_at": at if changed else None}
                    )
                    if changed:
                        changes.append(
                            StateChange(r.target, check, r.source, old.status, r.status, at)
                        )
            if inserts:
                conn.execute(check_state.insert(), inserts)
            if updates:
                _update_states(conn, check, updates)
            if unknowns:
                conn.execute(
                    check_state.update()
                    .where(check_state.c.check == check)
                    .where(check_state.c.target == sa.bindparam("k_t"))
                    .where(check_state.c.source == sa.bindparam("k_s"))
                    .values(last_unknown_at=sa.bindparam("at"), last_error=sa.bindparam("err")),
                    unknowns,
                )
        _record_history(conn, results, changes, at)
    return changes


def _update_states(conn: sa.Connection, check: str, updates: list[dict[str, Any]]) -> None:
    base = (
        check_state.update()
        .where(check_state.c.check == check)
        .where(check_state.c.target == sa.bindparam("k_t"))
        .where(check_state.c.source == sa.bindparam("k_s"))
    )
    cols = ("status", "severity", "detail", "data", "pool", "customer", "checked_at")
    same = [u for u in updates if u["changed_at"] is None]
    moved = [u for u in updates if u["changed_at"] is not None]
    if same:
        conn.execute(base.values({c: sa.bindparam(c) for c in cols}), [_strip(u) for u in same])
    if moved:
        conn.execute(
            base.values({c: sa.bindparam(c) for c in (*cols, "changed_at")}),
            moved,
        )


def _strip(u: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in u.items() if k != "changed_at"}


def _record_history(
    conn: sa.Connection,
    results: Sequence[CheckResult],
    changes: list[StateChange],
    at: dt.datetime,
) -> None:
    by_key = {r.key: r for r in results}
    if changes:
        conn.execute(
            state_changes.insert(),
            [
                {
                    "at": c.at,
                    "target": c.target,
                    "check": c.check,
                    "source": c.source,
                    "old_status": c.old_status,
                    "new_status": c.new_status,
                    "severity": by_key[(c.target, c.check, c.source)].severity,
                    "detail": by_key[(c.target, c.check, c.source)].detail,
                }
                for c in changes
            ],
        )
    problems = [r for r in results if r.status == PROBLEM]
    oks = {r.key for r in results if r.status == OK}
    open_eps = {
        (row.target, row.check, row.source): row.id
        for batch in _batches({r.target for r in results})
        for row in conn.execute(
            sa.select(
                problem_episodes.c.id,
                problem_episodes.c.target,
                problem_episodes.c.check,
                problem_episodes.c.source,
            ).where(problem_episodes.c.ended_at.is_(None), problem_episodes.c.target.in_(batch))
        )
    }
    new_eps = [
        {
            "target": r.target,
            "check": r.check,
            "source": r.source,
            "started_at": at,
            "last_seen_at": at,
            "data": _data(r),
        }
        for r in problems
        if r.key not in open_eps
    ]
    if new_eps:
        conn.execute(problem_episodes.insert(), new_eps)
    seen = [{"k": open_eps[r.key], "at": at, "d": _data(r)} for r in problems if r.key in open_eps]
    if seen:
        conn.execute(
            problem_episodes.update()
            .where(problem_episodes.c.id == sa.bindparam("k"))
            .values(last_seen_at=sa.bindparam("at"), data=sa.bindparam("d")),
            seen,
        )
    ended = [{"k": i, "at": at} for key, i in open_eps.items() if key in oks]
    if ended:
        conn.execute(
            problem_episodes.update()
            .where(problem_episodes.c.id == sa.bindparam("k"))
            .values(ended_at=sa.bindparam("at")),
            ended,
        )


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem recorded now: what, since when, last seen, with its stored data."""

    target: str
    check: str
    source: str
    severity: str | None
    detail: str
    data: dict[str, Any]
    pool: str
    customer: str
    since: dt.datetime
    checked_at: dt.datetime
    last_unknown_at: dt.datetime | None


def current_problems(store: Store, checks: Iterable[str] | None = None) -> list[Problem]:
    """Every (target, check, source) whose recorded status is ``problem``."""
    q = sa.select(check_state).where(check_state.c.status == PROBLEM)
    if checks is not None:
        q = q.where(check_state.c.check.in_(list(checks)))
    q = q.order_by(check_state.c.target, check_state.c.check, check_state.c.source)
    with store.begin() as conn:
        return [
            Problem(
                target=row.target,
                check=row.check,
                source=row.source,
                severity=row.severity,
                detail=row.detail,
                data=dict(row.data or {}),
                pool=row.pool,
                customer=row.customer,
                since=row.changed_at,
                checked_at=row.checked_at,
                last_unknown_at=row.last_unknown_at,
            )
            for row in conn.execute(q)
        ]


@dataclass(frozen=True, slots=True)
class CheckState:
    """The recorded state of one (target, check, source), as the rules read it."""

    target: str
    check: str
    source: str
    status: str
    severity: str | None
    detail: str
    data: dict[str, Any]
    pool: str
    customer: str
    checked_at: dt.datetime
    changed_at: dt.datetime
    last_unknown_at: dt.datetime | None
    last_error: str | None


def _state(row: Any) -> CheckState:
    return CheckState(
        target=row.target,
        check=row.check,
        source=row.source,
        status=row.status,
        severity=row.severity,
        detail=row.detail,
        data=dict(row.data or {}),
        pool=row.pool,
        customer=row.customer,
        checked_at=row.checked_at,
        changed_at=row.changed_at,
        last_unknown_at=row.last_unknown_at,
        last_error=row.last_error,
    )


def problems_of_check(tx: Tx, check: str) -> list[CheckState]:
    """Every (target, source) whose recorded status for ``check`` is ``problem``."""
    q = sa.select(check_state).where(check_state.c.check == check, check_state.c.status == PROBLEM)
    return [_state(row) for row in tx.execute(q)]


def state_of(tx: Tx, target: str, check: str, source: str) -> CheckState | None:
    """The recorded state of one (target, check, source); ``None`` when never answered."""
    row = tx.execute(
        sa.select(check_state).where(
            check_state.c.target == target,
            check_state.c.check == check,
            check_state.c.source == source,
        )
    ).first()
    return _state(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class SweepRun:
    """One finished sweep as recorded."""

    sweep: str
    started_at: dt.datetime
    duration: float
    targets: int
    ok: int
    problem: int
    unknown: int
    unknown_by_source: dict[str, int]


def record_sweep(store: Store, summary: SweepSummary) -> None:
    """Record a finished sweep: when, how long, what came out."""
    with store.begin() as conn:
        conn.execute(
            sweep_runs.insert().values(
                sweep=summary.sweep,
                started_at=summary.started,
                duration=summary.duration,
                targets=summary.targets,
                ok=summary.ok,
                problem=summary.problem,
                unknown=summary.unknown,
                unknown_by_source=summary.unknown_by_source,
            )
        )


def last_sweep(store: Store, sweep: str) -> SweepRun | None:
    """The latest recorded run of ``sweep`` (``dnsbl``, ``hygiene`` …), ``None`` if none."""
    with store.begin() as conn:
        row = conn.execute(
            sa.select(sweep_runs)
            .where(sweep_runs.c.sweep == sweep)
            .order_by(sweep_runs.c.started_at.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    return SweepRun(
        sweep=row.sweep,
        started_at=row.started_at,
        duration=row.duration,
        targets=row.targets,
        ok=row.ok,
        problem=row.problem,
        unknown=row.unknown,
        unknown_by_source=dict(row.unknown_by_source or {}),
    )

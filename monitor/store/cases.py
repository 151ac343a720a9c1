"""Cases and their timeline: the queries of the case lifecycle and of the queue.

A case is keyed by (rule, subject, source); at most one per key is not ``resolved`` (a
partial unique index, see :mod:`monitor.store.schema`). The evaluation runs in one
transaction (:func:`evaluation`), serialised between instances; the functions that take a
:data:`~monitor.store.db.Tx` run inside the caller's transaction, the others open their own.
Case values are given and returned by column name (``monitor.cases`` owns their meaning).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from checks.result import SEVERITIES
from monitor.store.db import Store, Tx
from monitor.store.schema import (
    ACKNOWLEDGED,
    OPEN,
    REOPENED,
    RESOLVED,
    STATES,
    case_events,
    cases,
)

__all__ = [
    "ACKNOWLEDGED",
    "LOCK_KEY",
    "OPEN",
    "REOPENED",
    "RESOLVED",
    "STATES",
    "CaseEventRow",
    "CaseRow",
    "active_cases",
    "active_keys",
    "add_case_event",
    "case_event",
    "case_row",
    "case_with_events",
    "count_active",
    "evaluation",
    "find_cases",
    "insert_case",
    "lock_case",
    "open_case_counts",
    "recently_resolved",
    "update_case",
    "update_cases",
]

#: pg_advisory_xact_lock key of case evaluation ("repmon" + 1)
LOCK_KEY = 0x7265706D6F6E01


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One row of ``cases``."""

    id: int
    rule: str
    type: str
    subject_kind: str
    subject: str
    source: str
    state: str
    severity: str
    last_severity: str
    summary: str
    pool: str
    customer: str
    numerator: int | None
    denominator: int | None
    window_seconds: int | None
    evidence: dict[str, Any]
    samples: list[Any]
    digest: str
    opened_at: dt.datetime
    updated_at: dt.datetime
    last_seen_at: dt.datetime
    acknowledged_at: dt.datetime | None
    resolved_at: dt.datetime | None
    clear_since: dt.datetime | None
    resolution: str | None


@dataclass(frozen=True, slots=True)
class CaseEventRow:
    """One row of ``case_events``: an entry of a case's timeline."""

    id: int
    case_id: int
    at: dt.datetime
    kind: str
    severity: str | None
    text: str
    actor: str
    data: dict[str, Any]


def _case(row: Any) -> CaseRow:
    m = row._mapping
    return CaseRow(
        **{k: m[k] for k in CaseRow.__slots__ if k not in ("evidence", "samples")},
        evidence=dict(m["evidence"] or {}),
        samples=list(m["samples"] or []),
    )


def _event(row: Any) -> CaseEventRow:
    return CaseEventRow(
        row.id, row.case_id, row.at, row.kind, row.severity, row.text, row.actor, dict(row.data)
    )


@contextmanager
def evaluation(store: Store) -> Iterator[Tx]:
    """The transaction of one rule evaluation, one evaluator at a time: on PostgreSQL under a
    transaction-scoped advisory lock, on SQLite started ``BEGIN IMMEDIATE`` (one writer)."""
    with store.begin() as tx:
        if store.dialect == "postgresql":
            tx.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        elif store.dialect == "sqlite":
            tx.exec_driver_sql("BEGIN IMMEDIATE")
        yield tx


# --- the lifecycle (inside the evaluation's transaction) ------------------------------------


def active_cases(tx: Tx) -> list[CaseRow]:
    """Every case not resolved."""
    return [_case(r) for r in tx.execute(sa.select(cases).where(cases.c.state != RESOLVED))]


def active_keys(tx: Tx) -> set[tuple[str, str, str]]:
    """(rule, subject, source) of every case not resolved."""
    return {
        (r.rule, r.subject, r.source)
        for r in tx.execute(
            sa.select(cases.c.rule, cases.c.subject, cases.c.source).where(
                cases.c.state != RESOLVED
            )
        )
    }


def count_active(tx: Tx) -> int:
    """How many cases are not resolved."""
    q = sa.select(sa.func.count()).select_from(cases).where(cases.c.state != RESOLVED)
    return int(tx.execute(q).scalar_one())


def recently_resolved(
    tx: Tx, rule: str, subject: str, source: str, since: dt.datetime
) -> CaseRow | None:
    """The latest case of the key resolved at or after ``since`` (to reopen), if any."""
    row = tx.execute(
        sa.select(cases)
        .where(
            cases.c.rule == rule,
            cases.c.subject == subject,
            cases.c.source == source,
            cases.c.state == RESOLVED,
            cases.c.resolved_at >= since,
        )
        .order_by(cases.c.resolved_at.desc())
        .limit(1)
    ).first()
    return _case(row) if row is not None else None


def insert_case(tx: Tx, values: Mapping[str, Any]) -> int:
    """A new case with ``values`` (column -> value); returns its id."""
    inserted = tx.execute(cases.insert().values(dict(values))).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def update_case(tx: Tx, case_id: int, values: Mapping[str, Any]) -> None:
    """Set ``values`` (column -> value) on one case."""
    tx.execute(cases.update().where(cases.c.id == case_id).values(dict(values)))


def update_cases(tx: Tx, rows: Sequence[Mapping[str, Any]]) -> None:
    """Set the same columns on many cases in one round trip; each row names its ``id``."""
    if not rows:
        return
    cols = [k for k in rows[0] if k != "id"]
    stmt = (
        cases.update()
        .where(cases.c.id == sa.bindparam("b_id"))
        .values({c: sa.bindparam(f"b_{c}") for c in cols})
    )
    tx.execute(stmt, [{f"b_{k}": v for k, v in r.items()} for r in rows])


def add_case_event(
    tx: Tx,
    case_id: int,
    at: dt.datetime,
    kind: str,
    text: str,
    *,
    severity: str | None = None,
    actor: str = "repmon",
    data: Mapping[str, Any] | None = None,
) -> int:
    """Append an entry to a case's timeline; returns its id."""
    inserted = tx.execute(
        case_events.insert().values(
            case_id=case_id,
            at=at,
            kind=kind,
            severity=severity,
            text=text,
            actor=actor,
            data=dict(data or {}),
        )
    ).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


# --- the queue ---------------------------------------------------------------------------


def _filtered(
    q: sa.Select[Any], state: str | None, severity: str | None, case_type: str | None
) -> sa.Select[Any]:
    if state is None:
        q = q.where(cases.c.state != RESOLVED)
    elif state != "all":
        q = q.where(cases.c.state == state)
    if severity is not None:
        q = q.where(cases.c.severity == severity)
    if case_type is not None:
        q = q.where(cases.c.type == case_type)
    return q


#: severity order in SQL: worst first
_SEVERITY_RANK = sa.case(
    *((cases.c.severity == name, rank) for rank, name in enumerate(SEVERITIES)),
    else_=len(SEVERITIES),
)


def find_cases(
    store: Store,
    state: str | None = None,
    severity: str | None = None,
    case_type: str | None = None,
    limit: int | None = 500,
) -> list[CaseRow]:
    """Cases worst first, then newest: ``state=None`` every state but resolved, ``"all"``
    every state, else that state; ``severity`` and ``case_type`` filter when given;
    ``limit=None`` returns all."""
    q = _filtered(sa.select(cases), state, severity, case_type)
    q = q.order_by(_SEVERITY_RANK, cases.c.id.desc())
    if limit is not None:
        q = q.limit(limit)
    with store.begin() as tx:
        return [_case(r) for r in tx.execute(q)]


def count_cases(
    store: Store,
    state: str | None = None,
    severity: str | None = None,
    case_type: str | None = None,
) -> int:
    """How many cases :func:`find_cases` would return without a limit."""
    q = _filtered(sa.select(sa.func.count()).select_from(cases), state, severity, case_type)
    with store.begin() as tx:
        return int(tx.execute(q).scalar() or 0)


def case_with_events(store: Store, case_id: int) -> tuple[CaseRow, list[CaseEventRow]] | None:
    """One case and its whole timeline, oldest event first; ``None`` when there is no such case."""
    with store.begin() as tx:
        row = case_row(tx, case_id)
        if row is None:
            return None
        events = [
            _event(e)
            for e in tx.execute(
                sa.select(case_events)
                .where(case_events.c.case_id == case_id)
                .order_by(case_events.c.id)
            )
        ]
    return row, events


def case_row(tx: Tx, case_id: int) -> CaseRow | None:
    """One case, ``None`` when there is no such case."""
    row = tx.execute(sa.select(cases).where(cases.c.id == case_id)).first()
    return _case(row) if row is not None else None


def lock_case(tx: Tx, case_id: int) -> CaseRow | None:
    """One case, locked until the transaction ends (PostgreSQL); ``None`` when absent."""
    row = tx.execute(sa.select(cases).where(cases.c.id == case_id).with_for_update()).first()
    return _case(row) if row is not None else None


def case_event(tx: Tx, event_id: int) -> CaseEventRow:
    """One timeline entry (it must exist)."""
    return _event(tx.execute(sa.select(case_events).where(case_events.c.id == event_id)).one())


def open_case_counts(store: Store) -> dict[tuple[str, str], int]:
    """(severity, type) -> number of cases not resolved (for the time series)."""
    q = (
        sa.select(cases.c.severity, cases.c.type, sa.func.count())
        .where(cases.c.state != RESOLVED)
        .group_by(cases.c.severity, cases.c.type)
    )
    with store.begin() as tx:
        return {(sev, typ): int(n) for sev, typ, n in tx.execute(q)}

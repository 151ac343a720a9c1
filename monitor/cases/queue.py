"""The case queue as the team works it: list, show, acknowledge, resolve, annotate.

Functions raise :class:`CaseNotFound` for an id that does not exist and
:class:`CaseStateError` for a move the lifecycle does not allow (acknowledging
a resolved case); both carry a message fit for the command line.
"""

from __future__ import annotations

import datetime as dt

from checks.errors import CaseNotFound, CaseStateError
from monitor.cases.model import Case, CaseEvent
from monitor.cases.timeline import add_event
from monitor.config import Config
from monitor.store import Store, Tx, utcnow
from monitor.store.cases import (
    ACKNOWLEDGED,
    RESOLVED,
    STATES,
    CaseEventRow,
    CaseRow,
    case_with_events,
    count_cases,
    find_cases,
    lock_case,
    open_case_counts,
    update_case,
)

__all__ = [
    "acknowledge",
    "add_note",
    "case_from_row",
    "event_from_row",
    "get_case",
    "list_cases",
    "open_case_counts",
    "resolve",
]


def case_from_row(row: CaseRow, events: list[CaseEvent] | None = None) -> Case:
    return Case(
        id=row.id,
        rule=row.rule,
        type=row.type,
        subject_kind=row.subject_kind,
        subject=row.subject,
        source=row.source,
        state=row.state,
        severity=row.severity,
        last_severity=row.last_severity,
        summary=row.summary,
        pool=row.pool,
        customer=row.customer,
        numerator=row.numerator,
        denominator=row.denominator,
        window_seconds=row.window_seconds,
        evidence=dict(row.evidence),
        samples=list(row.samples),
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        last_seen_at=row.last_seen_at,
        acknowledged_at=row.acknowledged_at,
        resolved_at=row.resolved_at,
        clear_since=row.clear_since,
        resolution=row.resolution,
        events=events or [],
    )


def list_cases(
    store: Store,
    state: str | None = None,
    severity: str | None = None,
    case_type: str | None = None,
    limit: int | None = 500,
) -> list[Case]:
    """Cases, worst first then newest; ``state=None`` means every state but resolved.

    ``state="all"`` lists every state; ``limit=None`` lists all. Raises ValueError for a
    state name that does not exist.
    """
    _check_state(state)
    return [case_from_row(r) for r in find_cases(store, state, severity, case_type, limit)]


def count_matching(
    store: Store,
    state: str | None = None,
    severity: str | None = None,
    case_type: str | None = None,
) -> int:
    """How many cases :func:`list_cases` would list without a limit."""
    _check_state(state)
    return count_cases(store, state, severity, case_type)


def _check_state(state: str | None) -> None:
    if state is not None and state != "all" and state not in STATES:
        raise ValueError(f"unknown state {state!r}; expected one of {', '.join(STATES)}, all")


def get_case(store: Store, case_id: int) -> Case:
    """One case with its whole timeline, oldest event first."""
    found = case_with_events(store, case_id)
    if found is None:
        raise CaseNotFound(f"no case {case_id}")
    row, events = found
    return case_from_row(row, [event_from_row(e) for e in events])


def event_from_row(e: CaseEventRow) -> CaseEvent:
    return CaseEvent(e.id, e.case_id, e.at, e.kind, e.severity, e.text, e.actor, dict(e.data))


def _locked(conn: Tx, case_id: int) -> CaseRow:
    row = lock_case(conn, case_id)
    if row is None:
        raise CaseNotFound(f"no case {case_id}")
    return row


def acknowledge(
    store: Store, case_id: int, actor: str = "cli", now: dt.datetime | None = None
) -> Case:
    """Mark a case as being worked on; acknowledging twice is harmless."""
    now = now or utcnow()
    with store.begin() as conn:
        row = _locked(conn, case_id)
        if row.state == RESOLVED:
            raise CaseStateError(f"case {case_id} is resolved")
        if row.state != ACKNOWLEDGED:
            update_case(
                conn, case_id, {"state": ACKNOWLEDGED, "acknowledged_at": now, "updated_at": now}
            )
            add_event(conn, case_id, now, "acknowledged", "acknowledged", actor=actor)
    return get_case(store, case_id)


def resolve(
    store: Store,
    case_id: int,
    note: str,
    config: Config | None = None,
    actor: str = "cli",
    now: dt.datetime | None = None,
) -> Case:
    """Resolve by hand with a note; webhooks hear of it when ``config`` is given.

    If the condition still holds, the next evaluation reopens the case (within
    ``rules.reopen_window``): resolving does not silence a live problem.
    """
    if not note.strip():
        raise CaseStateError("a note saying why is required to resolve a case")
    now = now or utcnow()
    with store.begin() as conn:
        row = _locked(conn, case_id)
        if row.state == RESOLVED:
            raise CaseStateError(f"case {case_id} is already resolved")
        update_case(
            conn,
            case_id,
            {"state": RESOLVED, "resolved_at": now, "resolution": "manual", "updated_at": now},
        )
        add_event(conn, case_id, now, "resolved", note, actor=actor, config=config)
    return get_case(store, case_id)


def add_note(
    store: Store, case_id: int, text: str, actor: str = "cli", now: dt.datetime | None = None
) -> Case:
    """Append a note to the timeline, in any state."""
    if not text.strip():
        raise CaseStateError("an empty note")
    now = now or utcnow()
    with store.begin() as conn:
        _locked(conn, case_id)
        add_event(conn, case_id, now, "note", text, actor=actor)
    return get_case(store, case_id)

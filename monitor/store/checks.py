"""Check state: state per (target, check, source), state changes, problem episodes, and the
record of finished sweeps and of what each covered.

``unknown`` never changes a recorded state: it only notes when the last
unknown happened and why. An episode runs from the first ``problem`` to the
first ``ok`` after it (for a blocklist: first seen listed .. delisted at).

Two ways in. :func:`record_results` keeps a row per result, ``ok`` included (hygiene, the
report collectors: few results). :func:`record_chunk` is for a bulk sweep (dnsbl): it gets
only the problems and unknowns of a chunk and keeps a row only for those, for the pairs whose
problem or unknown the chunk ended, and for ok rows a case still needs; a pair the sweep
covered and found clean has no row (``sweep_coverage`` records what was covered). Its cost
grows with the chunk's problems and unknowns and with the rows that exist for its targets,
never with its clean addresses.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from checks.result import OK, PROBLEM, UNKNOWN, CheckResult
from collectors.sweep import SweepSummary
from monitor.store.db import Store, Tx
from monitor.store.schema import (
    RESOLVED,
    cases,
    check_state,
    problem_episodes,
    state_changes,
    sweep_coverage,
    sweep_runs,
)


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
    owners = owners if owners is not None else {}
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


# --- bulk sweeps: rows only for problems and unknowns ---------------------------------------

#: the ``status`` of a bulk-sweep row that has never had a known answer (made by an unknown)
NEVER_KNOWN = UNKNOWN


@dataclass(slots=True)
class ChunkOutcome:
    """What :func:`record_chunk` did, for the time series and the summary."""

    changes: list[StateChange] = field(default_factory=list)
    #: every problem of the chunk (each is recorded)
    listed: list[CheckResult] = field(default_factory=list)
    #: the unknowns that have a row (an unknown of a quiet source without a row has none)
    unknown: list[CheckResult] = field(default_factory=list)
    #: (target, source) answered ok after a problem or an unknown: their row turned ok or went
    cleared: list[tuple[str, str]] = field(default_factory=list)
    #: (target, source, last known clean) of new listings whose last clean answer is known
    first_listed: list[tuple[str, str, dt.datetime]] = field(default_factory=list)
    #: targets that got a row
    new_targets: set[str] = field(default_factory=set)


def known_targets(store: Store, check: str) -> set[str]:
    """Every target that has a row for ``check`` (for a bulk sweep: the few not plainly ok)."""
    with store.begin() as conn:
        q = sa.select(check_state.c.target).where(check_state.c.check == check).distinct()
        return set(conn.execute(q).scalars())


def _keyed_update(check: str) -> Any:
    return (
        check_state.update()
        .where(check_state.c.check == check)
        .where(check_state.c.target == sa.bindparam("k_t"))
        .where(check_state.c.source == sa.bindparam("k_s"))
    )


def _among(conn: sa.Connection, column: Any, values: Iterable[Any]) -> list[tuple[Any, list[Any]]]:
    """Conditions ``column IN values`` to run one by one, each with its values. The values go
    as one parameter, so that no statement of thousands of parameters is rendered per call:
    on PostgreSQL an array (``= ANY``), on SQLite a JSON array read by ``json_each`` (both
    searched through the key's index); on a SQLite without ``json_each``, IN lists of at most
    ``_IN_BATCH``."""
    ordered = sorted(set(values))
    if not ordered:
        return []
    if conn.dialect.name == "postgresql":
        kind = sa.Integer if isinstance(ordered[0], int) else sa.Text
        return [(column == sa.any_(sa.bindparam(None, ordered, type_=ARRAY(kind))), ordered)]
    if conn.dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 38):
        each = sa.func.json_each(sa.bindparam(None, json.dumps(ordered))).table_valued("value")
        return [(column.in_(sa.select(each.c.value)), ordered)]
    parts = [ordered[i : i + _IN_BATCH] for i in range(0, len(ordered), _IN_BATCH)]
    return [(column.in_(part), part) for part in parts]


def _by_source_in(
    conn: sa.Connection, check: str, targets: Mapping[str, list[str]], make: Callable[[Any], Any]
) -> None:
    """Run ``make(where)`` for each source's targets, an IN list at a time."""
    for source, ts in targets.items():
        for member, _ in _among(conn, check_state.c.target, ts):
            where = sa.and_(check_state.c.check == check, check_state.c.source == source, member)
            conn.execute(make(where))


def record_chunk(
    store: Store,
    check: str,
    results: Sequence[CheckResult],
    at: dt.datetime,
    *,
    candidates: Iterable[str],
    asked: Callable[[str, str], bool],
    owner: Callable[[str], tuple[str, str]],
    quiet: Collection[str] = (),
    clean_since: Mapping[str, dt.datetime] | None = None,
    ok_detail: str = "not listed",
) -> ChunkOutcome:
    """Record one chunk of a bulk sweep in one transaction.

    ``results`` are the chunk's problems and unknowns (an ``ok`` among them is ignored);
    every pair for which ``asked(target, source)`` holds and that is not among them was
    answered ok. ``candidates`` are the chunk's targets that may have a row (the caller keeps
    :func:`known_targets` and adds :attr:`ChunkOutcome.new_targets`): only their rows and
    the results' are read. ``owner`` gives a target's (pool, customer). An unknown of a source
    in ``quiet`` (it could not answer most of the chunk: a failed self-test, a dead zone)
    makes no new row; the rows that exist still note it. ``clean_since`` maps a source to the
    start of the last sweep that covered the whole inventory on it cleanly: the last known
    clean answer of a new listing without a row.

    A problem that was recorded and is now answered ok turns ok (a state change; its
    episode ends); an unknown-only row answered ok is deleted (the pair is plainly ok again);
    an ok row kept for its case gets its ``checked_at`` moved on.
    """
    since = clean_since or {}
    out = ChunkOutcome()
    notable = {(r.target, r.source): r for r in results if r.status != OK}
    lookup = set(candidates) | {t for t, _ in notable}
    c = check_state.c
    with store.begin() as conn:
        rows: dict[tuple[str, str], Any] = {}
        pending = sa.case((c.last_unknown_at > c.checked_at, 1), else_=0).label("pending")
        for member, _ in _among(conn, c.target, lookup):
            q = sa.select(
                c.target, c.source, c.status, c.severity, c.detail, c.pool, c.customer,
                c.checked_at, pending, sa.cast(c.data, sa.Text).label("data_text"),
            ).where(c.check == check, member)  # fmt: skip
            for row in conn.execute(q):
                rows[(row.target, row.source)] = row
        inserts: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []  # -> problem
        rewritten: list[dict[str, Any]] = []  # still a problem, with other evidence
        seen: dict[str, list[str]] = {}  # still a problem, the same: checked_at only
        marks: list[dict[str, Any]] = []  # unknown on a row
        details: dict[tuple[str, str], dict[str, Any]] = {}
        for key, r in notable.items():
            old = rows.get(key)
            if r.status == UNKNOWN:
                if old is not None:
                    marks.append({"k_t": r.target, "k_s": r.source, "at": at, "err": r.error})
                    out.unknown.append(r)
                elif r.source not in quiet:
                    pool, customer = owner(r.target)
                    inserts.append(
                        {
                            "target": r.target, "check": check, "source": r.source,
                            "status": NEVER_KNOWN, "severity": None, "detail": r.detail,
                            "data": _data(r), "pool": pool, "customer": customer,
                            "checked_at": at, "changed_at": at, "last_unknown_at": at,
                            "last_error": r.error,
                        }
                    )  # fmt: skip
                    out.unknown.append(r)
                    out.new_targets.add(r.target)
                continue
            out.listed.append(r)
            pool, customer = owner(r.target)
            data = details[key] = _data(r)
            if (
                old is not None
                and old.status == PROBLEM
                and old.severity == r.severity
                and old.detail == r.detail
                and old.pool == pool
                and old.customer == customer
                # the stored JSON text is what SQLAlchemy wrote (json.dumps): compared as text,
                # no row is decoded; a difference of form only costs a rewrite
                and old.data_text == json.dumps(data)
            ):
                seen.setdefault(r.source, []).append(r.target)
                continue
            values = {
                "status": PROBLEM, "severity": r.severity, "detail": r.detail, "data": data,
                "pool": pool, "customer": customer, "checked_at": at,
            }  # fmt: skip
            if old is None:
                inserts.append(
                    {"target": r.target, "check": check, "source": r.source, "changed_at": at}
                    | values
                    | {"last_unknown_at": None, "last_error": None}
                )
                out.changes.append(StateChange(r.target, check, r.source, None, PROBLEM, at))
                out.new_targets.add(r.target)
                if r.source in since:
                    out.first_listed.append((r.target, r.source, since[r.source]))
            elif old.status != PROBLEM:
                moved.append({"k_t": r.target, "k_s": r.source, "changed_at": at} | values)
                was = OK if old.status == OK else None
                out.changes.append(StateChange(r.target, check, r.source, was, PROBLEM, at))
                if old.status == OK and not old.pending:
                    out.first_listed.append((r.target, r.source, old.checked_at))
            else:  # still a problem, with other evidence
                rewritten.append({"k_t": r.target, "k_s": r.source} | values)
        # the rows of pairs that were asked and are not among the results: answered ok
        to_ok: list[dict[str, Any]] = []
        refresh: dict[str, list[str]] = {}
        drop: dict[str, list[str]] = {}
        ended: dict[str, list[str]] = {}
        for key, old in rows.items():
            if key in notable or not asked(*key):
                continue
            target, source = key
            if old.status == PROBLEM:
                to_ok.append({"k_t": target, "k_s": source})
                out.changes.append(StateChange(target, check, source, PROBLEM, OK, at))
                out.cleared.append(key)
                ended.setdefault(source, []).append(target)
            elif old.status == OK:
                refresh.setdefault(source, []).append(target)
                if old.pending:
                    out.cleared.append(key)
            else:  # never known: its unknown is over, and a clean pair keeps no row
                drop.setdefault(source, []).append(target)
                out.cleared.append(key)
        cols = ("status", "severity", "detail", "data", "pool", "customer", "checked_at")
        if inserts:
            conn.execute(check_state.insert(), inserts)
        if moved:
            stmt = _keyed_update(check).values({k: sa.bindparam(k) for k in (*cols, "changed_at")})
            conn.execute(stmt, moved)
        if rewritten:
            conn.execute(_keyed_update(check).values({k: sa.bindparam(k) for k in cols}), rewritten)
        if marks:
            stmt = _keyed_update(check).values(
                last_unknown_at=sa.bindparam("at"), last_error=sa.bindparam("err")
            )
            conn.execute(stmt, marks)
        if to_ok:
            stmt = _keyed_update(check).values(
                status=OK, severity=None, detail=ok_detail, data={}, checked_at=at, changed_at=at
            )
            conn.execute(stmt, to_ok)
        checked = {source: list(ts) for source, ts in seen.items()}
        for source, ts in refresh.items():
            checked.setdefault(source, []).extend(ts)
        _by_source_in(
            conn, check, checked, lambda w: check_state.update().where(w).values(checked_at=at)
        )
        _by_source_in(conn, check, drop, lambda w: check_state.delete().where(w))
        fresh = {(u["k_t"], u["k_s"]) for u in (*inserts, *moved, *rewritten) if "k_t" in u}
        fresh |= {(u["target"], u["source"]) for u in inserts if u["status"] == PROBLEM}
        _chunk_history(conn, check, out, details, fresh, seen, ended, at, ok_detail)
    return out


def _chunk_history(
    conn: sa.Connection,
    check: str,
    out: ChunkOutcome,
    details: Mapping[tuple[str, str], dict[str, Any]],
    fresh: set[tuple[str, str]],
    same: Mapping[str, list[str]],
    ended: Mapping[str, list[str]],
    at: dt.datetime,
    ok_detail: str,
) -> None:
    """State changes and episodes of one chunk: a new listing opens one, a listing seen again
    moves its ``last_seen_at`` (``fresh``: new or with other evidence, the episode takes the
    evidence; ``same``: per source, unchanged), a listing answered ok ends its (``ended``).

    A problem row has an open episode and an open episode a problem row, so an unchanged
    listing's episode is updated without being read first; should one be missing (data older
    than that rule), the update says so by its row count and the episode is opened.
    """
    if out.changes:
        by_key = {(r.target, r.source): r for r in out.listed}
        rows = []
        for ch in out.changes:
            r = by_key.get((ch.target, ch.source)) if ch.new_status == PROBLEM else None
            rows.append(
                {
                    "at": ch.at, "target": ch.target, "check": check, "source": ch.source,
                    "old_status": ch.old_status, "new_status": ch.new_status,
                    "severity": r.severity if r else None,
                    "detail": r.detail if r else ok_detail,
                }
            )  # fmt: skip
        conn.execute(state_changes.insert(), rows)
    ep = problem_episodes.c

    def where(source: str, member: Any) -> Any:
        return sa.and_(ep.check == check, ep.source == source, ep.ended_at.is_(None), member)

    fresh = set(fresh)
    for source, targets in same.items():
        for member, part in _among(conn, ep.target, targets):
            stmt = problem_episodes.update().where(where(source, member)).values(last_seen_at=at)
            if conn.execute(stmt).rowcount != len(part):
                fresh |= {(t, source) for t in part}  # one is missing: look at each
    for source, targets in ended.items():
        for member, _ in _among(conn, ep.target, targets):
            conn.execute(problem_episodes.update().where(where(source, member)).values(ended_at=at))
    if not fresh:
        return
    open_eps: dict[tuple[str, str], int] = {}
    for member, _ in _among(conn, ep.target, {t for t, _ in fresh}):
        q = sa.select(ep.id, ep.target, ep.source).where(
            ep.check == check, ep.ended_at.is_(None), member
        )
        for row in conn.execute(q):
            open_eps[(row.target, row.source)] = row.id
    new_eps: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for key in sorted(fresh):
        i = open_eps.get(key)
        if i is None:
            new_eps.append(
                {
                    "target": key[0], "check": check, "source": key[1],
                    "started_at": at, "last_seen_at": at, "data": details[key],
                }
            )  # fmt: skip
        else:
            changed.append({"k": i, "at": at, "d": details[key]})
    if new_eps:
        conn.execute(problem_episodes.insert(), new_eps)
    if changed:
        conn.execute(
            problem_episodes.update()
            .where(ep.id == sa.bindparam("k"))
            .values(last_seen_at=sa.bindparam("at"), data=sa.bindparam("d")),
            changed,
        )


@dataclass(frozen=True, slots=True)
class Coverage:
    """What one bulk sweep covered on one source (zone), and what came out."""

    check: str
    source: str
    #: ``inventory`` (every watched target), ``targets`` (a given list), ``migrated``
    scope: str
    #: the pools whose targets it covered (``inventory`` scope)
    pools: list[str]
    started_at: dt.datetime
    finished_at: dt.datetime
    #: False when the sweep stopped before its last chunk
    complete: bool
    covered: int
    listed: int
    unknown: int
    selftest_ok: bool
    failed_chunks: int = 0
    error: str | None = None


def clean_since(store: Store, check: str) -> dict[str, dt.datetime]:
    """Per source, the start of the last complete sweep of the whole inventory with no chunk
    the source failed: a pair without a row was answered ok then."""
    cv = sweep_coverage.c
    q = (
        sa.select(cv.source, sa.func.max(cv.started_at).label("at"))
        .where(
            cv.check == check,
            cv.complete.is_(True),
            cv.failed_chunks == 0,
            cv.scope.in_(["inventory", "migrated"]),
        )
        .group_by(cv.source)
    )
    with store.begin() as conn:
        return {row.source: _utc(row.at) for row in conn.execute(q)}


def _utc(value: Any) -> dt.datetime:
    """An aggregate's datetime (``max`` loses the column type on SQLite) as aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def last_coverage(store: Store, check: str) -> list[Coverage]:
    """The coverage rows of the latest recorded run of ``check``'s sweep, by source."""
    with store.begin() as conn:
        run = conn.execute(
            sa.select(sweep_runs.c.id)
            .where(sweep_runs.c.sweep == check)
            .order_by(sweep_runs.c.started_at.desc())
            .limit(1)
        ).scalar()
        if run is None:
            return []
        q = (
            sa.select(sweep_coverage)
            .where(sweep_coverage.c.run_id == run, sweep_coverage.c.check == check)
            .order_by(sweep_coverage.c.source)
        )
        return [
            Coverage(
                check=row.check,
                source=row.source,
                scope=row.scope,
                pools=list(row.pools or []),
                started_at=row.started_at,
                finished_at=row.finished_at,
                complete=row.complete,
                covered=row.covered,
                listed=row.listed,
                unknown=row.unknown,
                selftest_ok=row.selftest_ok,
                failed_chunks=row.failed_chunks,
                error=row.error,
            )  # fmt: skip
            for row in conn.execute(q)
        ]


def forget_settled(store: Store, check: str, swept_from: dt.datetime) -> int:
    """Delete the ok rows of a bulk sweep that nothing needs any more; return how many.

    A row goes when the sweep that began at ``swept_from`` answered it ok
    (``checked_at`` at or after it), it was already ok before that sweep (so the rules had
    a chance to see the change), no unknown is pending on it, and no case on it (rule =
    ``check``, same target and source) is unresolved: its clear verdict reads this row.
    """
    c = check_state.c
    case_open = (
        sa.select(cases.c.id)
        .where(
            cases.c.rule == check,
            cases.c.subject == c.target,
            cases.c.source == c.source,
            cases.c.state != RESOLVED,
        )
        .exists()
    )
    stmt = check_state.delete().where(
        c.check == check,
        c.status == OK,
        c.changed_at < swept_from,
        c.checked_at >= swept_from,
        sa.or_(c.last_unknown_at.is_(None), c.last_unknown_at <= c.checked_at),
        ~case_open,
    )
    with store.begin() as conn:
        return conn.execute(stmt).rowcount or 0


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


def record_sweep(store: Store, summary: SweepSummary, coverage: Sequence[Coverage] = ()) -> int:
    """Record a finished sweep (when, how long, what came out) and, for a bulk sweep, what it
    covered per source, in one transaction; return the run's id."""
    with store.begin() as conn:
        key = conn.execute(
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
        ).inserted_primary_key
        assert key is not None
        run_id = int(key[0])
        if coverage:
            conn.execute(
                sweep_coverage.insert(),
                [
                    {
                        "run_id": run_id,
                        "check": cv.check,
                        "source": cv.source,
                        "scope": cv.scope,
                        "pools": list(cv.pools),
                        "started_at": cv.started_at,
                        "finished_at": cv.finished_at,
                        "complete": cv.complete,
                        "covered": cv.covered,
                        "listed": cv.listed,
                        "unknown": cv.unknown,
                        "selftest_ok": cv.selftest_ok,
                        "failed_chunks": cv.failed_chunks,
                        "error": cv.error,
                    }  # fmt: skip
                    for cv in coverage
                ],
            )
    return run_id


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

"""``evaluate``: run every rule over the store and move cases along their lifecycle.

open -> acknowledged -> resolved; a resolved case whose condition returns within
``rules.reopen_window`` becomes ``reopened`` (same case, same timeline), later
than that a new case opens. One case per (rule, subject, source) is not
resolved at a time: new evidence is appended, severity rises (``escalated``)
but never falls until the case resolves (a lower reading is noted). A case
resolves by itself only after its condition was *checked and clear* for
``rules.hold_down``; a rule that cannot tell (``unknown``, too little volume)
breaks the clear streak and never resolves anything. Enforcement is requested
only for a critical finding that trusted data alone justify
(``Finding.enforceable``): unauthenticated reports never throttle anything.

On PostgreSQL the whole evaluation holds a transaction-scoped advisory lock,
so concurrent evaluators take turns; the partial unique index on cases is the
second line. On SQLite the transaction starts ``BEGIN IMMEDIATE`` (one writer).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import monitor.cases.measure as measure
from checks.errors import ConfigError, StoreConflict, StoreUnavailable
from monitor.cases.model import Clear, Finding, severity_rank
from monitor.cases.rules import Context, OwnerLookup, Rule, build_rules
from monitor.cases.timeline import add_event, request_enforcement
from monitor.config import Config
from monitor.inventory import Inventory, InventoryError
from monitor.store import Store, Tx, utcnow
from monitor.store.cases import (
    OPEN,
    REOPENED,
    RESOLVED,
    CaseRow,
    active_cases,
    count_active,
    evaluation,
    insert_case,
    recently_resolved,
    update_case,
    update_cases,
)

_ATTEMPTS = 3


@dataclass(slots=True)
class EvaluationSummary:
    """What one evaluation did; ``open`` counts cases not resolved afterwards."""

    opened: int = 0
    updated: int = 0
    escalated: int = 0
    reopened: int = 0
    resolved: int = 0
    open: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    def __str__(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in asdict(self).items())


def evaluate(store: Store, config: Config, now: dt.datetime | None = None) -> EvaluationSummary:
    """Run the rules once over the store; return what changed.

    Raises :class:`~checks.errors.StoreConflict` only if another writer keeps racing it
    after retries (it cannot on PostgreSQL, which serialises on the lock), and
    :class:`~checks.errors.StoreUnavailable` when the store stays locked or unreachable.
    """
    now = now or utcnow()
    rules = build_rules(config.rules)
    owner = _owner_lookup(config)
    for attempt in range(_ATTEMPTS):
        try:
            with evaluation(store) as conn:
                return _evaluate(conn, rules, config, owner, now)
        except (StoreConflict, StoreUnavailable):
            # a concurrent writer got there first; a fresh transaction sees its work
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _owner_lookup(config: Config) -> OwnerLookup:
    try:
        inventory = Inventory.from_config(config)
    except InventoryError as exc:
        raise ConfigError(str(exc)) from None

    def owner(target: str) -> tuple[str, str] | None:
        o = inventory.owner_of_ip(target)
        return (o.pool, o.customer) if o else None

    return owner


def _evaluate(
    conn: Tx, rules: list[Rule], config: Config, owner: OwnerLookup, now: dt.datetime
) -> EvaluationSummary:
    ctx = Context(conn, now, config.rules, owner)
    summary = EvaluationSummary()
    quiet: list[dict[str, Any]] = []
    active = {(row.rule, row.subject, row.source): row for row in active_cases(conn)}
    for rule in rules:
        found = {f.key: f for f in rule.findings(ctx)}
        for key, finding in found.items():
            row = active.get(key)
            if row is not None:
                _update(conn, row, finding, config, now, summary, quiet)
            else:
                _open_or_reopen(conn, finding, config, now, summary)
        silent = [k for k, row in active.items() if row.rule in rule.names and k not in found]
        if silent:
            verdicts = rule.clear(ctx, silent)
            for key in silent:
                _judge_clear(conn, active[key], verdicts.get(key), config, now, summary)
    _write_quiet(conn, quiet)
    summary.open = count_active(conn)
    return summary


def _finding_values(f: Finding, now: dt.datetime) -> dict[str, Any]:
    return {
        "type": f.type,
        "subject_kind": f.subject_kind,
        "summary": f.summary,
        "pool": f.pool,
        "customer": f.customer,
        "numerator": f.numerator,
        "denominator": f.denominator,
        "window_seconds": f.window_seconds,
        "evidence": f.evidence,
        "digest": f.digest,
        "last_severity": f.severity,
        "last_seen_at": now,
        "updated_at": now,
        "clear_since": None,
    }


def _samples(conn: Tx, f: Finding, config: Config, now: dt.datetime) -> list[Any]:
    """The latest feedback rows behind a finding (none for check-based rules)."""
    if not f.sample_query or not f.window_seconds:
        return []
    start = now - dt.timedelta(seconds=f.window_seconds)
    return measure.samples(conn, start, now, config.rules.samples, **f.sample_query)


def _numbers(f: Finding) -> dict[str, Any]:
    return {
        "numerator": f.numerator,
        "denominator": f.denominator,
        "window_seconds": f.window_seconds,
        "evidence": f.evidence,
    }


def _open_or_reopen(
    conn: Tx, f: Finding, config: Config, now: dt.datetime, summary: EvaluationSummary
) -> None:
    since = now - dt.timedelta(seconds=config.rules.reopen_window_seconds)
    recent = recently_resolved(conn, f.rule, f.subject, f.source, since)
    values = _finding_values(f, now) | {"severity": f.severity}
    values["samples"] = _samples(conn, f, config, now)
    if recent is not None and recent.resolved_at is not None:
        case_id = recent.id
        update_case(
            conn,
            case_id,
            values
            | {"state": REOPENED, "resolved_at": None, "resolution": None}
            | {"acknowledged_at": None},
        )
        text = f"{f.summary} (was resolved {recent.resolved_at.isoformat()})"
        add_event(
            conn,
            case_id,
            now,
            "reopened",
            text,
            severity=f.severity,
            config=config,
            data=_numbers(f),
        )
        summary.reopened += 1
    else:
        case_id = insert_case(
            conn,
            values
            | {"rule": f.rule, "subject": f.subject, "source": f.source, "state": OPEN}
            | {"opened_at": now},
        )
        add_event(
            conn,
            case_id,
            now,
            "opened",
            f.summary,
            severity=f.severity,
            config=config,
            data=_numbers(f),
        )
        summary.opened += 1
    if f.severity == "critical" and f.enforceable:
        request_enforcement(conn, case_id, f.subject_kind, f.subject, now, config)


def _update(
    conn: Tx,
    row: CaseRow,
    f: Finding,
    config: Config,
    now: dt.datetime,
    summary: EvaluationSummary,
    quiet: list[dict[str, Any]],
) -> None:
    values = _finding_values(f, now)
    if f.digest != row.digest or f.severity != row.last_severity:
        values["samples"] = _samples(conn, f, config, now)
    if severity_rank(f.severity) > severity_rank(row.severity):
        values["severity"] = f.severity
        update_case(conn, row.id, values)
        text = f"{row.severity} -> {f.severity}: {f.summary}"
        add_event(
            conn,
            row.id,
            now,
            "escalated",
            text,
            severity=f.severity,
            config=config,
            data=_numbers(f),
        )
        summary.escalated += 1
        if f.severity == "critical" and f.enforceable:
            request_enforcement(conn, row.id, f.subject_kind, f.subject, now, config)
        return
    if f.severity != row.last_severity and severity_rank(f.severity) < severity_rank(row.severity):
        text = f"now {f.severity}; the case keeps {row.severity} until resolved: {f.summary}"
        add_event(conn, row.id, now, "lowered", text, severity=f.severity, data=_numbers(f))
        summary.updated += 1
    elif f.digest != row.digest:
        add_event(conn, row.id, now, "updated", f.summary, severity=f.severity, data=_numbers(f))
        summary.updated += 1
    else:
        # same evidence: no event, no new samples; written with the others at the end
        values.pop("updated_at")
        values.pop("samples", None)
        quiet.append(values | {"id": row.id})
        return
    update_case(conn, row.id, values)


def _write_quiet(conn: Tx, quiet: list[dict[str, Any]]) -> None:
    """Refresh cases whose evidence did not change, in one round trip (many cases, each run)."""
    update_cases(conn, quiet)


def _judge_clear(
    conn: Tx,
    row: CaseRow,
    verdict: Clear | None,
    config: Config,
    now: dt.datetime,
    summary: EvaluationSummary,
) -> None:
    if verdict is None:
        # cannot tell: whatever clear streak there was is broken, the case stays
        if row.clear_since is not None:
            update_case(conn, row.id, {"clear_since": None})
        return
    since = row.clear_since
    if since is not None and verdict.interrupted_at is not None and verdict.interrupted_at >= since:
        since = None  # an unknown after the streak began: it starts over
    if verdict.since is not None:
        since = verdict.since if since is None else max(since, verdict.since)
    if since is None:
        since = verdict.verified_at  # the first clear reading we can prove
    hold = dt.timedelta(seconds=config.rules.hold_down_seconds)
    if verdict.verified_at - since < hold:
        if row.clear_since != since:
            update_case(conn, row.id, {"clear_since": since})
        return
    update_case(
        conn,
        row.id,
        {
            "state": RESOLVED,
            "resolved_at": now,
            "resolution": "auto",
            "clear_since": since,
            "updated_at": now,
        },
    )
    text = (
        f"clear since {since.isoformat()}, last checked {verdict.verified_at.isoformat()}"
        f" (hold-down {config.rules.hold_down})"
    )
    add_event(conn, row.id, now, "resolved", text, config=config)
    summary.resolved += 1

"""The abuse intake, and the analyst's side of abuse reports.

Intake: the collector prepares (``collectors.abuse.prepare``: parse, classify, judge with
``[abuse]``, attribute through the inventory), the store writes
(``monitor.store.abuse.store_messages``): one transaction claims each message's hash in
``abuse_messages`` (a hash already there makes that message a no-op) together with its
reports, their attribution rows and the hourly counts. A message that cannot be parsed writes
nothing (the sink quarantines it with the reason; ``repmon ingest`` reports it). Used by
``monitor/intake.py`` (the sink: mail to the ``[abuse]`` recipients) and ``repmon ingest``.

The analyst's side: :func:`reclassify_report` (who, when, the counts moved, a note on the
cases concerned, then the rules run so that the cases follow), :func:`labelled` (the
reclassified reports as labelled JSON lines), and :class:`AbuseSeries` / :class:`SeriesThread`
(the ``abuse`` measurement, exported from the store). See docs/abuse.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from checks.errors import EXIT_PROBLEM, RepmonError, UsageError
from collectors.abuse import UNIT
from collectors.abuse.config import AbuseConfig
from collectors.abuse.model import CATEGORIES
from collectors.abuse.prepare import PreparedMessage, Preparer
from collectors.feedback.pipeline import SpooledItem
from collectors.targets import Targets
from monitor.cases import evaluate
from monitor.cases.timeline import add_event
from monitor.config import Config
from monitor.store import Store, utcnow
from monitor.store.abuse import (
    ReportRow,
    abuse_counts_in,
    case_first_actions,
    reclassifications,
    reclassified_reports,
    reclassify,
    review_backlog,
    store_messages,
    stored_hashes,
    touched_buckets,
)
from monitor.store.cases import active_cases
from monitor.timeseries.abuse import (
    action_points,
    backlog_points,
    count_points,
    reclassified_points,
)

__all__ = [
    "AbuseOutcome",
    "AbuseSeries",
    "ReportNotFound",
    "Reclassified",
    "SeriesThread",
    "abuse_section",
    "ingest_batch",
    "labelled",
    "reclassify_report",
    "store_prepared",
]

log = logging.getLogger("repmon.abuse")


def abuse_section(config: Config | AbuseConfig) -> AbuseConfig:
    if isinstance(config, AbuseConfig):
        return config
    section = UNIT.config_of(config)
    assert isinstance(section, AbuseConfig)
    return section


@dataclass(slots=True)
class AbuseOutcome:
    """What one abuse message became. ``duplicate``: its hash was stored already."""

    reports: int = 0
    customers: list[str] = field(default_factory=list)
    review: int = 0
    not_ours: int = 0
    duplicate: bool = False

    @classmethod
    def of(cls, prepared: PreparedMessage) -> AbuseOutcome:
        customers = sorted({c for rep in prepared.reports for c in rep.customers})
        return cls(
            reports=len(prepared.reports),
            customers=customers,
            review=sum(1 for rep in prepared.reports if rep.needs_review),
            not_ours=sum(rep.foreign for rep in prepared.reports),
        )


def ingest_batch(
    store: Store,
    config: Config | AbuseConfig,
    inventory: Targets,
    items: Sequence[SpooledItem],
) -> list[AbuseOutcome | Exception]:
    """Parse, attribute and store many spooled abuse messages in **one** transaction.

    One entry per item, in order: an :class:`AbuseOutcome` (stored now, or ``duplicate``), or
    the exception that made that message unreadable (``ParseError``, or a parser bug on
    hostile input); nothing is written for it and the rest of the batch is stored. A store
    error propagates and nothing of the batch is committed: a retry stores nothing twice.
    """
    preparer = Preparer(abuse_section(config), inventory)
    results: list[AbuseOutcome | Exception | None] = [None] * len(items)
    known = stored_hashes(store, [item.message_hash for item in items])
    todo: list[tuple[int, PreparedMessage]] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.message_hash in known or item.message_hash in seen:
            results[i] = AbuseOutcome(duplicate=True)
            continue
        try:
            prepared = preparer.message(
                item.raw,
                item.message_hash,
                item.received_at,
                channel="smtp",
                spool_path=item.spool_path,
            )
        except Exception as exc:  # ParseError, or a bug on hostile input: this message only
            results[i] = exc
            continue
        seen.add(item.message_hash)
        todo.append((i, prepared))
    claimed = store_messages(store, [p for _, p in todo])
    for i, p in todo:
        results[i] = (
            AbuseOutcome.of(p) if p.message_hash in claimed else AbuseOutcome(duplicate=True)
        )
    return [r if r is not None else AbuseOutcome(duplicate=True) for r in results]


def store_prepared(store: Store, prepared: PreparedMessage) -> AbuseOutcome:
    """Store one prepared message (``repmon ingest``) exactly once."""
    if not store_messages(store, [prepared]):
        return AbuseOutcome(reports=len(prepared.reports), duplicate=True)
    return AbuseOutcome.of(prepared)


# --- the analyst's side ----------------------------------------------------------------------


class ReportNotFound(UsageError, LookupError):
    """No abuse report with that id."""

    exit_status = EXIT_PROBLEM
    http_status = 404


@dataclass(slots=True)
class Reclassified:
    """A reclassification done: the category before, the report now, the cases told."""

    previous: str
    report: ReportRow
    noted_cases: list[int]
    evaluation: dict[str, int] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "previous": self.previous,
            "report": self.report.to_json(),
            "noted_cases": self.noted_cases,
            "evaluation": self.evaluation,
        }


def reclassify_report(
    store: Store,
    config: Config,
    report_id: int,
    category: str,
    actor: str,
    *,
    now: dt.datetime | None = None,
    run_rules: bool = True,
) -> Reclassified:
    """An analyst classifies a report: its category (and that category's configured
    severity), who and when are recorded and its hourly counts move to the new category, in
    one transaction. The open abuse cases of its customers in the old and the new category
    get a note naming the decision, and then the rules run (``run_rules``) so that the case of
    the new category opens or is updated at once; the old one clears by the rule's window.
    Raises :class:`ReportNotFound`, or ``UsageError`` for a category that does not exist."""
    if category not in CATEGORIES:
        raise UsageError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    now = now or utcnow()
    actor = (actor or "analyst").strip()[:64]
    severity = abuse_section(config).severity_of(category)
    done = reclassify(store, report_id, category, severity, actor, now)
    if done is None:
        raise ReportNotFound(f"no abuse report {report_id}")
    previous, report = done
    noted: list[int] = []
    if report.customers:
        text = (
            f"abuse report {report.id} ({report.reporter or 'unknown reporter'}, "
            f"{report.received_at:%Y-%m-%d %H:%M}) reclassified from {previous} to {category} "
            f"by {actor}"
        )
        wanted = {(c, k) for c in report.customers for k in (previous, category)}
        with store.begin() as conn:
            for row in active_cases(conn):
                if row.rule == "abuse" and (row.subject, row.source) in wanted:
                    add_event(conn, row.id, now, "note", text, actor=actor,
                              data={"report": report.id, "category": category,
                                    "previous": previous})  # fmt: skip
                    noted.append(row.id)
    evaluation = evaluate(store, config, now).to_json() if run_rules else None
    return Reclassified(previous, report, sorted(noted), evaluation)


def labelled(store: Store, since: dt.datetime | None = None) -> Iterator[dict[str, Any]]:
    """The reclassified reports as labelled examples (one JSON object each): the analyst's
    category as ``label`` beside the classifier's and what it read."""
    for rep in reclassified_reports(store, since):
        yield {
            "id": rep.id,
            "label": rep.category,
            "classified_as": rep.original_category,
            "confidence": rep.confidence,
            "reason": rep.reason,
            "kind": rep.kind,
            "reporter": rep.reporter,
            "format": rep.format,
            "subject": rep.subject,
            "excerpt": rep.excerpt,
            "urls": rep.urls,
            "count": rep.count,
            "extra": rep.extra,
            "received_at": rep.received_at.isoformat(),
            "reclassified_by": rep.reclassified_by,
            "reclassified_at": rep.reclassified_at.isoformat() if rep.reclassified_at else None,
            "message_hash": rep.message_hash,
            "report_index": rep.report_index,
        }


# --- the abuse measurement -------------------------------------------------------------------


class AbuseSeries:
    """Exports the ``abuse`` measurement from the store: hour buckets changed since the last
    export (all of the ``lookback`` the first time), the review backlog now, and the first
    actions and reclassifications since. Re-exporting is harmless: points are totals."""

    #: margin for the clocks of other instances writing ``abuse_counts.updated_at``
    MARGIN = dt.timedelta(minutes=5)

    def __init__(
        self, store: Store, writer: Any, lookback: dt.timedelta = dt.timedelta(hours=48)
    ) -> None:
        self.store, self.writer = store, writer
        self._since: dt.datetime = utcnow() - lookback

    def export(self, now: dt.datetime | None = None) -> int:
        """Write the points; return how many."""
        now = now or utcnow()
        since = self._since
        with self.store.begin() as conn:
            buckets = touched_buckets(conn, since)
            lines = count_points(abuse_counts_in(conn, buckets)) if buckets else []
            lines += backlog_points(review_backlog(conn), now)
            lines += action_points(case_first_actions(conn, since))
            lines += reclassified_points(reclassifications(conn, since))
        if lines:
            self.writer.write(lines)
        self._since = now - self.MARGIN
        return len(lines)


class SeriesThread:
    """Exports :class:`AbuseSeries` in the background of a long-running process (the sink,
    ``repmon run``): every ``interval`` seconds, and soon after :meth:`poke` (new reports),
    at most every ``min_gap`` seconds; delivers the writer's buffer after each export."""

    def __init__(self, series: AbuseSeries, interval: float = 60.0, min_gap: float = 5.0) -> None:
        self.series = series
        self.interval, self.min_gap = interval, min_gap
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="abuse-series", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._once()
            self._wake.wait(self.interval)
            self._wake.clear()
            self._stop.wait(self.min_gap)

    def _once(self) -> None:
        try:
            self.series.export()
            self.series.writer.flush()
        except RepmonError as exc:  # the store is down: next time
            log.warning("abuse series not exported: %s", exc)
        except Exception:  # never let the exporter end the process's intake
            log.exception("abuse series export failed")

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(30)
        self._once()
        self.series.writer.close()

"""Delivering the outbox: webhooks (JSON or Slack text) and enforcement requests, via httpx.

Each outbox row is one (case event, destination). A row is sent when its
``next_attempt_at`` has come; a 2xx answer marks it delivered, anything else
(refused connection, timeout, 4xx, 5xx) counts an attempt, records the error
and schedules the next try after ``notify.backoff`` doubled per failure, capped
at ``notify.max_backoff``. Rows are never dropped: a receiver that is down for
a day gets its notices when it returns. Every request carries the header
``Idempotency-Key: <case id>-<event id>`` so that a receiver can discard a
repeat (one can happen if repmon stops between sending and recording). An
enforcement request whose case has come to rest on unauthenticated reports
(``evidence.enforceable`` false) is withheld, with a timeline entry saying so.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from monitor import __version__
from monitor.cases.model import CaseEvent
from monitor.cases.queue import case_from_row, event_from_row
from monitor.cases.timeline import add_event, site
from monitor.config import Config, parse_duration
from monitor.store import Store, utcnow
from monitor.store.cases import case_event, case_row
from monitor.store.outbox import (
    claim_notice,
    due_notices,
    notice_delivered,
    notice_failed,
    pending_notices,
)

log = logging.getLogger("repmon.cases.notify")
_BATCH = 200
_WITHHELD = "the case's severity now rests on unauthenticated reports"


@dataclass(slots=True)
class DeliverySummary:
    delivered: int = 0
    failed: int = 0  # attempts that failed this time; the rows stay pending
    pending: int = 0  # rows still waiting after this run

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    def __str__(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in asdict(self).items())


def idempotency_key(case_id: int, event_id: int) -> str:
    return f"{case_id}-{event_id}"


def json_payload(case: dict[str, Any], event: CaseEvent) -> dict[str, Any]:
    """The generic webhook body (docs/cases.md): the event and the case as it is now."""
    case = {k: v for k, v in case.items() if k != "events"}
    return {
        "idempotency_key": idempotency_key(case["id"], event.id),
        "event": event.to_json(),
        "case": case,
    }


def slack_payload(case: dict[str, Any], event: CaseEvent) -> dict[str, Any]:
    """Slack-compatible ``{"text": ...}``: what happened (as the event recorded it), whose it is."""
    whose = (
        ", ".join(f"{k} {case[k]}" for k in ("pool", "customer") if case.get(k)) or "owner unknown"
    )
    if event.kind == "resolved":
        head = f"[resolved] case #{case['id']}: {case['summary']} ({event.text})"
    else:
        sev = event.severity or case["severity"]
        head = f"[{sev}] case #{case['id']} {event.kind}: {event.text}"
    lines = [head, f"{case['type']} / {case['rule']} — {whose}"]
    delist = case.get("evidence", {}).get("delist")
    if delist and event.kind != "resolved":
        lines.append(f"delist: {delist}")
    return {"text": "\n".join(lines)}


def enforce_payload(case: dict[str, Any], event: CaseEvent) -> dict[str, Any]:
    """What the enforcement URL receives: throttle this subject, and why."""
    return {
        "action": "throttle",
        "idempotency_key": idempotency_key(case["id"], event.id),
        "subject": case["subject"],
        "subject_kind": case["subject_kind"],
        "severity": case["severity"],
        "case": {k: case[k] for k in ("id", "type", "rule", "summary", "pool", "customer")},
    }


def _backoff(config: Config, attempts: int) -> dt.timedelta:
    base = parse_duration(config.notify.backoff)
    cap = parse_duration(config.notify.max_backoff)
    return dt.timedelta(seconds=min(cap, base * 2 ** max(attempts - 1, 0)))


def deliver_notifications(
    store: Store,
    config: Config,
    now: dt.datetime | None = None,
    client: httpx.Client | None = None,
) -> DeliverySummary:
    """Send every outbox row that is due; return what was delivered and what is still pending."""
    now = now or utcnow()
    summary = DeliverySummary()
    due = due_notices(store, now, _BATCH)
    own_client = client is None
    http = client or httpx.Client(headers={"User-Agent": f"repmon/{__version__}"})
    try:
        for row_id in due:
            ok = _deliver_one(store, config, http, row_id, now)
            if ok is True:
                summary.delivered += 1
            elif ok is False:
                summary.failed += 1
    finally:
        if own_client:
            http.close()
    summary.pending = pending_notices(store)
    return summary


def _deliver_one(
    store: Store, config: Config, http: httpx.Client, row_id: int, now: dt.datetime
) -> bool | None:
    """True delivered, False failed (stays pending), None taken by another deliverer."""
    with store.begin() as conn:
        # SKIP LOCKED: a second deliverer running at once leaves this row to the first
        row = claim_notice(conn, row_id)
        if row is None:
            return None
        found = case_row(conn, row.case_id)
        assert found is not None  # the outbox row's foreign key
        event = event_from_row(case_event(conn, row.event_id))
        case = case_from_row(found).to_json()
        if row.destination == "enforce" and case["evidence"].get("enforceable") is False:
            # the case now rests on unauthenticated reports: never throttle on them
            notice_delivered(conn, row.id, now, row.attempts)
            text = f"throttle request to {site(row.url)} withheld: {_WITHHELD}"
            add_event(conn, row.case_id, now, "enforcement", text)
            return None
        if row.destination == "enforce":
            body = enforce_payload(case, event)
            timeout = config.enforce.timeout
        elif row.format == "slack":
            body, timeout = slack_payload(case, event), _timeout(config, row.url)
        else:
            body, timeout = json_payload(case, event), _timeout(config, row.url)
        error = _post(http, row.url, body, idempotency_key(row.case_id, row.event_id), timeout)
        if error is None:
            notice_delivered(conn, row.id, now, row.attempts + 1)
            if row.destination == "enforce":
                text = f"throttle request accepted by {site(row.url)}"
                add_event(conn, row.case_id, now, "enforcement", text)
            return True
        attempts = row.attempts + 1
        notice_failed(conn, row.id, attempts, error, now + _backoff(config, attempts))
        if row.destination == "enforce" and attempts == 1:
            text = f"throttle request to {site(row.url)} failed, will retry: {error}"
            add_event(conn, row.case_id, now, "enforcement", text)
        log.warning(
            "notification %s to %s failed (attempt %d): %s", row.id, site(row.url), attempts, error
        )
        return False


def _timeout(config: Config, url: str) -> float:
    for hook in config.notify.webhooks:
        if hook.url == url:
            return hook.timeout
    return 10.0


def _post(
    http: httpx.Client, url: str, body: dict[str, Any], key: str, timeout: float
) -> str | None:
    """None on a 2xx answer, else the reason (httpx errors translated here, at the boundary)."""
    try:
        resp = http.post(url, json=body, headers={"Idempotency-Key": key}, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"{exc.__class__.__name__}: {exc}"
    if 200 <= resp.status_code < 300:
        return None
    return f"HTTP {resp.status_code}: {resp.text[:200]}"

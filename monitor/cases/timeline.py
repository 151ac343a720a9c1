"""Writing a case's timeline, and the outbox rows that must go with some of its events.

Both happen in the caller's transaction: an event that must be notified and
its outbox rows commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from monitor.config import Config
from monitor.store.cases import case_events, notify_outbox

#: events webhooks are told about
NOTIFIED = frozenset({"opened", "escalated", "reopened", "resolved"})


def add_event(
    conn: sa.Connection,
    case_id: int,
    at: dt.datetime,
    kind: str,
    text: str,
    *,
    severity: str | None = None,
    actor: str = "repmon",
    data: dict[str, Any] | None = None,
    config: Config | None = None,
) -> int:
    """Append an event; with ``config`` and a notified kind, queue it for every webhook.

    Returns the event id.
    """
    inserted = conn.execute(
        case_events.insert().values(
            case_id=case_id,
            at=at,
            kind=kind,
            severity=severity,
            text=text,
            actor=actor,
            data=data or {},
        )
    ).inserted_primary_key
    assert inserted is not None
    event_id = int(inserted[0])
    if config is not None and kind in NOTIFIED:
        rows = [
            {
                "case_id": case_id,
                "event_id": event_id,
                "destination": "webhook",
                "url": hook.url,
                "format": hook.format,
                "created_at": at,
                "next_attempt_at": at,
            }
            for hook in config.notify.webhooks
        ]
        if rows:
            conn.execute(notify_outbox.insert(), rows)
    return event_id


def site(url: str) -> str:
    """Scheme and host only: webhook and control URLs often carry a secret in the path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def request_enforcement(
    conn: sa.Connection, case_id: int, subject_kind: str, subject: str, at: dt.datetime, cfg: Config
) -> None:
    """A case became critical: record what would be done (dry run) or queue the request."""
    enforce = cfg.enforce
    if enforce.dry_run:
        add_event(
            conn,
            case_id,
            at,
            "enforcement",
            f"would throttle {subject_kind} {subject} (enforce.dry_run = true)",
            data={"dry_run": True},
        )
        return
    event_id = add_event(
        conn,
        case_id,
        at,
        "enforcement",
        f"throttle of {subject_kind} {subject} requested from {site(enforce.url)}",
        data={"dry_run": False},
    )
    conn.execute(
        notify_outbox.insert().values(
            case_id=case_id,
            event_id=event_id,
            destination="enforce",
            url=enforce.url,
            format="json",
            created_at=at,
            next_attempt_at=at,
        )
    )

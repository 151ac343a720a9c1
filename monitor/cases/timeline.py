"""Writing a case's timeline, and the outbox rows that must go with some of its events.

Both happen in the caller's transaction: an event that must be notified and
its outbox rows commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from monitor.config import Config
from monitor.store import Tx
from monitor.store.cases import add_case_event
from monitor.store.outbox import Notice, queue_notices

#: events webhooks are told about
NOTIFIED = frozenset({"opened", "escalated", "reopened", "resolved"})


def add_event(
    conn: Tx,
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
    event_id = add_case_event(
        conn, case_id, at, kind, text, severity=severity, actor=actor, data=data
    )
    if config is not None and kind in NOTIFIED:
        queue_notices(
            conn,
            [
                Notice(case_id, event_id, "webhook", hook.url, hook.format, at)
                for hook in config.notify.webhooks
            ],
        )
    return event_id


def site(url: str) -> str:
    """Scheme and host only: webhook and control URLs often carry a secret in the path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def request_enforcement(
    conn: Tx, case_id: int, subject_kind: str, subject: str, at: dt.datetime, cfg: Config
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
    queue_notices(conn, [Notice(case_id, event_id, "enforce", enforce.url, "json", at)])

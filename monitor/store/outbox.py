"""The notification outbox: one row per (case event, destination) until it is delivered.

Rows are queued in the transaction of the case event they tell of (:func:`queue_notices`),
so an event and its notices commit together or not at all. Delivery claims one row at a
time (:func:`claim_notice`: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so a second deliverer
leaves it alone) and records the answer in the same transaction. Rows are never dropped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from monitor.store.db import Store, Tx
from monitor.store.schema import notify_outbox


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice to queue: tell ``url`` (a webhook, or the enforcement URL) of an event."""

    case_id: int
    event_id: int
    destination: str  # webhook / enforce
    url: str
    format: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One row of ``notify_outbox``."""

    id: int
    case_id: int
    event_id: int
    destination: str
    url: str
    format: str
    created_at: dt.datetime
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    delivered_at: dt.datetime | None


def queue_notices(tx: Tx, notices: Sequence[Notice]) -> None:
    """Queue ``notices``, due at once, in the caller's transaction."""
    if not notices:
        return
    tx.execute(
        notify_outbox.insert(),
        [
            {
                "case_id": n.case_id,
                "event_id": n.event_id,
                "destination": n.destination,
                "url": n.url,
                "format": n.format,
                "created_at": n.at,
                "next_attempt_at": n.at,
            }
            for n in notices
        ],
    )


def due_notices(store: Store, now: dt.datetime, limit: int) -> list[int]:
    """Ids of up to ``limit`` undelivered rows whose next attempt has come, oldest first."""
    with store.begin() as tx:
        return [
            int(i)
            for i in tx.execute(
                sa.select(notify_outbox.c.id)
                .where(notify_outbox.c.delivered_at.is_(None))
                .where(notify_outbox.c.next_attempt_at <= now)
                .order_by(notify_outbox.c.id)
                .limit(limit)
            ).scalars()
        ]


def claim_notice(tx: Tx, notice_id: int) -> OutboxRow | None:
    """The row, locked until the transaction ends; ``None`` when it was delivered meanwhile
    or another deliverer holds it (SKIP LOCKED)."""
    row = tx.execute(
        sa.select(notify_outbox)
        .where(notify_outbox.c.id == notice_id, notify_outbox.c.delivered_at.is_(None))
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:
        return None
    return OutboxRow(**{k: row._mapping[k] for k in OutboxRow.__slots__})


def notice_delivered(tx: Tx, notice_id: int, at: dt.datetime, attempts: int) -> None:
    """Mark a row delivered at ``at`` after ``attempts`` attempts."""
    tx.execute(
        notify_outbox.update()
        .where(notify_outbox.c.id == notice_id)
        .values(delivered_at=at, attempts=attempts, last_error=None)
    )


def notice_failed(
    tx: Tx, notice_id: int, attempts: int, error: str, next_attempt_at: dt.datetime
) -> None:
    """Record a failed attempt and when to try again."""
    tx.execute(
        notify_outbox.update()
        .where(notify_outbox.c.id == notice_id)
        .values(attempts=attempts, last_error=error, next_attempt_at=next_attempt_at)
    )


def pending_notices(store: Store) -> int:
    """How many rows are not delivered yet."""
    with store.begin() as tx:
        q = (
            sa.select(sa.func.count())
            .select_from(notify_outbox)
            .where(notify_outbox.c.delivered_at.is_(None))
        )
        return int(tx.execute(q).scalar_one())

"""What the time-series exporter reads: counters, volume and DMARC records, as plain rows.

Rows are dicts by column name (what ``monitor.timeseries.schema`` turns into points). The
functions that take a :data:`~monitor.store.db.Tx` read in the exporter's one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from monitor.store.db import Store, Tx
from monitor.store.schema import dmarc_records, feedback_counts, feedback_events, sent_volume

Row = dict[str, Any]


def last_ids(store: Store) -> tuple[int, int]:
    """The highest ``feedback_events`` and ``dmarc_records`` ids stored now (0 when empty)."""
    with store.begin() as tx:
        return last_event_id(tx), (
            tx.execute(sa.select(sa.func.max(dmarc_records.c.id))).scalar() or 0
        )


def last_event_id(tx: Tx) -> int:
    """The highest ``feedback_events`` id (0 when empty)."""
    return int(tx.execute(sa.select(sa.func.max(feedback_events.c.id))).scalar() or 0)


def events_after(
    tx: Tx, after_id: int, since: dt.datetime | None = None
) -> list[tuple[int, dt.datetime]]:
    """(id, received_at) of every feedback event with an id above ``after_id`` (and received
    at or after ``since``, when given)."""
    q = sa.select(feedback_events.c.id, feedback_events.c.received_at).where(
        feedback_events.c.id > after_id
    )
    if since is not None:
        q = q.where(feedback_events.c.received_at >= since)
    return [(int(i), at) for i, at in tx.execute(q)]


def sent_buckets_since(tx: Tx, since: dt.datetime) -> list[dt.datetime]:
    """Every ``sent_volume`` bucket starting at or after ``since``, each once."""
    q = sa.select(sent_volume.c.bucket_start).where(sent_volume.c.bucket_start >= since).distinct()
    return [b for (b,) in tx.execute(q)]


def feedback_counts_in(tx: Tx, buckets: Sequence[dt.datetime]) -> list[Row]:
    """Every ``feedback_counts`` row of ``buckets``."""
    q = sa.select(feedback_counts).where(feedback_counts.c.bucket_start.in_(list(buckets)))
    return [dict(r._mapping) for r in tx.execute(q)]


def sent_volume_in(tx: Tx, buckets: Sequence[dt.datetime]) -> list[Row]:
    """Every ``sent_volume`` row of ``buckets``."""
    q = sa.select(sent_volume).where(sent_volume.c.bucket_start.in_(list(buckets)))
    return [dict(r._mapping) for r in tx.execute(q)]


def dmarc_records_after(tx: Tx, after_id: int) -> list[Row]:
    """Every ``dmarc_records`` row with an id above ``after_id``, by id."""
    q = sa.select(dmarc_records).where(dmarc_records.c.id > after_id).order_by(dmarc_records.c.id)
    return [dict(r._mapping) for r in tx.execute(q)]

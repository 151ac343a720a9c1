"""What the time-series exporter reads and what it remembers having written.

Rows are dicts by column name (what ``monitor.timeseries.schema`` turns into points). The
functions that take a :data:`~monitor.store.db.Tx` run in the exporter's one transaction,
opened by :func:`export_transaction`: one exporter at a time (a PostgreSQL
transaction-scoped advisory lock; ``BEGIN IMMEDIATE`` on SQLite), so two instances, or
``repmon ingest`` beside the daemon, never export the same change twice.

Counters (``feedback_counts``, ``sent_volume``) are compared with what was exported
(``series_exported`` per counter key, ``series_buckets`` per bucket): only what changed is
read and written again, as a delta. DMARC records to export are listed in ``series_pending``
by the intake, in the transaction that stores them; the exporter deletes the rows it wrote.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from monitor.store.db import Store, Tx
from monitor.store.schema import (
    dmarc_records,
    feedback_counts,
    feedback_events,
    feedback_senders,
    sent_volume,
    series_buckets,
    series_exported,
    series_pending,
)

Row = dict[str, Any]

#: pg_advisory_xact_lock key of the exporter ("repmon" + 2)
EXPORT_LOCK = 0x7265706D6F6E02
#: the counter tables the exporter follows, by the name of their state
COUNTERS: dict[str, sa.Table] = {"feedback": feedback_counts, "sent": sent_volume}
#: separator of the key columns in ``series_exported.key`` (never in an IP, kind, domain)
SEP = "\x1f"
_CHUNK = 500


@contextmanager
def export_transaction(store: Store) -> Iterator[Tx]:
    """The exporter's transaction, one exporter at a time (module docstring)."""
    with store.begin() as tx:
        if store.dialect == "postgresql":
            tx.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": EXPORT_LOCK})
        elif store.dialect == "sqlite":
            tx.exec_driver_sql("BEGIN IMMEDIATE")
        yield tx


def counter_key(measurement: str, row: Mapping[str, Any]) -> str:
    """The key columns of a counter row (besides its bucket), joined."""
    if measurement == "sent":
        return SEP.join((str(row["sending_ip"]), str(row["source"])))
    parts = (row["sending_ip"], row["kind"], row["category"], row["receiving_domain"])
    return SEP.join(str(p) for p in parts)


@dataclass(frozen=True, slots=True)
class BucketState:
    """What was exported of one bucket: the sum of its counts, its keys, export rounds."""

    total: int
    keys: int
    rounds: int = 0

    @property
    def totals(self) -> tuple[int, int]:
        """(sum, keys): what :func:`bucket_totals` gives for the same bucket when unchanged."""
        return (self.total, self.keys)


def bucket_totals(
    tx: Tx, measurement: str, since: dt.datetime | None = None
) -> dict[dt.datetime, tuple[int, int]]:
    """bucket -> (sum of counts, rows) of a counter table now (from ``since`` when given)."""
    table = COUNTERS[measurement]
    q = sa.select(table.c.bucket_start, sa.func.sum(table.c.count), sa.func.count()).group_by(
        table.c.bucket_start
    )
    if since is not None:
        q = q.where(table.c.bucket_start >= since)
    return {b: (int(n or 0), int(k)) for b, n, k in tx.execute(q)}


def exported_buckets(
    tx: Tx, measurement: str, since: dt.datetime | None = None
) -> dict[dt.datetime, BucketState]:
    """bucket -> what was exported of it (from ``since`` when given)."""
    s = series_buckets.c
    q = sa.select(s.bucket_start, s.total, s.key_count, s.rounds).where(
        s.measurement == measurement
    )
    if since is not None:
        q = q.where(s.bucket_start >= since)
    return {b: BucketState(int(t), int(k), int(r)) for b, t, k, r in tx.execute(q)}


def counter_rows(tx: Tx, measurement: str, buckets: Sequence[dt.datetime]) -> list[Row]:
    """Every row of a counter table in ``buckets``."""
    table = COUNTERS[measurement]
    out: list[Row] = []
    for i in range(0, len(buckets), _CHUNK):
        chunk = list(buckets[i : i + _CHUNK])
        q = sa.select(table).where(table.c.bucket_start.in_(chunk))
        out += [dict(r._mapping) for r in tx.execute(q)]
    return out


def exported_counts(
    tx: Tx, measurement: str, buckets: Sequence[dt.datetime]
) -> dict[tuple[dt.datetime, str], int]:
    """(bucket, key) -> the count already exported, for ``buckets``."""
    e = series_exported.c
    out: dict[tuple[dt.datetime, str], int] = {}
    for i in range(0, len(buckets), _CHUNK):
        chunk = list(buckets[i : i + _CHUNK])
        q = sa.select(e.bucket_start, e.key, e.count).where(
            e.measurement == measurement, e.bucket_start.in_(chunk)
        )
        out.update(((b, k), int(n)) for b, k, n in tx.execute(q))
    return out


def _insert(dialect: str) -> Callable[[sa.Table], Any]:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def save_exported(
    tx: Tx,
    measurement: str,
    counts: Mapping[tuple[dt.datetime, str], int],
    buckets: Mapping[dt.datetime, BucketState],
) -> None:
    """Remember what is now exported: per key (``counts``) and per bucket."""
    insert = _insert(tx.dialect.name)
    if counts:
        stmt = insert(series_exported)
        stmt = stmt.on_conflict_do_update(
            index_elements=["measurement", "bucket_start", "key"],
            set_={"count": stmt.excluded.count},
        )
        rows = [
            {"measurement": measurement, "bucket_start": b, "key": k, "count": n}
            for (b, k), n in sorted(counts.items())
        ]
        for i in range(0, len(rows), _CHUNK):
            tx.execute(stmt, rows[i : i + _CHUNK])
    if buckets:
        bstmt = insert(series_buckets)
        bstmt = bstmt.on_conflict_do_update(
            index_elements=["measurement", "bucket_start"],
            set_={
                "total": bstmt.excluded.total,
                "key_count": bstmt.excluded.key_count,
                "rounds": bstmt.excluded.rounds,
            },
        )
        brows = [
            {"measurement": measurement, "bucket_start": b, **_state(s)}
            for b, s in sorted(buckets.items())
        ]
        for i in range(0, len(brows), _CHUNK):
            tx.execute(bstmt, brows[i : i + _CHUNK])


def _state(s: BucketState) -> dict[str, int]:
    return {"total": s.total, "key_count": s.keys, "rounds": s.rounds}


def forget_buckets(tx: Tx, measurement: str, buckets: Sequence[dt.datetime]) -> None:
    """Drop what is remembered of ``buckets`` (their rows are gone: retention)."""
    for i in range(0, len(buckets), _CHUNK):
        chunk = list(buckets[i : i + _CHUNK])
        for table in (series_exported, series_buckets):
            tx.execute(
                table.delete().where(
                    table.c.measurement == measurement, table.c.bucket_start.in_(chunk)
                )
            )


def pending_dmarc(tx: Tx, limit: int) -> list[tuple[int, str]]:
    """(marker id, message hash) of messages whose DMARC records are still to export."""
    p = series_pending.c
    q = sa.select(p.id, p.message_hash).where(p.measurement == "dmarc").order_by(p.id).limit(limit)
    return [(int(i), str(h)) for i, h in tx.execute(q)]


def dmarc_records_of(tx: Tx, hashes: Sequence[str]) -> list[Row]:
    """The DMARC records of these messages with ``trusted`` (their sender's trust; no
    ``feedback_senders`` row: trusted), by id."""
    trusted = sa.func.coalesce(feedback_senders.c.trusted, sa.true()).label("trusted")
    out: list[Row] = []
    for i in range(0, len(hashes), _CHUNK):
        chunk = list(hashes[i : i + _CHUNK])
        q = (
            sa.select(dmarc_records, trusted)
            .select_from(
                dmarc_records.outerjoin(
                    feedback_senders,
                    feedback_senders.c.message_hash == dmarc_records.c.message_hash,
                )
            )
            .where(dmarc_records.c.message_hash.in_(chunk))
            .order_by(dmarc_records.c.id)
        )
        out += [dict(r._mapping) for r in tx.execute(q)]
    return out


def done_pending(tx: Tx, ids: Sequence[int]) -> None:
    """Delete the markers of what was exported."""
    for i in range(0, len(ids), _CHUNK):
        chunk = list(ids[i : i + _CHUNK])
        tx.execute(series_pending.delete().where(series_pending.c.id.in_(chunk)))


# -- the older reads, kept for callers outside the exporter ---------------------------------


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

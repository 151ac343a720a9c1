"""Sent volume: counts per (hourly bucket, sending IP, source), the rate rules' denominator.

Rows come validated from :mod:`collectors.volume.sent`; counts add up within a bucket.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from collectors.volume.sent import SentCount, normal_ip
from monitor.store.db import Store
from monitor.store.schema import sent_volume


def add_sent(store: Store, counts: Sequence[SentCount]) -> int:
    """Add ``counts`` to their buckets in one transaction; return the number of buckets."""
    if not counts:
        return 0
    with store.begin() as conn:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(sent_volume)
        stmt = stmt.on_conflict_do_update(
            index_elements=["bucket_start", "sending_ip", "source"],
            set_={"count": sent_volume.c.count + stmt.excluded.count},
        )
        for c in counts:
            conn.execute(
                stmt,
                {
                    "bucket_start": c.bucket_start,
                    "sending_ip": c.sending_ip,
                    "source": c.source,
                    "count": c.count,
                },
            )
    return len(counts)


def sent_total(store: Store, ip: str, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """source -> messages ``ip`` sent in ``[start, end)`` (whole buckets)."""
    q = (
        sa.select(sent_volume.c.source, sa.func.sum(sent_volume.c.count))
        .where(
            sent_volume.c.sending_ip == normal_ip(ip),
            sent_volume.c.bucket_start >= start,
            sent_volume.c.bucket_start < end,
        )
        .group_by(sent_volume.c.source)
    )
    with store.begin() as conn:
        return {src: int(n) for src, n in conn.execute(q)}

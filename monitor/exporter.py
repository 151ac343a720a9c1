"""Feedback, volume, DMARC and case counts from the store to the time series.

The intake writes counters to the store; this exporter turns what changed into
points. Every point's identity (measurement, tags, timestamp = bucket start or
report end) is fixed, so exporting a bucket again overwrites it with the
current total: the exporter can re-send freely (after a restart it re-exports
the last ``lookback``), and never sends partial sums of a bucket.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from monitor.inventory import Inventory
from monitor.store import Store, utcnow
from monitor.store.feedback import (
    BUCKET_SECONDS,
    dmarc_records,
    feedback_counts,
    feedback_events,
    sent_volume,
)


def _bucket(t: dt.datetime) -> dt.datetime:
    epoch = int(t.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % BUCKET_SECONDS, dt.UTC)


class Exporter:
    def __init__(
        self,
        store: Store,
        writer: Any,
        inventory: Inventory,
        lookback: dt.timedelta = dt.timedelta(hours=48),
        receiving_domains: Sequence[str] = (),
    ) -> None:
        self.store, self.writer, self.inventory = store, writer, inventory
        #: on the first export, also every bucket since this time (None: only new rows)
        self._since: dt.datetime | None = utcnow() - lookback
        self._first = True
        self._event_id = 0
        self._dmarc_id = 0
        #: receiving domains kept as tags (``[influxdb] receiving_domains``); empty = built-in
        self._providers: dict[str, Any] = {}
        if receiving_domains:
            self._providers["providers"] = frozenset(d.lower() for d in receiving_domains)

    @classmethod
    def for_new_rows(cls, store: Store, writer: Any, inventory: Inventory, **kw: Any) -> Exporter:
        """An exporter whose exports cover only rows stored after this call (``repmon ingest``)."""
        ex = cls(store, writer, inventory, **kw)
        with store.begin() as conn:
            ex._event_id = conn.execute(sa.select(sa.func.max(feedback_events.c.id))).scalar() or 0
            ex._dmarc_id = conn.execute(sa.select(sa.func.max(dmarc_records.c.id))).scalar() or 0
        ex._since = None
        ex._first = False
        return ex

    def export(self, now: dt.datetime | None = None) -> int:
        """Write points for what changed since the last call; return how many lines."""
        from monitor.cases.queue import open_case_counts
        from monitor.timeseries.schema import (
            case_points,
            dmarc_points,
            feedback_points,
            sent_points,
        )

        now = now or utcnow()
        lines: list[str] = []
        with self.store.begin() as conn:
            buckets = self._touched_buckets(conn, now)
            if buckets:
                rows = conn.execute(
                    sa.select(feedback_counts).where(feedback_counts.c.bucket_start.in_(buckets))
                )
                lines += feedback_points([dict(r._mapping) for r in rows], **self._providers)
                rows = conn.execute(
                    sa.select(sent_volume).where(sent_volume.c.bucket_start.in_(buckets))
                )
                lines += sent_points([dict(r._mapping) for r in rows], self.inventory.owners)
            new_dmarc = conn.execute(
                sa.select(dmarc_records)
                .where(dmarc_records.c.id > self._dmarc_id)
                .order_by(dmarc_records.c.id)
            ).all()
            if new_dmarc:
                self._dmarc_id = new_dmarc[-1].id
                lines += dmarc_points([dict(r._mapping) for r in new_dmarc])
        counts = open_case_counts(self.store)
        lines += case_points(counts, now)
        if lines:
            self.writer.write(lines)
        return len(lines)

    def _touched_buckets(self, conn: sa.Connection, now: dt.datetime) -> list[dt.datetime]:
        """Buckets with new events since the last export, the current and previous hour,
        and (first call) every bucket in the lookback."""
        buckets = {_bucket(now), _bucket(now - dt.timedelta(seconds=BUCKET_SECONDS))}
        q = sa.select(feedback_events.c.id, feedback_events.c.received_at).where(
            feedback_events.c.id > self._event_id
        )
        if self._first and self._since is not None:
            q = q.where(feedback_events.c.received_at >= self._since)
        last = self._event_id
        for row in conn.execute(q):
            buckets.add(_bucket(row.received_at))
            last = max(last, row.id)
        if self._first and self._since is not None:
            last = max(
                last, conn.execute(sa.select(sa.func.max(feedback_events.c.id))).scalar() or 0
            )
            for (b,) in conn.execute(
                sa.select(sent_volume.c.bucket_start)
                .where(sent_volume.c.bucket_start >= _bucket(self._since))
                .distinct()
            ):
                buckets.add(b)
        self._event_id = last
        self._first = False
        return sorted(buckets)

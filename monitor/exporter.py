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

from monitor.inventory import Inventory
from monitor.store import BUCKET_SECONDS, Store, Tx, utcnow
from monitor.store.cases import open_case_counts
from monitor.store.series import (
    dmarc_records_after,
    events_after,
    feedback_counts_in,
    last_event_id,
    last_ids,
    sent_buckets_since,
    sent_volume_in,
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
        ex._event_id, ex._dmarc_id = last_ids(store)
        ex._since = None
        ex._first = False
        return ex

    def export(self, now: dt.datetime | None = None) -> int:
        """Write points for what changed since the last call; return how many lines."""
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
                lines += feedback_points(feedback_counts_in(conn, buckets), **self._providers)
                lines += sent_points(sent_volume_in(conn, buckets), self.inventory.owners)
            new_dmarc = dmarc_records_after(conn, self._dmarc_id)
            if new_dmarc:
                self._dmarc_id = new_dmarc[-1]["id"]
                lines += dmarc_points(new_dmarc)
        counts = open_case_counts(self.store)
        lines += case_points(counts, now)
        if lines:
            self.writer.write(lines)
        return len(lines)

    def _touched_buckets(self, conn: Tx, now: dt.datetime) -> list[dt.datetime]:
        """Buckets with new events since the last export, the current and previous hour,
        and (first call) every bucket in the lookback."""
        buckets = {_bucket(now), _bucket(now - dt.timedelta(seconds=BUCKET_SECONDS))}
        lookback = self._since if self._first else None
        last = self._event_id
        for event_id, received_at in events_after(conn, self._event_id, lookback):
            buckets.add(_bucket(received_at))
            last = max(last, event_id)
        if lookback is not None:
            last = max(last, last_event_id(conn))
            buckets.update(sent_buckets_since(conn, _bucket(lookback)))
        self._event_id = last
        self._first = False
        return sorted(buckets)

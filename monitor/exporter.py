"""Feedback, volume, DMARC and case counts from the store to the time series, once per change.

The intake and ``repmon volume`` add to hourly counters in the store; this exporter writes
what **changed** since it last wrote, as **deltas**: for each counter key (IP, kind,
category, receiving domain; IP and source for sent volume) the count minus what was already
exported, in a point stamped inside the bucket's hour at ``bucket_start + round``
milliseconds, ``round`` counting the bucket's export rounds (0, 1, 2 …). So

- nothing is ever sent twice on purpose: a re-sent point can only come from the writer
  retrying a segment whose answer was lost, and that point is identical (same series,
  same timestamp, same value);
- on InfluxDB (a point with the same series and timestamp overwrites) and on
  VictoriaMetrics (which keeps every sample unless deduplication is configured) alike,
  ``sum()`` over a bucket's hour is the store's count.

What was exported is remembered in the store (``series_exported`` per key,
``series_buckets`` per bucket), in the transaction that reads the counters and queues the
points in the writer's on-disk buffer; one exporter runs at a time
(:func:`monitor.store.series.export_transaction`). Changed buckets are found by comparing
each bucket's sum and number of rows with what was exported of it: every export for the
last ``lookback`` hours, every :data:`FULL_SCAN_SECONDS` (and at the first export of a
process) for every bucket, so a late write into an old bucket is exported too. A counter
only grows, and a comparison with the store's committed state cannot miss a writer that
commits late: it is simply seen at the next export.

DMARC records are exported once each, from the list the intake keeps in the same
transaction as the records (``series_pending``); untrusted reports' records are not
exported (docs/feedback.md, "Trusted feedback"). See docs/timeseries.md, "Export".
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from monitor.inventory import Inventory
from monitor.store import BUCKET_SECONDS, Store, Tx, utcnow
from monitor.store.cases import open_case_counts
from monitor.store.series import (
    COUNTERS,
    BucketState,
    bucket_totals,
    counter_key,
    counter_rows,
    dmarc_records_of,
    done_pending,
    export_transaction,
    exported_buckets,
    exported_counts,
    forget_buckets,
    pending_dmarc,
    save_exported,
)
from monitor.timeseries.schema import case_points, dmarc_points, feedback_points, sent_points

#: how often every bucket (not only the last ``lookback``) is compared with what was exported
FULL_SCAN_SECONDS = 3600.0
#: counter rows read per measurement and export at most: a backlog (the first export after an
#: upgrade, a long outage) is worked through over several exports, newest buckets first
MAX_ROWS = 50_000
#: messages whose DMARC records are exported per export at most
MAX_DMARC_MESSAGES = 2_000
#: export rounds of one bucket that fit in its hour (one millisecond apart)
_MAX_ROUND = BUCKET_SECONDS * 1000 - 1


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
        self.lookback = lookback
        #: monotonic time of the next full comparison (0: at the next export)
        self._full_at = 0.0
        #: receiving domains kept as tags (``[influxdb] receiving_domains``); empty = built-in
        self._providers: dict[str, Any] = {}
        if receiving_domains:
            self._providers["providers"] = frozenset(d.lower() for d in receiving_domains)

    @classmethod
    def for_new_rows(cls, store: Store, writer: Any, inventory: Inventory, **kw: Any) -> Exporter:
        """The exporter of ``repmon ingest``: the same as the daemon's (exporting is once per
        change whoever does it), kept under this name for its callers."""
        return cls(store, writer, inventory, **kw)

    def export(self, now: dt.datetime | None = None) -> int:
        """Write points for what changed since the last export (by anyone); return how many
        lines. Raises what the store or the writer's buffer raise; then nothing is recorded
        as exported and the next export writes it."""
        now = now or utcnow()
        full = time.monotonic() >= self._full_at
        backlog = False
        lines: list[str] = []
        with export_transaction(self.store) as tx:
            for measurement in COUNTERS:
                more, left = self._counters(tx, measurement, now, full)
                lines += more
                backlog = backlog or left
            lines += self._dmarc(tx)
            if lines:
                # queued (fsynced) before the commit: a failed commit re-sends the same
                # points, identical, at the next export; a failed write commits nothing
                self.writer.write(lines)
        if full and not backlog:
            self._full_at = time.monotonic() + FULL_SCAN_SECONDS
        cases = case_points(open_case_counts(self.store), now)
        if cases:
            self.writer.write(cases)
        return len(lines) + len(cases)

    def _counters(
        self, tx: Tx, measurement: str, now: dt.datetime, full: bool
    ) -> tuple[list[str], bool]:
        """The delta points of one counter table; and whether a backlog is left."""
        since = None if full else _bucket(now - self.lookback)
        truth = bucket_totals(tx, measurement, since)
        state = exported_buckets(tx, measurement, since)
        gone = [b for b in state if b not in truth]
        if gone:
            forget_buckets(tx, measurement, gone)
        changed = [b for b, t in truth.items() if b not in state or state[b].totals != t]
        chosen: list[dt.datetime] = []
        rows_total = 0
        for b in sorted(changed, reverse=True):  # newest first
            if chosen and rows_total + truth[b][1] > MAX_ROWS:
                break
            chosen.append(b)
            rows_total += truth[b][1]
        if not chosen:
            return [], False
        rows = counter_rows(tx, measurement, chosen)
        done = exported_counts(tx, measurement, chosen)
        rounds = {b: state[b].rounds if b in state else 0 for b in chosen}
        deltas: list[dict[str, Any]] = []
        counts: dict[tuple[dt.datetime, str], int] = {}
        seen: dict[dt.datetime, list[int]] = {b: [0, 0] for b in chosen}
        wrote: set[dt.datetime] = set()
        for row in rows:
            b = row["bucket_start"]
            key = counter_key(measurement, row)
            n, before = int(row["count"]), done.get((b, key), 0)
            seen[b][0] += n
            seen[b][1] += 1
            if n != before:
                counts[(b, key)] = n
            if n > before:
                at = b + dt.timedelta(milliseconds=min(rounds[b], _MAX_ROUND))
                deltas.append(row | {"bucket_start": at, "count": n - before})
                wrote.add(b)
        # what was read, not what the comparison saw: a writer that committed in between
        # is in these rows, and the next comparison then agrees
        buckets = {b: BucketState(seen[b][0], seen[b][1], rounds[b] + (b in wrote)) for b in chosen}
        save_exported(tx, measurement, counts, buckets)
        if measurement == "sent":
            lines = sent_points(deltas, self.inventory.owners)
        else:
            lines = feedback_points(deltas, **self._providers)
        return lines, len(chosen) < len(changed)

    def _dmarc(self, tx: Tx) -> list[str]:
        """The points of the DMARC records the intake listed; the list entries deleted."""
        pending = pending_dmarc(tx, MAX_DMARC_MESSAGES)
        if not pending:
            return []
        records = dmarc_records_of(tx, sorted({h for _, h in pending}))
        done_pending(tx, [i for i, _ in pending])
        # an untrusted report's counts never reach the series (they would be a denominator)
        return dmarc_points([r for r in records if r.pop("trusted")])

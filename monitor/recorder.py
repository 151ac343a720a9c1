"""The recorder behind every sweep: results go to the store and, when configured, InfluxDB."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any

from checks.result import CheckResult
from collectors.sweep import SweepSummary
from monitor.inventory import Inventory
from monitor.store import Store
from monitor.store.checks import StateChange, record_results, record_sweep
from monitor.timeseries.schema import check_points, sweep_points

#: collector name -> what stores its report's own rows (collectors without rows have none)
KEEPERS: dict[str, Callable[[Store, Any, dt.datetime], None]] = {}

log = logging.getLogger("repmon.recorder")


class StoreRecorder:
    """Records results in the store (state, changes, episodes) and as time-series points."""

    def __init__(self, store: Store, inventory: Inventory, writer: Any | None = None) -> None:
        self.store = store
        self.inventory = inventory
        self.writer = writer
        self.changes: list[StateChange] = []

    def record(self, sweep: str, results: Sequence[CheckResult], at: dt.datetime) -> None:
        changes = record_results(self.store, results, at, self.inventory.owners)
        self.changes.extend(changes)
        for c in changes:
            log.info(
                "%s %s %s: %s -> %s", c.check, c.target, c.source or "-", c.old_status, c.new_status
            )
        if self.writer is not None:
            self.writer.write(check_points(results, at, self.inventory.owners))

    def keep(self, collector: str, report: object, at: dt.datetime) -> None:
        """A collector's own rows: stored by the keeper registered for that collector."""
        keeper = KEEPERS.get(collector)
        if keeper is not None:
            keeper(self.store, report, at)

    def finish(self, summary: SweepSummary) -> None:
        record_sweep(self.store, summary)
        if self.writer is not None:
            self.writer.write(
                sweep_points(
                    summary.sweep,
                    summary.started,
                    summary.duration,
                    summary.targets,
                    summary.results,
                    summary.unknown,
                )
            )
        log.info("%s", summary.line())

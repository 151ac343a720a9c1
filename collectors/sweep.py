"""What every sweep shares: the recorder interface, progress reporting, the summary."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from checks.result import CheckResult


class Recorder(Protocol):
    """Where a sweep's results go (store and time series behind it)."""

    def record(self, sweep: str, results: Sequence[CheckResult], at: dt.datetime) -> None: ...

    def keep(self, collector: str, report: object, at: dt.datetime) -> None:
        """A collector's own rows (a provider's daily data, say): the application stores
        and exports what it knows of that collector's report, and ignores the rest."""
        ...

    def finish(self, summary: SweepSummary) -> None: ...


@dataclass
class SweepSummary:
    sweep: str
    started: dt.datetime
    duration: float = 0.0
    targets: int = 0
    results: int = 0
    ok: int = 0
    problem: int = 0
    unknown: int = 0
    #: unknown results per source (zone), for "which list stopped answering"
    unknown_by_source: dict[str, int] = field(default_factory=dict)

    def add(self, results: Sequence[CheckResult]) -> None:
        for r in results:
            self.results += 1
            if r.status == "ok":
                self.ok += 1
            elif r.status == "problem":
                self.problem += 1
            else:
                self.unknown += 1
                self.unknown_by_source[r.source] = self.unknown_by_source.get(r.source, 0) + 1

    def line(self) -> str:
        return (
            f"{self.sweep} sweep: {self.targets} targets, {self.results} results "
            f"({self.ok} ok, {self.problem} problem, {self.unknown} unknown) "
            f"in {self.duration:.1f}s"
        )


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, total: int, enabled: bool | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._start = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        if not self.enabled or not self.total:
            return
        frac = self.done / self.total
        bar = "#" * int(frac * 30)
        rate = self.done / max(time.monotonic() - self._start, 1e-6)
        sys.stderr.write(
            f"\r{self.label} [{bar:<30}] {self.done}/{self.total} ({frac:4.0%}) {rate:,.0f}/s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.total:
            sys.stderr.write("\n")


class Report(Protocol):
    """What a report-fetching collector returns: results for the recorder, and its rows."""

    results: list[CheckResult]
    errors: list[str]


async def report_sweep(
    name: str, recorder: Recorder, fetch: Callable[[], Report], targets: int = 0
) -> SweepSummary:
    """Run a blocking ``fetch`` off the event loop, hand its results and rows to the recorder."""
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    report = await asyncio.to_thread(fetch)
    at = dt.datetime.now(dt.UTC)
    recorder.record(name, report.results, at)
    recorder.keep(name, report, at)
    summary = SweepSummary(name, started, targets=targets)
    summary.add(report.results)
    summary.duration = time.monotonic() - t0
    recorder.finish(summary)
    return summary

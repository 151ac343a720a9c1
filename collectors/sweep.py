"""What every sweep shares: the recorder interface, progress reporting, the summary."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from checks.result import CheckResult


class Recorder(Protocol):
    """Where a sweep's results go (store and time series behind it)."""

    def record(self, sweep: str, results: Sequence[CheckResult], at: dt.datetime) -> None:
        """Every result of a few targets, ``ok`` ones included (hygiene, report collectors)."""
        ...

    def record_chunk(self, chunk: Chunk, at: dt.datetime) -> None:
        """One chunk of a bulk sweep (dnsbl): its problems and unknowns, and what it asked;
        every pair it asked that is not among its results was answered ``ok``."""
        ...

    def keep(self, collector: str, report: object, at: dt.datetime) -> None:
        """A collector's own rows (a provider's daily data, say): the application stores
        and exports what it knows of that collector's report, and ignores the rest."""
        ...

    def finish(self, summary: SweepSummary) -> None: ...


def target_kind(target: str) -> str:
    """``ip4``, ``ip6`` or ``domain`` of a normalised target (as ``Target.parse`` writes it)."""
    if ":" in target:
        return "ip6"
    parts = target.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return "ip4"
    return "domain"


@dataclass(slots=True)
class SourceCount:
    """What one source (zone) of a bulk sweep was asked and answered, in a chunk or a sweep."""

    #: the target kinds it is asked about (``ip4``, ``ip6``, ``domain``)
    kinds: tuple[str, ...] = ()
    #: (target, source) pairs asked
    covered: int = 0
    listed: int = 0
    unknown: int = 0
    #: chunks in which the source could not be trusted at all (a failed self-test), and why
    #: (the last reason seen); 0 and None when it passed every time
    failed_chunks: int = 0
    failed: str | None = None

    def add(self, other: SourceCount) -> None:
        self.kinds = self.kinds or other.kinds
        self.covered += other.covered
        self.listed += other.listed
        self.unknown += other.unknown
        self.failed_chunks += other.failed_chunks
        self.failed = other.failed or self.failed


@dataclass(slots=True)
class Chunk:
    """One chunk of a bulk sweep, as a :class:`Recorder` gets it.

    ``results`` holds only what is not ``ok`` (problems and unknowns). Every pair of a target
    in ``targets`` and a source in ``sources`` whose ``kinds`` include the target's kind was
    asked, and each such pair absent from ``results`` was answered ``ok``: the clean part
    travels as counts, never as one object per pair.
    """

    sweep: str
    #: when the sweep began: identifies the sweep the chunk belongs to
    started: dt.datetime
    targets: Sequence[str]
    results: list[CheckResult]
    sources: dict[str, SourceCount]

    def asked(self, target: str, source: str) -> bool:
        """Whether (``target``, ``source``) was asked in this chunk (``target`` must be one of
        ``targets``)."""
        count = self.sources.get(source)
        return count is not None and target_kind(target) in count.kinds

    def among(self, targets: Collection[str]) -> set[str]:
        """The ``targets`` (the few a recorder has rows for) that are in this chunk; a
        ``targets`` with an ``among`` of its own (address ranges) answers without listing
        its addresses."""
        pick = getattr(self.targets, "among", None)
        if pick is not None:
            return set(pick(targets))
        known: set[str] | frozenset[str] = (
            targets if isinstance(targets, set | frozenset) else set(targets)
        )
        return set(known.intersection(self.targets))  # walks this chunk's targets, not known


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
    #: per source, what a bulk sweep asked and got (empty for the other sweeps)
    sources: dict[str, SourceCount] = field(default_factory=dict)
    #: what was swept: ``inventory`` (every watched target) or ``targets`` (a given list)
    scope: str = "inventory"
    #: False when the sweep stopped before its last chunk
    complete: bool = True

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

    def add_chunk(self, chunk: Chunk) -> None:
        """Count a bulk sweep's chunk from its counts (its ``ok`` pairs are not objects)."""
        for source, count in chunk.sources.items():
            self.results += count.covered
            self.problem += count.listed
            self.unknown += count.unknown
            self.ok += count.covered - count.listed - count.unknown
            if count.unknown:
                self.unknown_by_source[source] = (
                    self.unknown_by_source.get(source, 0) + count.unknown
                )
            self.sources.setdefault(source, SourceCount()).add(count)

    def line(self) -> str:
        return (
            f"{self.sweep} sweep: {self.targets} targets, {self.results} results "
            f"({self.ok} ok, {self.problem} problem, {self.unknown} unknown) "
            f"in {self.duration:.1f}s" + ("" if self.complete else ", stopped before the end")
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

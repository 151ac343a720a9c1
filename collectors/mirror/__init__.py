"""The mirror collector: keeps the blocklist zones' mirror files fresh (``mirror_refresh``).

It reads the ``[dnsbl]`` zones that have a ``mirror_url`` (or a catalogue download, Spamhaus
DROP/EDROP), fetches each into a temporary file beside the mirror, checks it with the reading
library and swaps it in atomically (:mod:`collectors.mirror.refresh`). It runs on every
instance (each keeps its own files: its sweeps and ad hoc checks read them). See README.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from checks.errors import InputError
from collectors.dnsbl.config import DnsblConfig
from collectors.mirror.refresh import Outcome, failures, refresh_all
from collectors.sweep import Recorder, SweepSummary
from collectors.unit import Collector, SweepContext


class MirrorRefreshFailed(InputError):
    """Some zones' mirrors could not be refreshed (or are missing or stale); the message
    names them and says why. The previous copies stay in use."""


def summarize(outcomes: list[Outcome], started: dt.datetime, duration: float) -> SweepSummary:
    """The run as a summary: one result per zone, ``ok`` or ``unknown`` (failed), and the
    failures per zone (0 for a zone that is fine, so that a gauge of it comes back down)."""
    summary = SweepSummary("mirror", started, targets=len(outcomes), duration=duration)
    for o in outcomes:
        summary.results += 1
        if o.failed:
            summary.unknown += 1
        else:
            summary.ok += 1
        summary.unknown_by_source[o.zone] = int(o.failed)
    return summary


def refresh_sweep(dnsbl: DnsblConfig, recorder: Recorder) -> SweepSummary:
    """Refresh every mirror, record the run, and raise :class:`MirrorRefreshFailed` when a
    zone failed (the job shows ``error`` in ``repmon status`` and ``/metrics``)."""
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    outcomes = refresh_all(dnsbl)
    summary = summarize(outcomes, started, time.monotonic() - t0)
    if not outcomes:
        return summary  # no zone has a mirror: nothing to record every half hour
    recorder.finish(summary)
    bad = failures(outcomes)
    if bad:
        raise MirrorRefreshFailed(
            f"{len(bad)} of {len(outcomes)} blocklist mirrors not refreshed: "
            + "; ".join(f"{o.zone}: {o.detail}" for o in bad)
        )
    return summary


async def run(ctx: SweepContext) -> SweepSummary:
    """The scheduled refresh, off the event loop."""
    return await asyncio.to_thread(refresh_sweep, ctx.section, ctx.recorder)


UNIT = Collector(
    name="mirror",
    title="blocklist zone mirrors: fetched (rsync, HTTPS), checked, swapped in atomically",
    section="dnsbl",
    config_model=DnsblConfig,
    job="mirror_refresh",
    interval="30m",
    sweep=run,
    leader_only=False,
)

__all__ = ["UNIT", "MirrorRefreshFailed", "refresh_sweep", "run", "summarize"]

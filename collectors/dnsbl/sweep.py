"""The blocklist sweep: every inventory IP and domain against every active zone, once.

Config: ``[dnsbl]`` (zones, collectors/dnsbl/config.py), ``[resolver]`` (nameservers,
timeout, retries, concurrency); what to check comes from the :class:`Targets` view.
Targets go through the bulk engine in chunks so that progress can be shown and memory
stays flat; each chunk repeats the zones' RFC 5782 self-test (two queries per zone), so a zone
that breaks during a long sweep is caught.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Sequence

from checks.dnsbl import Target, check_targets
from checks.dnsbl.transport import BulkResolver
from collectors.config import ResolverConfig
from collectors.dnsbl.config import DnsblConfig
from collectors.sweep import Progress, Recorder, SweepSummary
from collectors.targets import Targets
from collectors.unit import SweepContext

CHUNK_TARGETS = 4096


def inventory_targets(watched: Targets) -> list[Target]:
    return [Target.parse(ip) for ip in watched.ips()] + [Target.parse(d) for d in watched.domains()]


def sweep_dnsbl(
    dnsbl: DnsblConfig,
    resolver_config: ResolverConfig,
    watched: Targets,
    recorder: Recorder,
    progress: bool | None = None,
    targets: Sequence[Target] | None = None,
    stop: threading.Event | None = None,
) -> SweepSummary:
    """Run one blocklist sweep (blocking); results are handed to ``recorder`` chunk by chunk."""
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    targets = list(targets) if targets is not None else inventory_targets(watched)
    zones = dnsbl.active_zones()
    key = dnsbl.dqs_key.get_secret_value() if dnsbl.dqs_key else None
    summary = SweepSummary("dnsbl", started, targets=len(targets))
    bar = Progress("dnsbl sweep", len(targets), progress)
    resolver = BulkResolver(
        resolver_config.servers(),
        timeout=resolver_config.timeout,
        retries=resolver_config.retries,
        concurrency=resolver_config.concurrency,
    )
    try:
        for i in range(0, len(targets), CHUNK_TARGETS):
            if stop is not None and stop.is_set():
                break  # stopping: what was checked is recorded, the rest waits for next time
            chunk = targets[i : i + CHUNK_TARGETS]
            results = check_targets(chunk, zones, resolver, key)
            recorder.record("dnsbl", results, dt.datetime.now(dt.UTC))
            summary.add(results)
            bar.advance(len(chunk))
    finally:
        resolver.close()
        bar.close()
    summary.duration = time.monotonic() - t0
    recorder.finish(summary)
    return summary


async def run(ctx: SweepContext) -> SweepSummary:
    """The scheduled sweep: the whole inventory, off the event loop."""
    dnsbl, resolver, watched = ctx.section, ctx.resolver, ctx.targets
    return await asyncio.to_thread(
        sweep_dnsbl, dnsbl, resolver, watched, ctx.recorder, ctx.progress, stop=ctx.stop
    )

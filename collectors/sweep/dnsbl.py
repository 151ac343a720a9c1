"""The blocklist sweep: every inventory IP and domain against every active zone, once.

Config: ``[dnsbl]`` (zones), ``[resolver]`` (nameservers, timeout, retries,
concurrency), ``[inventory]`` (what to check). Targets go through the bulk
engine in chunks so that progress can be shown and memory stays flat; each
chunk repeats the zones' RFC 5782 self-test (two queries per zone), so a zone
that breaks during a long sweep is caught.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence

from checks.dnsbl import Target, check_targets
from checks.dnsbl.transport import BulkResolver
from collectors.sweep.base import Progress, Recorder, SweepSummary
from monitor.config import Config
from monitor.inventory import Inventory

CHUNK_TARGETS = 4096


def inventory_targets(inventory: Inventory) -> list[Target]:
    return [Target.parse(ip) for ip in inventory.ips()] + [
        Target.parse(d) for d in inventory.domains()
    ]


def sweep_dnsbl(
    config: Config,
    inventory: Inventory,
    recorder: Recorder,
    progress: bool | None = None,
    targets: Sequence[Target] | None = None,
) -> SweepSummary:
    """Run one blocklist sweep (blocking); results are handed to ``recorder`` chunk by chunk."""
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    targets = list(targets) if targets is not None else inventory_targets(inventory)
    zones = config.dnsbl.active_zones()
    key = config.dnsbl.dqs_key.get_secret_value() if config.dnsbl.dqs_key else None
    summary = SweepSummary("dnsbl", started, targets=len(targets))
    bar = Progress("dnsbl sweep", len(targets), progress)
    resolver = BulkResolver(
        config.resolver.servers(),
        timeout=config.resolver.timeout,
        retries=config.resolver.retries,
        concurrency=config.resolver.concurrency,
    )
    try:
        for i in range(0, len(targets), CHUNK_TARGETS):
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


async def sweep_dnsbl_async(
    config: Config, inventory: Inventory, recorder: Recorder
) -> SweepSummary:
    """The same, off the event loop (for the daemon)."""
    return await asyncio.to_thread(sweep_dnsbl, config, inventory, recorder, False)

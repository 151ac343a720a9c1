"""The hygiene sweep: SPF, DMARC, DKIM, MX, MTA-STS, TLS-RPT, BIMI, DNSSEC per sending domain;
PTR / forward-confirmed rDNS and SPF authorization per sending IP.

Config: ``[inventory]`` (domains with their ``dkim_selectors``; pools with the
domains their IPs send for), ``[resolver]``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable

from checks.hygiene import check_domain, check_ip
from checks.hygiene.sanity import distrusted, resolver_lies
from checks.result import CheckResult
from collectors.config import ResolverConfig
from collectors.sweep import Progress, Recorder, SweepSummary
from collectors.targets import Targets
from collectors.unit import SweepContext

log = logging.getLogger("repmon.sweep")

#: targets checked at once (each check does a handful of DNS queries)
CONCURRENCY = 32


async def sweep_hygiene(
    resolver: ResolverConfig,
    inventory: Targets,
    recorder: Recorder,
    progress: bool | None = None,
) -> SweepSummary:
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    nameservers = resolver.servers()
    timeout = resolver.timeout
    domains = inventory.domains()
    ips = list(inventory.ips())
    summary = SweepSummary("hygiene", started, targets=len(domains) + len(ips))
    bar = Progress("hygiene sweep", summary.targets, progress)
    sem = asyncio.Semaphore(CONCURRENCY)
    lie = await resolver_lies(nameservers, timeout) if summary.targets else None
    if lie:
        log.warning("hygiene sweep: every answer is unknown this run: %s", lie)

    async def one(job: Awaitable[list[CheckResult]]) -> None:
        async with sem:
            results = await job
        if lie:
            results = distrusted(results, lie)
        recorder.record("hygiene", results, dt.datetime.now(dt.UTC))
        summary.add(results)
        bar.advance(1)

    jobs = [check_domain(d, inventory.dkim_selectors(d), nameservers, timeout) for d in domains]
    jobs += [check_ip(ip, inventory.domains_of_ip(ip), nameservers, timeout) for ip in ips]
    try:
        await asyncio.gather(*(one(j) for j in jobs))
    finally:
        bar.close()
    summary.duration = time.monotonic() - t0
    recorder.finish(summary)
    return summary


async def run(ctx: SweepContext) -> SweepSummary:
    """The scheduled sweep: every watched domain and IP."""
    return await sweep_hygiene(ctx.resolver, ctx.targets, ctx.recorder, ctx.progress)

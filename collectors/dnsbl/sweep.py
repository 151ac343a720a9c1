"""The blocklist sweep: every inventory IP and domain against every active zone, once.

Config: ``[dnsbl]`` (zones, collectors/dnsbl/config.py), ``[resolver]`` (nameservers,
timeout, retries, concurrency); what to check comes from the :class:`Targets` view.
Targets go through the bulk engine in chunks so that progress can be shown and memory
stays flat; each chunk repeats the zones' RFC 5782 self-test (two queries per zone), so a zone
that breaks during a long sweep is caught.

Only what is not ``ok`` leaves a chunk as result objects: the recorder gets the problems and
unknowns with the chunk's targets and per-zone counts (:class:`~collectors.sweep.Chunk`), so
that recording costs per problem, not per address.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence

from checks.dnsbl import Target, check_targets
from checks.dnsbl.transport import BulkResolver
from checks.dnsbl.zones import Zone
from checks.result import OK, PROBLEM, CheckResult
from collectors.config import ResolverConfig
from collectors.dnsbl.config import DnsblConfig
from collectors.dnsbl.mirrored import MirrorPart
from collectors.sweep import Chunk, Progress, Recorder, SourceCount, SweepSummary
from collectors.targets import Targets
from collectors.unit import SweepContext

CHUNK_TARGETS = 4096

#: the detail ``check_targets`` gives every answer of a zone that failed its self-test
UNTRUSTED = "zone not trusted in this run"


#: an IPv4 address as ``ipaddress`` writes it (no leading zeros, each octet 0-255)
_CANONICAL_IP4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
)


def _target(ip: str) -> Target:
    """``Target.parse`` of an inventory IP, without the parse for an IPv4 address written as
    ``ipaddress`` writes it (a sweep of millions of addresses makes one per address)."""
    if _CANONICAL_IP4.fullmatch(ip):
        a, b, c, d = ip.split(".")
        return Target(ip, "ip4", f"{d}.{c}.{b}.{a}")
    return Target.parse(ip)


def inventory_targets(watched: Targets) -> list[Target]:
    return [_target(ip) for ip in watched.ips()] + [Target.parse(d) for d in watched.domains()]


def zone_kinds(zone: Zone) -> tuple[str, ...]:
    """The target kinds a zone is asked about."""
    if zone.kind == "domain":
        return ("domain",)
    return ("ip4", "ip6") if zone.ipv6 else ("ip4",)


def make_chunk(
    started: dt.datetime,
    targets: Sequence[Target],
    zones: Sequence[Zone],
    results: Sequence[CheckResult],
) -> Chunk:
    """The chunk the recorder gets: problems and unknowns, the targets, per-zone counts."""
    notable = [r for r in results if r.status != OK]
    kinds = Counter(t.kind for t in targets)
    sources: dict[str, SourceCount] = {}
    for z in zones:
        ks = zone_kinds(z)
        sources[z.label] = SourceCount(ks, covered=sum(kinds[k] for k in ks))
    first_unknown: dict[str, CheckResult] = {}
    for r in notable:
        count = sources[r.source]
        if r.status == PROBLEM:
            count.listed += 1
        else:
            count.unknown += 1
            first_unknown.setdefault(r.source, r)
    for source, count in sources.items():
        first = first_unknown.get(source)
        if first is not None and count.unknown == count.covered and first.detail == UNTRUSTED:
            count.failed_chunks, count.failed = 1, first.error
    return Chunk("dnsbl", started, [t.text for t in targets], notable, sources)


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
    scope = "inventory" if targets is None else "targets"
    # blocklist mirrors (collectors/dnsbl/mirrored.py): zones with a mirror are answered from
    # their files, the inventory by ranges; DNS asks the other zones about their targets
    mirrors = MirrorPart(dnsbl, watched, targets, started, progress)
    targets, zones = mirrors.dns_targets, mirrors.dns_zones
    key = dnsbl.dqs_key.get_secret_value() if dnsbl.dqs_key else None
    summary = SweepSummary("dnsbl", started, targets=len(targets), scope=scope)
    bar = Progress("dnsbl sweep", len(targets), progress)
    resolver = BulkResolver(
        resolver_config.servers(),
        timeout=resolver_config.timeout,
        retries=resolver_config.retries,
        concurrency=resolver_config.concurrency,
    )
    try:
        mirrors.run(recorder, summary, stop)  # the mirrored zones, before the DNS chunks
        for i in range(0, len(targets), CHUNK_TARGETS):
            if stop is not None and stop.is_set():
                summary.complete = False
                break  # stopping: what was checked is recorded, the rest waits for next time
            part = targets[i : i + CHUNK_TARGETS]
            chunk = make_chunk(started, part, zones, check_targets(part, zones, resolver, key))
            recorder.record_chunk(chunk, dt.datetime.now(dt.UTC))
            summary.add_chunk(chunk)
            bar.advance(len(part))
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

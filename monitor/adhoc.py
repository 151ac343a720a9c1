"""Ad hoc checks (``repmon check``, ``GET /v1/check/{target}``): every check that fits a target."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field

from checks.dnsbl import Target, TargetError, Zone, check_targets
from checks.dnsbl.transport import BulkResolver
from checks.errors import UsageError
from checks.hygiene import check_domain, check_ip
from checks.resolver import Nameserver
from checks.result import CheckResult
from monitor.config import Config
from monitor.inventory import Inventory

CHECK_GROUPS = ("dnsbl", "hygiene")


class CheckRequestError(UsageError, ValueError):
    """The request cannot be run: bad target, CIDR too large, unknown zone."""


@dataclass(frozen=True)
class CheckRequest:
    targets: Sequence[str]
    zones: Sequence[str] = ()  # restrict to these zone labels
    selectors: Sequence[str] = ()  # DKIM selectors, added to the inventory's
    domains: Sequence[str] = ()  # domains whose SPF must authorize an IP target
    only: Sequence[str] = field(default_factory=lambda: CHECK_GROUPS)
    nameservers: Sequence[Nameserver] | None = None  # None = config


def expand_targets(texts: Sequence[str], max_addresses: int) -> list[Target]:
    """Targets from IPs, CIDRs and domains; a CIDR above ``max_addresses`` is refused."""
    out: list[Target] = []
    for text in texts:
        if "/" in text:
            try:
                net = ipaddress.ip_network(text.strip(), strict=False)
            except ValueError:
                raise CheckRequestError(f"{text!r} is not a CIDR") from None
            if net.num_addresses > max_addresses:
                raise CheckRequestError(
                    f"{text} has {net.num_addresses} addresses; the limit is {max_addresses} "
                    "(inventory.max_cidr_addresses)"
                )
            hosts = [net.network_address] if net.num_addresses == 1 else list(net)
            out.extend(Target.parse(str(h)) for h in hosts)
        else:
            try:
                out.append(Target.parse(text))
            except TargetError as exc:
                raise CheckRequestError(str(exc)) from None
    return out


async def run_checks(config: Config, request: CheckRequest) -> list[CheckResult]:
    """Run the requested checks; results per target in input order, DNSBL first."""
    inventory = Inventory.from_config(config)
    targets = expand_targets(request.targets, config.inventory.max_cidr_addresses)
    nameservers = (
        list(request.nameservers) if request.nameservers is not None else config.resolver.servers()
    )
    results: list[CheckResult] = []
    if "dnsbl" in request.only:
        zones = config.dnsbl.active_zones()
        if request.zones:
            wanted = {z.lower().rstrip(".") for z in request.zones}
            zones = [z for z in config.dnsbl.all_zones() if z.label in wanted or z.zone in wanted]
            missing = wanted - {z.label for z in zones} - {z.zone for z in zones}
            if missing:
                raise CheckRequestError(f"unknown zone(s): {', '.join(sorted(missing))}")
        key = config.dnsbl.dqs_key.get_secret_value() if config.dnsbl.dqs_key else None
        resolver = BulkResolver(
            nameservers,
            timeout=config.resolver.timeout,
            retries=config.resolver.retries,
            concurrency=config.resolver.concurrency,
        )
        try:
            results += await resolver_run(resolver, targets, zones, key)
        finally:
            resolver.close()
    if "hygiene" in request.only:
        results += await _hygiene(config, inventory, targets, request, nameservers)
    order = {t.text: i for i, t in enumerate(targets)}
    results.sort(key=lambda r: order.get(r.target, len(order)))
    return results


async def resolver_run(
    resolver: BulkResolver, targets: Sequence[Target], zones: Sequence[Zone], key: str | None
) -> list[CheckResult]:
    return await asyncio.to_thread(check_targets, targets, zones, resolver, key)


async def _hygiene(
    config: Config,
    inventory: Inventory,
    targets: Sequence[Target],
    request: CheckRequest,
    nameservers: Sequence[Nameserver],
) -> list[CheckResult]:
    timeout = config.resolver.timeout
    jobs = []
    for t in targets:
        if t.kind == "domain":
            selectors = list(dict.fromkeys([*inventory.dkim_selectors(t.text), *request.selectors]))
            jobs.append(check_domain(t.text, selectors, nameservers, timeout))
        else:
            domains = list(request.domains) or inventory.domains_of_ip(t.text)
            jobs.append(check_ip(t.text, domains, nameservers, timeout))
    sem = asyncio.Semaphore(32)

    async def bounded(job: Awaitable[list[CheckResult]]) -> list[CheckResult]:
        async with sem:
            return await job

    out: list[CheckResult] = []
    for chunk in await asyncio.gather(*(bounded(j) for j in jobs)):
        out.extend(chunk)
    return out

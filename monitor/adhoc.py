"""Ad hoc checks (``repmon check``, ``GET /v1/check/{target}``): every check that fits a target."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from checks.dnsbl import Target, TargetError, Zone, check_targets
from checks.dnsbl.transport import BulkResolver
from checks.errors import RepmonError, UsageError
from checks.hygiene import check_domain, check_ip
from checks.hygiene.sanity import distrusted, resolver_lies
from checks.resolver import Nameserver
from checks.result import CheckResult
from collectors.dnsbl.config import MirrorSpec
from collectors.dnsbl.mirrored import CACHE as MIRRORS
from collectors.dnsbl.mirrored import answer_targets
from monitor.config import Config, parse_duration
from monitor.inventory import Inventory

log = logging.getLogger("repmon.check")

CHECK_GROUPS = ("dnsbl", "hygiene")


class CheckRequestError(UsageError, ValueError):
    """The request cannot be run: bad target, CIDR too large, unknown zone."""


class ChecksBusy(UsageError):
    """As many ad hoc checks as allowed are running: try again in a moment (HTTP 429)."""

    http_status = 429


class CheckDeadline(RepmonError):
    """The ad hoc check did not finish within its deadline (HTTP 504)."""

    http_status = 504


@dataclass(frozen=True)
class CheckRequest:
    targets: Sequence[str]
    zones: Sequence[str] = ()  # restrict to these zone labels
    selectors: Sequence[str] = ()  # DKIM selectors, added to the inventory's
    domains: Sequence[str] = ()  # domains whose SPF must authorize an IP target
    only: Sequence[str] = field(default_factory=lambda: CHECK_GROUPS)
    nameservers: Sequence[Nameserver] | None = None  # None = config
    #: addresses and domains the request may cover in all (None: only the CIDR limit)
    max_targets: int | None = None
    #: ``(done, total)`` DNS questions, from the resolving thread (``repmon check``'s progress)
    on_progress: Callable[[int, int], None] | None = None


def check_target_text(text: str) -> None:
    """Refuse what an analyst did not mean as a target, saying what to give instead.

    ``Target.parse`` takes any name of letters, digits and hyphens; by hand people also type
    URLs, mail addresses, mistyped IPs (``300.1.1.1``) or ``-``: none of those is checked as
    a domain.
    """
    raw = text.strip()
    try:
        ipaddress.ip_address(raw)
        return
    except ValueError:
        pass
    if "://" in raw:
        host = raw.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1].split(":")[0]
        raise CheckRequestError(f"{raw!r} is a URL: give its host ({host or 'a domain'})")
    if "@" in raw and "/" not in raw:
        raise CheckRequestError(
            f"{raw!r} is a mail address: give its domain ({raw.rsplit('@', 1)[1]})"
        )
    if "/" in raw or ":" in raw:
        return  # CIDR or IPv6: checked by ipaddress
    labels = raw.rstrip(".").split(".")
    if all(label.isdigit() for label in labels if label):
        raise CheckRequestError(f"{raw!r} is not a valid IPv4 address")
    if len(labels) < 2:
        raise CheckRequestError(f"{raw!r} is not an IP address, a CIDR or a domain name")
    if labels[-1].isdigit() or any(lbl.startswith("-") or lbl.endswith("-") for lbl in labels):
        raise CheckRequestError(f"{raw!r} is not a valid domain name")


def expand_targets(texts: Sequence[str], max_addresses: int) -> list[Target]:
    """Targets from IPs, CIDRs and domains; a CIDR above ``max_addresses`` is refused."""
    out: list[Target] = []
    for text in texts:
        check_target_text(text)
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
    limit = config.inventory.max_cidr_addresses
    if request.max_targets is not None:
        limit = min(limit, request.max_targets)
    targets = expand_targets(request.targets, limit)
    if request.max_targets is not None and len(targets) > request.max_targets:
        raise CheckRequestError(
            f"{len(targets)} targets; one request may check at most {request.max_targets}"
        )
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
        # a zone with a mirror is answered from its file, never over DNS
        specs = config.dnsbl.mirror_specs(zones)
        dns_zones = [z for z in zones if z.zone not in specs]
        found: list[CheckResult] = []
        if dns_zones:
            resolver = BulkResolver(
                nameservers,
                timeout=config.resolver.timeout,
                retries=config.resolver.retries,
                concurrency=config.resolver.concurrency,
            )
            log.debug(
                "checking %d targets against %d zones via %s",
                len(targets),
                len(dns_zones),
                ", ".join(f"{n.host}:{n.port}" for n in nameservers) or "the system resolver",
            )
            try:
                found += _via(
                    await resolver_run(resolver, targets, dns_zones, key, request.on_progress),
                    "dns",
                    {},
                )
            finally:
                resolver.close()
        mirrored = [z for z in zones if z.zone in specs]
        if mirrored:
            found += await asyncio.to_thread(_mirror_run, targets, mirrored, specs, key)
        place = {z.label: i for i, z in enumerate(zones)}
        found.sort(key=lambda r: place.get(r.source, len(place)))  # zone order, as configured
        results += found
        results += _unchecked_ipv6(targets, zones)
    if "hygiene" in request.only:
        results += await _hygiene(config, inventory, targets, request, nameservers)
    order = {t.text: i for i, t in enumerate(targets)}
    results.sort(key=lambda r: order.get(r.target, len(order)))
    return results


def _unchecked_ipv6(targets: Sequence[Target], zones: Sequence[Zone]) -> list[CheckResult]:
    """An IPv6 target with no IPv6-capable IP zone active was not checked: say so."""
    if any(z.kind == "ip" and z.ipv6 for z in zones):
        return []
    return [
        CheckResult(
            t.text,
            "dnsbl",
            "",
            "unknown",
            "no blocklist checked",
            error="no active blocklist zone lists IPv6 addresses",
        )
        for t in targets
        if t.kind == "ip6"
    ]


async def resolver_run(
    resolver: BulkResolver,
    targets: Sequence[Target],
    zones: Sequence[Zone],
    key: str | None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[CheckResult]:
    return await asyncio.to_thread(
        check_targets, targets, zones, resolver, key, on_progress=on_progress
    )


def _mirror_run(
    targets: Sequence[Target],
    zones: Sequence[Zone],
    specs: Mapping[str, MirrorSpec],
    key: str | None,
) -> list[CheckResult]:
    """``zones`` answered from their mirrors (loaded once per process, reloaded when the file
    changes); each result says ``"via": "mirror"`` and the mirror's age in seconds."""
    loaded = {z.zone: MIRRORS.get(specs[z.zone]) for z in zones}
    ages = {z.label: loaded[z.zone].age for z in zones}
    for z in zones:
        if not loaded[z.zone].usable:
            log.warning("zone %s: answers unknown: %s", z.label, loaded[z.zone].reason)
    return _via(answer_targets(targets, zones, loaded, key), "mirror", ages)


def _via(
    results: Sequence[CheckResult], via: str, ages: Mapping[str, float | None]
) -> list[CheckResult]:
    """The results with how they were answered: ``via`` (``dns`` or ``mirror``) and, for a
    mirror, ``mirror_age_seconds`` (null when the file is missing)."""
    out = []
    for r in results:
        extra: dict[str, object] = {"via": via}
        if via == "mirror":
            age = ages.get(r.source)
            extra["mirror_age_seconds"] = round(age) if age is not None else None
        out.append(dataclasses.replace(r, fields={**r.fields, **extra}))
    return out


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
            # --selector replaces the configured selectors: an analyst asks about those
            selectors = list(request.selectors) or inventory.dkim_selectors(t.text)
            jobs.append(check_domain(t.text, selectors, nameservers, timeout))
        else:
            domains = list(request.domains) or inventory.domains_of_ip(t.text)
            jobs.append(check_ip(t.text, domains, nameservers, timeout))
    sem = asyncio.Semaphore(32)

    async def bounded(job: Awaitable[list[CheckResult]]) -> list[CheckResult]:
        async with sem:
            return await job

    if not jobs:
        return []
    # the resolver's sanity check runs beside the checks, not before them
    sanity = asyncio.create_task(resolver_lies(nameservers, timeout))
    chunks = await asyncio.gather(*(bounded(j) for j in jobs))
    lie = await sanity
    out = [r for chunk in chunks for r in chunk]
    return distrusted(out, lie) if lie else out


class AdhocRunner:
    """Ad hoc checks for the HTTP API, kept away from everything else the daemon runs.

    At most ``[api] check_concurrency`` run at once (more get :class:`ChecksBusy`), each on a
    thread of this runner's own pool with its own event loop, so a check waiting on a dead
    resolver never holds a thread the sink's spool or the scheduler needs. Each has a
    deadline (:class:`CheckDeadline`), and is cancelled when its client goes away.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.limit = config.api.check_concurrency
        self.deadline = parse_duration(config.api.check_deadline)
        self.max_targets = config.api.check_max_targets
        self._pool = ThreadPoolExecutor(self.limit, thread_name_prefix="repmon-check")
        self._running = 0
        self._closed = False

    async def run(
        self, request: CheckRequest, gone: Callable[[], Awaitable[bool]] | None = None
    ) -> list[CheckResult]:
        if self._closed:
            raise CheckDeadline("repmon is stopping")
        if self._running >= self.limit:
            raise ChecksBusy(f"{self._running} ad hoc checks are running; try again shortly")
        request = CheckRequest(**{**request.__dict__, "max_targets": self.max_targets})
        job = _Job(self.config, request, self.deadline)
        self._running += 1
        future = asyncio.get_running_loop().run_in_executor(self._pool, job.run)
        # whatever happens here, the thread's outcome is collected (no "never retrieved")
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            while not future.done():
                await asyncio.wait([future], timeout=0.5)
                if future.done():
                    break
                if self._closed:
                    job.cancel()
                    raise CheckDeadline("repmon is stopping: the check was cancelled")
                if gone is not None and await gone():
                    job.cancel()
            return await future
        except asyncio.CancelledError:
            job.cancel()
            raise
        finally:
            self._running -= 1

    def close(self) -> None:
        """Cancel what runs, and answer the requests waiting on it at once (504); never wait
        for the threads (the daemon is stopping)."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Job:
    """One ad hoc check on a pool thread, with a loop of its own that can be cancelled."""

    def __init__(self, config: Config, request: CheckRequest, deadline: float) -> None:
        self.config, self.request, self.deadline = config, request, deadline
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[list[CheckResult]] | None = None
        self._cancelled = threading.Event()

    def run(self) -> list[CheckResult]:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._bounded())
            if self._cancelled.is_set():
                self._task.cancel()
            return loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            raise CheckDeadline("the check was cancelled (client gone, or stopping)") from None
        finally:
            # no waiting for DNS threads still running: they end on their own timeouts
            loop.close()

    async def _bounded(self) -> list[CheckResult]:
        try:
            return await asyncio.wait_for(run_checks(self.config, self.request), self.deadline)
        except TimeoutError:
            raise CheckDeadline(f"the check did not finish within {self.deadline:g}s") from None

    def cancel(self) -> None:
        self._cancelled.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

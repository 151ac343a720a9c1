"""The recorder behind every sweep: results go to the store and, when configured, InfluxDB.

Two ways in (see :class:`collectors.sweep.Recorder`): :meth:`StoreRecorder.record` takes
every result of a few targets (hygiene, the report collectors) and keeps a row per result;
:meth:`StoreRecorder.record_chunk` takes a bulk sweep's chunk (dnsbl) whose clean pairs come
as counts, and records only its problems and unknowns, so that its cost follows the problems,
not the addresses. At the end of a bulk sweep :meth:`StoreRecorder.finish` records what it
covered per zone (``sweep_coverage``) and writes the per-zone and per-pool counts.

Logging: one line per sweep and, for a bulk sweep, one per zone; state changes are not logged
one by one (``repmon sweep`` prints them, the store keeps them all).
"""

from __future__ import annotations

import bisect
import datetime as dt
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checks.result import PROBLEM, UNKNOWN, CheckResult
from collectors.sweep import Chunk, SweepSummary
from collectors.targets import Owner
from monitor.inventory import Inventory
from monitor.providers import KEEPERS as PROVIDER_KEEPERS
from monitor.store import Store
from monitor.store.checks import (
    Coverage,
    StateChange,
    clean_since,
    forget_settled,
    known_targets,
    record_chunk,
    record_results,
    record_sweep,
)
from monitor.timeseries.schema import (
    check_points,
    dnsbl_clean_points,
    dnsbl_points,
    dnsbl_pool_points,
    dnsbl_zone_points,
    sweep_points,
)

#: collector name -> what stores its report's own rows and writes their points, called with
#: (store, report, at, writer or None); collectors without rows have none
KEEPERS: dict[str, Callable[[Store, Any, dt.datetime, Any], None]] = {**PROVIDER_KEEPERS}

#: state changes kept per sweep for the caller to show (the rest are counted)
KEEP_CHANGES = 20

log = logging.getLogger("repmon.recorder")

NOBODY = ("", "")


class Owners(Mapping[str, tuple[str, str]]):
    """target -> (pool, customer) of the inventory, looked up when asked and remembered.

    Never built for every address: an IP is found by bisection in the pools' address ranges
    (first pool wins where CIDRs overlap, as in :class:`~monitor.inventory.Inventory`), a
    domain by the inventory. Only the targets asked about (problems, unknowns) are kept, until
    :meth:`forget`.
    """

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._cache: dict[str, tuple[str, str]] = {}
        self._ranges = _index(inventory.config.pools)

    def __getitem__(self, target: str) -> tuple[str, str]:
        found = self.get(target)
        if found is None:
            raise KeyError(target)
        return found

    def get(self, target: str, default: Any = None) -> Any:
        hit = self._cache.get(target)
        if hit is None:
            o = self._lookup(target)
            hit = self._cache[target] = (o.pool, o.customer) if o is not None else NOBODY
        return default if hit is NOBODY else hit

    def __iter__(self) -> Iterator[str]:
        return (t for t, o in list(self._cache.items()) if o is not NOBODY)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return True  # every inventory target is in it, whatever has been looked up so far

    def forget(self) -> None:
        """Drop what was looked up (the recorder does at each chunk: memory stays flat)."""
        self._cache.clear()

    def of(self, target: str) -> tuple[str, str]:
        """(pool, customer); ("", "") when the target is not ours."""
        found: tuple[str, str] = self.get(target, NOBODY)
        return found

    def _lookup(self, target: str) -> Owner | None:
        try:
            if target.count(".") != 3 or not target.replace(".", "").isdigit():
                raise OSError
            version, value = 4, int.from_bytes(socket.inet_aton(target), "big")
        except OSError:
            try:
                addr = ipaddress.ip_address(target)
            except ValueError:
                return self.inventory.owner_of_domain(target)
            version, value = addr.version, int(addr)
        starts, ends, owners = self._ranges[version]
        i = bisect.bisect_right(starts, value) - 1
        return owners[i] if i >= 0 and value <= ends[i] else None

    def sizes(self) -> dict[tuple[str, str], dict[str, int]]:
        """(pool, customer) -> targets per kind (``ip4``, ``ip6``, ``domain``) a blocklist
        sweep of the inventory covers, counted from the ranges (never address by address):
        the pools that run the blocklist checks (all of them when pools do not say)."""
        pools = [p for p in self.inventory.config.pools if "dnsbl" in getattr(p, "checks", "dnsbl")]
        out: dict[tuple[str, str], dict[str, int]] = {}
        for version, (starts, ends, owners) in _index(pools).items():
            kind = f"ip{version}"
            for a, b, o in zip(starts, ends, owners, strict=True):
                per = out.setdefault((o.pool, o.customer), {})
                per[kind] = per.get(kind, 0) + b - a + 1
        for d in self.inventory.domains():
            owner = self.inventory.owner_of_domain(d)
            per = out.setdefault((owner.pool, owner.customer) if owner else NOBODY, {})
            per["domain"] = per.get("domain", 0) + 1
        return out


def _index(pools: Sequence[Any]) -> dict[int, tuple[list[int], list[int], list[Owner]]]:
    """Per IP version, the pools' address ranges with their owner (see :func:`_flatten`)."""
    nets: dict[int, list[tuple[int, int, Owner]]] = {4: [], 6: []}
    for p in pools:
        for cidr in p.cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            first = int(net.network_address)
            nets[net.version].append(
                (first, first + net.num_addresses - 1, Owner(p.name, p.customer))
            )
    return {v: _flatten(n) for v, n in nets.items()}


def _flatten(nets: Sequence[tuple[int, int, Owner]]) -> tuple[list[int], list[int], list[Owner]]:
    """Disjoint, sorted ranges with their owner; an address in several networks belongs to
    the first listed (what ``Inventory.ips`` and ``owner_of_ip`` do)."""
    starts: list[int] = []
    ends: list[int] = []
    owners: list[Owner] = []
    for a, b, o in nets:
        cursor = a
        j = bisect.bisect_right(starts, a) - 1
        if j >= 0 and ends[j] >= a:
            cursor = ends[j] + 1
        j += 1
        gaps: list[tuple[int, int]] = []
        while cursor <= b:
            if j < len(starts) and starts[j] <= b:
                if starts[j] > cursor:
                    gaps.append((cursor, starts[j] - 1))
                cursor = max(cursor, ends[j] + 1)
                j += 1
            else:
                gaps.append((cursor, b))
                break
        for x, y in gaps:
            k = bisect.bisect_left(starts, x)
            starts.insert(k, x)
            ends.insert(k, y)
            owners.insert(k, o)
    return starts, ends, owners


@dataclass
class _BulkSweep:
    """What the recorder keeps while a bulk sweep runs: never a row per address."""

    started: dt.datetime
    #: targets with a row (problems, unknowns, ok rows still needed): the only ones read back
    known: set[str]
    clean_since: dict[str, dt.datetime]
    #: (pool, customer, zone) -> [listed, unknown]
    pools: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    #: zone -> [new listings, ended listings]
    zone_changes: dict[str, list[int]] = field(default_factory=dict)


class StoreRecorder:
    """Records results in the store (state, changes, episodes, coverage) and as points."""

    def __init__(
        self,
        store: Store,
        inventory: Inventory,
        writer: Any | None = None,
        keep_changes: int = KEEP_CHANGES,
    ) -> None:
        self.store = store
        self.inventory = inventory
        self.writer = writer
        self.owners = Owners(inventory)
        self.keep_changes = keep_changes
        self._changes: dict[str, list[StateChange]] = {}
        self._counted: dict[str, int] = {}
        self._bulk: dict[str, _BulkSweep] = {}

    # --- state changes, for the caller to show ----------------------------------------------

    def _note(self, sweep: str, changes: Sequence[StateChange]) -> None:
        if not changes:
            return
        self._counted[sweep] = self._counted.get(sweep, 0) + len(changes)
        kept = self._changes.setdefault(sweep, [])
        room = self.keep_changes - len(kept)
        if room > 0:
            kept.extend(changes[:room])

    def take_changes(self, sweep: str) -> tuple[list[StateChange], int]:
        """The first ``keep_changes`` state changes of ``sweep`` since the last call, and how
        many there were in all; both are reset."""
        return self._changes.pop(sweep, []), self._counted.pop(sweep, 0)

    # --- the Recorder protocol ----------------------------------------------------------------

    def record(self, sweep: str, results: Sequence[CheckResult], at: dt.datetime) -> None:
        self._note(sweep, record_results(self.store, results, at, self.owners))
        if self.writer is not None:
            self.writer.write(check_points(results, at, self.owners))

    def record_chunk(self, chunk: Chunk, at: dt.datetime) -> None:
        check = chunk.sweep
        self.owners.forget()
        state = self._bulk.get(check)
        if state is None or state.started != chunk.started:
            state = self._bulk[check] = _BulkSweep(
                chunk.started,
                known_targets(self.store, check),
                clean_since(self.store, check),
            )
        quiet = {
            s for s, c in chunk.sources.items() if c.failed_chunks or 2 * c.unknown > c.covered
        }
        outcome = record_chunk(
            self.store,
            check,
            chunk.results,
            at,
            candidates=chunk.among(state.known),
            asked=chunk.asked,
            owner=self.owners.of,
            quiet=quiet,
            clean_since=state.clean_since,
        )
        state.known |= outcome.new_targets
        self._note(check, outcome.changes)
        for ch in outcome.changes:
            counts = state.zone_changes.setdefault(ch.source, [0, 0])
            counts[0 if ch.new_status == PROBLEM else 1] += 1
        for r in chunk.results:
            pool, customer = self.owners.of(r.target)
            n = state.pools.setdefault((pool, customer, r.source), [0, 0])
            if r.status == PROBLEM:
                n[0] += 1
            elif r.status == UNKNOWN:
                n[1] += 1
        if self.writer is not None:
            lines = dnsbl_points(outcome.listed, at, self.owners)
            lines += dnsbl_points(outcome.unknown, at, self.owners)
            clean = [(t, s, at) for t, s in outcome.cleared] + outcome.first_listed
            lines += dnsbl_clean_points(clean, self.owners)
            self.writer.write(lines)

    def keep(self, collector: str, report: object, at: dt.datetime) -> None:
        """A collector's own rows: stored by the keeper registered for that collector."""
        keeper = KEEPERS.get(collector)
        if keeper is not None:
            keeper(self.store, report, at, self.writer)

    def finish(self, summary: SweepSummary) -> None:
        state = self._bulk.pop(summary.sweep, None)
        self.owners.forget()
        coverage = self._coverage(summary) if summary.sources else []
        record_sweep(self.store, summary, coverage)
        if state is not None:
            forget_settled(self.store, summary.sweep, summary.started)
        if self.writer is not None:
            lines = sweep_points(
                summary.sweep,
                summary.started,
                summary.duration,
                summary.targets,
                summary.results,
                summary.unknown,
            )
            if summary.sources:
                counts = {z: (c.covered, c.unknown, c.listed) for z, c in summary.sources.items()}
                lines += dnsbl_zone_points(counts, summary.started)
                lines += dnsbl_pool_points(self._pool_counts(summary, state), summary.started)
            self.writer.write(lines)
        log.info("%s", summary.line())
        changes = state.zone_changes if state is not None else {}
        for zone, c in summary.sources.items():
            new, ended = changes.get(zone, (0, 0))
            trust = "self-test ok" if not c.failed_chunks else f"not trusted in {c.failed_chunks}"
            trust += "" if not c.failed_chunks else f" chunk(s): {c.failed}"
            log.info(
                "%s sweep, zone %s: %d asked, %d listed (%d new, %d ended), %d unknown; %s",
                summary.sweep,
                zone,
                c.covered,
                c.listed,
                new,
                ended,
                c.unknown,
                trust,
            )

    # --- coverage ------------------------------------------------------------------------------

    def _whole_inventory(self, summary: SweepSummary) -> bool:
        return summary.scope == "inventory" and summary.complete

    def _coverage(self, summary: SweepSummary) -> list[Coverage]:
        finished = dt.datetime.now(dt.UTC)
        sizes = self.owners.sizes() if self._whole_inventory(summary) else {}
        out = []
        for source, c in summary.sources.items():
            pools = sorted(
                {pool for (pool, _), per in sizes.items() if any(per.get(k) for k in c.kinds)}
            )
            out.append(
                Coverage(
                    check=summary.sweep,
                    source=source,
                    scope=summary.scope,
                    pools=pools,
                    started_at=summary.started,
                    finished_at=finished,
                    complete=summary.complete,
                    covered=c.covered,
                    listed=c.listed,
                    unknown=c.unknown,
                    selftest_ok=not c.failed_chunks,
                    failed_chunks=c.failed_chunks,
                    error=c.failed,
                )
            )
        return out

    def _pool_counts(
        self, summary: SweepSummary, state: _BulkSweep | None
    ) -> dict[tuple[str, str, str], tuple[int, int, int]]:
        """(pool, customer, zone) -> (covered, listed, unknown) of a sweep of the whole
        inventory; nothing for a partial one (what it covered per pool is not known)."""
        if state is None or not self._whole_inventory(summary):
            return {}
        out: dict[tuple[str, str, str], tuple[int, int, int]] = {}
        sizes = self.owners.sizes()
        for zone, c in summary.sources.items():
            for (pool, customer), per in sizes.items():
                covered = sum(per.get(k, 0) for k in c.kinds)
                listed, unknown = state.pools.get((pool, customer, zone), (0, 0))
                if covered or listed or unknown:
                    out[(pool, customer, zone)] = (covered, listed, unknown)
        return out

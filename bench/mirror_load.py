"""Blocklist mirror load and match benchmark: a big IPv4 zone file, 16 inventory /12s.

Generates one ip4set file of the size a large DNSBL mirror has — 3 M single addresses,
300 k ranges (a tenth of them exclusions), 50 k CIDRs with their own code and TXT,
scattered over the IPv4 space — then, in a fresh process so that memory figures are the
load's own, prints the load time, the memory the load peaked at and what the mirror keeps,
the single-lookup rate and the time to match 16 /12s (16.7 M addresses).

    .venv/bin/python bench/mirror_load.py [--singles 3000000] [--ranges 300000] [--cidrs 50000]
"""

from __future__ import annotations

import argparse
import ipaddress
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _quads(addrs: np.ndarray) -> list[str]:
    return [f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}" for a in addrs.tolist()]


def generate(path: Path, singles: int, ranges: int, cidrs: int, seed: int = 5) -> None:
    rnd = np.random.default_rng(seed)
    with path.open("w") as f:
        f.write("$SOA 3600 ns.bl.example. hostmaster.bl.example. 0 1h 1h 2d 60\n")
        f.write(":2:Listed: see https://bl.example/lookup?ip=$\n")
        f.write("127.0.0.2\n")
        f.write("\n".join(_quads(rnd.integers(1 << 24, 224 << 24, singles))) + "\n")
        starts = rnd.integers(1 << 24, 224 << 24, ranges)
        ends = np.minimum(starts + rnd.integers(1, 4096, ranges), (224 << 24) - 1)
        excl = (rnd.random(ranges) < 0.1).tolist()
        f.writelines(
            f"{'!' if x else ''}{a}-{b}\n"
            for x, a, b in zip(excl, _quads(starts), _quads(ends), strict=True)
        )
        bits = rnd.integers(16, 29, cidrs)
        nets = rnd.integers(1 << 24, 224 << 24, cidrs) & ((0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF)
        codes = rnd.integers(3, 12, cidrs).tolist()
        f.writelines(
            f"{n}/{b} :{c}:CIDR listing $ ref {i}\n"
            for i, (n, b, c) in enumerate(zip(_quads(nets), bits.tolist(), codes, strict=True))
        )


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure(path: str) -> None:
    """Load ``path`` and report (run in a fresh process: the peak RSS is the load's)."""
    from checks.dnsbl.mirror import load

    base = _rss_mib()
    t, cpu = time.perf_counter(), time.process_time()
    mirror = load(path, "ip4set")
    took, cpu = time.perf_counter() - t, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r = mirror.report
    print(
        f"load: {took:.2f} s ({cpu:.2f} s CPU) for {r.lines:,} lines ({r.entries:,} entries, "
        f"{r.malformed} malformed) -> {r.intervals:,} intervals, "
        f"{r.addresses4:,} listed addresses"
    )
    print(
        f"memory: peak {peak - base:.0f} MiB over the {base:.0f} MiB before loading; "
        f"kept {_rss_mib() - base:.0f} MiB ({mirror.nbytes / 2**20:.0f} MiB interval arrays)"
    )
    rnd = np.random.default_rng(7)
    probes = [ipaddress.IPv4Address(int(x)) for x in rnd.integers(0, 1 << 32, 100_000)]
    t = time.perf_counter()
    listed = sum(mirror.lookup(p) is not None for p in probes)
    took = time.perf_counter() - t
    print(f"lookup: {len(probes) / took:,.0f} single lookups/s ({listed:,} of 100,000 listed)")
    nets = [ipaddress.IPv4Network((int(x) << 20, 12)) for x in rnd.choice(224 * 16, 16, False)]
    t = time.perf_counter()
    match = mirror.match_ranges(nets)
    took = time.perf_counter() - t
    covered, hit = sum(match.covered), sum(match.listed)
    print(
        f"match: 16 x /12 ({covered:,} addresses) in {took * 1000:.1f} ms: {hit:,} listed "
        f"in {len(match):,} stretches ({covered / took / 1e9:,.1f} G addresses/s)"
    )
    t = time.perf_counter()
    answers = [mirror.answer(x.answer_id, x.first) for x in match.listings()]
    print(
        f"answers (TXT substituted) for all {len(answers):,} stretches: "
        f"{time.perf_counter() - t:.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--singles", type=int, default=3_000_000)
    ap.add_argument("--ranges", type=int, default=300_000)
    ap.add_argument("--cidrs", type=int, default=50_000)
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        measure(args.measure)
        return
    with tempfile.TemporaryDirectory(prefix="repmon-mirror-bench-") as tmp:
        path = Path(tmp) / "big.ip4set"
        t = time.perf_counter()
        generate(path, args.singles, args.ranges, args.cidrs)
        print(f"generated {path.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - t:.1f} s")
        subprocess.run([sys.executable, __file__, "--measure", str(path)], check=True)


if __name__ == "__main__":
    main()

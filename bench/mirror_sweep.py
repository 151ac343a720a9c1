"""Whole-IP-space blocklist sweep from mirrors: ``repmon sweep`` against dnsperf → rbldnsd.

An inventory of 16 pools of a /12 each (16.7 M addresses, ``checks = ["dnsbl"]``) against
three mirrored zones sized like real ones, made with ``bench/mirror_load.py``'s generator
(its entries scattered over the whole IPv4 space):

* ``singles`` (ip4set): 3 M single addresses;
* ``ranges`` (ip4set): 300 k ranges of 1 to 64 addresses (/32 to /26), a tenth of them
  exclusions — the generator's ranges (1 to 4,095 addresses) cut to that size, from their
  start; ``--wide-ranges`` keeps them whole, which lists 13 % of the inventory on that zone;
* ``cidrs`` (ip4trie): 50 k CIDRs from /16 to /28, each with its own code and TXT naming
  the address (11 % of the inventory listed).

It runs the real command, ``repmon sweep --only dnsbl`` with a config (files loaded, pools
matched by ranges, listed pairs recorded in a SQLite store, time series written through the
on-disk buffer into VictoriaMetrics), in a fresh process, twice: into an empty store, then
again (the steady state). The rate is address × zone pairs per second of the whole command;
the peak RSS is the command's own (``wait4``). A third run, the mirror part alone (load,
match, results, the recorder's chunk selection; results discarded), shows where the time goes.

The reference, in the same run: rbldnsd serving the same three files, dnsperf on a sample of
the inventory's query names (every zone). Correctness: every listed pair the store holds is
compared with the mirror's own single lookup (codes, TXT reason, delist link) and the count
per zone with the listed addresses of the pools; a random sample of addresses is asked of
rbldnsd (A and TXT) and compared with the store both ways (listed there ⇔ recorded here).

    .venv/bin/python bench/mirror_sweep.py            # the full run (~30 minutes on 2 cores)
    .venv/bin/python bench/mirror_sweep.py --quick    # 1/20 of the data and 16 /16s
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.servers, tests.tsdb_servers start the real servers
sys.path.insert(0, str(ROOT / "bench"))

from mirror_load import generate  # noqa: E402  (the data generator, reused)

ZONES = ("singles.bench.example", "ranges.bench.example", "cidrs.bench.example")
FORMATS = {ZONES[0]: "ip4set", ZONES[1]: "ip4set", ZONES[2]: "ip4trie"}
CODES = {f"127.0.0.{i}": "high" if i < 8 else "medium" for i in range(2, 12)}
TARGET_RATIO = 10.0
MAX_RSS_MIB = 2048


@dataclass
class Sizes:
    singles: int
    ranges: int
    cidrs: int
    pool_bits: int  # prefix length of each of the 16 pools

    @property
    def addresses(self) -> int:
        return 16 * (1 << (32 - self.pool_bits))


FULL = Sizes(3_000_000, 300_000, 50_000, 12)
QUICK = Sizes(150_000, 15_000, 2_500, 16)


@dataclass
class Run:
    seconds: float
    rss_mib: float
    cpu: float
    line: str
    stderr: str = ""


@dataclass
class Tally:
    checked: int = 0
    wrong: int = 0
    examples: list[str] = field(default_factory=list)

    def bad(self, what: str) -> None:
        self.wrong += 1
        if len(self.examples) < 10:
            self.examples.append(what)


def narrow_ranges(path: Path, seed: int, longest: int = 64) -> None:
    """Cut every ``a-b`` range of a generated file to 1..``longest`` addresses from ``a``."""
    rnd = random.Random(seed)
    out = []
    for line in path.read_text().splitlines():
        first, dash, _ = line.partition("-")
        if not dash:
            out.append(line)
            continue
        start = int(ipaddress.IPv4Address(first.lstrip("!")))
        end = min(start + rnd.randrange(longest), (224 << 24) - 1)
        out.append(f"{first}-{ipaddress.IPv4Address(end)}")
    path.write_text("\n".join(out) + "\n")


def make_files(directory: Path, sizes: Sizes, seed: int, wide: bool) -> dict[str, Path]:
    """The three zone files, from mirror_load's generator (one kind of entry each)."""
    files = {}
    plan = {
        ZONES[0]: (sizes.singles, 0, 0),
        ZONES[1]: (0, sizes.ranges, 0),
        ZONES[2]: (0, 0, sizes.cidrs),
    }
    from checks.dnsbl.mirror import load

    for i, (zone, counts) in enumerate(plan.items()):
        path = directory / f"{zone}.{FORMATS[zone]}"
        for attempt in range(10):
            generate(path, *counts, seed=seed + i + 100 * attempt)
            if zone == ZONES[1] and not wide:
                narrow_ranges(path, seed + attempt)
            # random ranges sometimes cover 127.0.0.1, the RFC 5782 negative test point: a
            # real list never does, and the zone would (rightly) fail its self-test
            if load(path, FORMATS[zone]).lookup("127.0.0.1") is None:
                break
        path.chmod(0o644)
        files[zone] = path
    return files


def pools(sizes: Sizes, seed: int) -> list[ipaddress.IPv4Network]:
    """16 distinct networks of ``pool_bits`` in 1.0.0.0 .. 223.255.255.255."""
    rnd = np.random.default_rng(seed)
    count = (224 - 1) << (sizes.pool_bits - 8)
    picks = rnd.choice(count, 16, replace=False) + (1 << (sizes.pool_bits - 8))
    return sorted(
        ipaddress.IPv4Network((int(p) << (32 - sizes.pool_bits), sizes.pool_bits)) for p in picks
    )


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write_config(
    path: Path, files: dict[str, Path], nets: list[ipaddress.IPv4Network], store: str, vm: str
) -> None:
    lines = ["[resolver]", 'nameservers = ["127.0.0.1:9"]', "", "[dnsbl]", "defaults = false", ""]
    for zone, file in files.items():
        codes = {c: {"meaning": f"{zone} code {c}", "severity": s} for c, s in CODES.items()}
        lines += [
            "[[dnsbl.zones]]",
            f"zone = {_toml(zone)}",
            'type = "ip"',
            f"codes = {_toml(codes)}",
            f"delist = {_toml(f'https://{zone}/lookup?ip={{target}}')}",
            f"mirror = {_toml(str(file))}",
            f"mirror_format = {_toml(FORMATS[zone])}",
            'mirror_max_age = "1d"',
            "",
        ]
    for i, net in enumerate(nets):
        lines += [
            "[[inventory.pools]]",
            f'name = "pool-{i:02d}"',
            f'customer = "customer-{i % 4}"',
            f"cidrs = {_toml([str(net)])}",
            'checks = ["dnsbl"]',
            "",
        ]
    lines += ["[store]", f"url = {_toml(store)}", ""]
    influx = {"url": vm, "token": "x", "org": "repmon", "bucket": "repmon"}
    influx["buffer_dir"] = str(path.parent / "influx-buffer")
    lines += ["[influxdb]", *(f"{k} = {_toml(v)}" for k, v in influx.items()), ""]
    path.write_text("\n".join(lines))


def run_sweep(config: Path) -> Run:
    """``repmon sweep --only dnsbl`` in a fresh process: wall time, peak RSS, CPU."""
    cmd = [sys.executable, "-c", "from monitor.cli import run; run()"]
    cmd += ["sweep", "--config", str(config), "--only", "dnsbl", "--no-progress"]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"repmon sweep exited {proc.returncode}: {errors[-3000:]}")
    line = next((x for x in text.splitlines() if x.startswith("dnsbl sweep")), text[:200])
    return Run(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, line, errors)


def run_dnsperf(port: int, names: list[str], seconds: float, tmp: Path) -> float:
    qfile = tmp / "queries.txt"
    qfile.write_text("".join(f"{n} A\n" for n in names))
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile)]
    cmd += ["-c", "4", "-Q", "500000", "-l", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = re.search(r"Queries per second:\s+([0-9.]+)", out.stdout)
    if out.returncode != 0 or not found:
        raise RuntimeError(f"dnsperf failed: {out.stderr or out.stdout}")
    return float(found.group(1))


def rev(address: str, zone: str) -> str:
    return ".".join(reversed(address.split("."))) + "." + zone


def stored_rows(
    db: Path, zone: str | None = None, targets: list[str] | None = None
) -> Iterator[tuple[str, str, dict]]:
    """(target, zone, data) of the recorded listings, streamed from the SQLite file (millions of
    rows: never held at once)."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        q = "SELECT target, source, data FROM check_state WHERE \"check\" = 'dnsbl'"
        q += " AND status = 'problem'"
        params: list[str] = []
        if zone is not None:
            q += " AND source = ?"
            params.append(zone)
        if targets is not None:
            q += f" AND target IN ({','.join('?' * len(targets))})"
            params += targets
        for target, source, data in con.execute(q, params):
            yield target, source, json.loads(data)
    finally:
        con.close()


def check_store(
    db: Path, files: dict[str, Path], nets: list[ipaddress.IPv4Network], tally: Tally
) -> dict[str, int]:
    """Every recorded listing against the mirror's own single lookup (code, TXT, delist), and
    the count per zone against the listed addresses the pools hold. Returns the count per
    zone."""
    from checks.dnsbl.mirror import load

    per_zone = {}
    for zone, path in files.items():
        mirror = load(path, FORMATS[zone])
        expected = sum(mirror.match_ranges(nets).listed)
        count = 0
        for target, _, data in stored_rows(db, zone):
            count += 1
            tally.checked += 1
            ans = mirror.lookup(target)
            if ans is None:
                tally.bad(f"{target} {zone}: recorded listed, the mirror says not listed")
            elif list(data["codes"]) != list(ans.codes) or data["reason"] != ans.text:
                tally.bad(f"{target} {zone}: recorded {data['codes']} {data['reason']!r}, "
                          f"mirror {ans.codes} {ans.text!r}")  # fmt: skip
            elif data["delist"] != f"https://{zone}/lookup?ip={target}":
                tally.bad(f"{target} {zone}: delist {data['delist']!r}")
        if count != expected:
            tally.bad(f"{zone}: {count:,} listings recorded, {expected:,} listed in the pools")
        per_zone[zone] = count
        del mirror
    return per_zone


def check_against_rbldnsd(port: int, db: Path, sample: list[str], tally: Tally) -> tuple[int, int]:
    """A sample of addresses, every zone, asked of rbldnsd (A and TXT): listed there ⇔
    recorded here, with the same codes and TXT."""
    import dns.message
    import dns.query
    import dns.rdatatype

    recorded: dict[tuple[str, str], dict] = {}
    for i in range(0, len(sample), 500):
        for target, source, data in stored_rows(db, targets=sample[i : i + 500]):
            recorded[(target, source)] = data
    hits = 0

    def ask(name: str, qtype: str) -> dns.message.Message:
        q = dns.message.make_query(name, qtype)
        for _ in range(5):
            with contextlib.suppress(Exception):
                return dns.query.udp(q, "127.0.0.1", port=port, timeout=1.0)
        raise RuntimeError(f"rbldnsd did not answer {name}")

    for address in sample:
        for zone in ZONES:
            tally.checked += 1
            a = ask(rev(address, zone), "A")
            codes = sorted(r.address for rr in a.answer for r in rr if rr.rdtype == dns.rdatatype.A)
            data = recorded.get((address, zone))
            if not codes:
                if data is not None:
                    tally.bad(f"{address} {zone}: rbldnsd not listed, recorded listed")
                continue
            hits += 1
            if data is None:
                tally.bad(f"{address} {zone}: rbldnsd {codes}, not recorded")
                continue
            t = ask(rev(address, zone), "TXT")
            texts = sorted(
                b"".join(r.strings).decode("utf-8", "replace")
                for rr in t.answer
                for r in rr
                if rr.rdtype == dns.rdatatype.TXT
            )
            # one TXT each in this data; with several the order is rbldnsd's own
            same_txt = (
                texts == [data["reason"]]
                if len(texts) == 1
                else (sorted(data["reason"].split(" ")) == sorted(" ".join(texts).split(" ")))
            )
            if codes != sorted(data["codes"]) or not same_txt:
                tally.bad(f"{address} {zone}: rbldnsd {codes} {texts}, recorded {data}")
    return len(sample) * len(ZONES), hits


def sample_addresses(nets: list[ipaddress.IPv4Network], n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        net = rnd.choice(nets)
        out.append(str(net.network_address + rnd.randrange(net.num_addresses)))
    return out


@contextlib.contextmanager
def servers(files: dict[str, Path], with_vm: bool) -> Iterator[tuple[int, str]]:
    from tests.servers import free_port, require, wait_dns

    binary = require("rbldnsd")
    port = free_port()
    specs = [f"{zone}:{FORMATS[zone]}:{path.name}" for zone, path in files.items()]
    directory = next(iter(files.values())).parent
    proc = subprocess.Popen(
        [binary, "-n", "-f", "-q", "-b", f"127.0.0.1/{port}", "-w", str(directory), *specs],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_dns(port, ZONES[0], deadline=300.0)
        if with_vm:
            from tests.tsdb_servers import victoria_metrics

            with victoria_metrics() as vm:
                yield port, vm.url
        else:
            yield port, "http://127.0.0.1:9"
    finally:
        proc.terminate()
        proc.wait(10)


def mirror_part(config: str) -> None:
    """The mirror part of the sweep alone, in this process: load, match, results, and the
    recorder's chunk selection (``Chunk.among``); the results are counted and dropped."""
    import datetime as dt

    from collectors.dnsbl.mirrored import MirrorPart
    from collectors.sweep import Chunk, SweepSummary
    from monitor.config import load_config
    from monitor.inventory import Inventory

    class Discard:
        known: set[str] = set()
        results = 0

        def record_chunk(self, chunk: Chunk, at: dt.datetime) -> None:
            chunk.among(self.known)
            self.results += len(chunk.results)

    cfg = load_config(config)
    summary = SweepSummary("dnsbl", dt.datetime.now(dt.UTC))
    recorder = Discard()
    MirrorPart(cfg.dnsbl, Inventory.from_config(cfg), None, summary.started).run(
        recorder,  # type: ignore[arg-type]
        summary,
    )
    print(f"mirror part: {recorder.results} results")


def run_mirror_part(config: Path) -> Run:
    cmd = [sys.executable, __file__, "--mirror-part", str(config)]
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the mirror part failed: {text[-2000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, text.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1/20 of the data, 16 /16s")
    parser.add_argument("--wide-ranges", action="store_true", help="the generator's ranges whole")
    parser.add_argument("--seconds", type=float, default=5.0, help="dnsperf run length")
    parser.add_argument("--names", type=int, default=300_000, help="dnsperf sample names")
    parser.add_argument("--sample", type=int, default=3000, help="addresses asked of rbldnsd")
    parser.add_argument("--seed", type=int, default=1994)
    parser.add_argument("--mirror-part", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mirror_part:
        mirror_part(args.mirror_part)
        return 0
    for tool in ("dnsperf", "rbldnsd", "victoria-metrics"):
        if not (shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}")):
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    sizes = QUICK if args.quick else FULL
    tmp = Path(tempfile.mkdtemp(prefix="repmon-mirror-sweep-", dir="/tmp"))
    tmp.chmod(0o755)
    try:
        t = time.perf_counter()
        files = make_files(tmp, sizes, args.seed, args.wide_ranges)
        mib = sum(p.stat().st_size for p in files.values()) / 2**20
        print(f"generated 3 zone files, {mib:.0f} MiB, in {time.perf_counter() - t:.0f} s")
        nets = pools(sizes, args.seed)
        pairs = sizes.addresses * len(ZONES)
        print(f"inventory: 16 pools of a /{sizes.pool_bits}, {sizes.addresses:,} addresses; "
              f"{pairs:,} address x zone pairs")  # fmt: skip
        store = f"sqlite:///{tmp / 'bench.db'}"
        with servers(files, with_vm=True) as (port, vm):
            config = tmp / "repmon.toml"
            write_config(config, files, nets, store, vm)
            names = [
                rev(a, z) for a in sample_addresses(nets, args.names, args.seed) for z in ZONES
            ][: args.names]
            qps = run_dnsperf(port, names, args.seconds, tmp)
            print(f"dnsperf -> rbldnsd (same files, {len(names):,} sample names): "
                  f"{qps:,.0f} queries/s", flush=True)  # fmt: skip
            alone = run_mirror_part(config)
            first = run_sweep(config)
            print(f"first sweep: {first.seconds:.0f} s", flush=True)
            second = run_sweep(config)
            qps2 = run_dnsperf(port, names, args.seconds, tmp)
            db = tmp / "bench.db"
            tally = Tally()
            asked, hits = check_against_rbldnsd(
                port, db, sample_addresses(nets, args.sample, args.seed + 1), tally
            )
            rbl_wrong = tally.wrong
            per_zone = check_store(db, files, nets, tally)
        ref = (qps + qps2) / 2
        print(f"dnsperf again after the sweeps: {qps2:,.0f} queries/s; reference {ref:,.0f}/s")
        print(f"{'':36} {'seconds':>8} {'pairs/s':>12} {'ratio':>7} "
              f"{'peak RSS':>9} {'CPU s':>6}")  # fmt: skip
        rows = [
            ("repmon sweep, empty store", first),
            ("repmon sweep, steady state", second),
            ("mirror part alone (no store)", alone),
        ]
        for label, r in rows:
            rate = pairs / r.seconds
            print(f"{label:36} {r.seconds:8.1f} {rate:12,.0f} {rate / ref:7.1f} "
                  f"{r.rss_mib:6.0f} MiB {r.cpu:6.1f}")  # fmt: skip
        print(f"  {second.line}")
        print(
            f"listed pairs recorded: {sum(per_zone.values()):,} ("
            + ", ".join(f"{z.split('.')[0]} {n:,}" for z, n in per_zone.items())
            + ")"
        )
        own = tally.wrong - rbl_wrong
        print(f"correctness: {asked:,} sample pairs against rbldnsd ({hits:,} listed), "
              f"{rbl_wrong} wrong; {tally.checked - asked:,} recorded listings against the "
              f"mirror's own lookup, and the counts per zone: {own} wrong")  # fmt: skip
        for example in tally.examples:
            print(f"  WRONG: {example}")
        worst = min(pairs / r.seconds for r in (first, second)) / ref
        rss = max(r.rss_mib for r in (first, second))
        ok = tally.wrong == 0 and worst >= TARGET_RATIO and rss <= MAX_RSS_MIB
        print(f"full sweep ratio {worst:.1f} (target >= {TARGET_RATIO:g}), peak RSS {rss:.0f} "
              f"MiB (target <= {MAX_RSS_MIB}), wrong {tally.wrong}: "
              + ("met" if ok else "NOT MET"))  # fmt: skip
        print(f"load average {os.getloadavg()[0]:.2f}")
        return 0 if tally.wrong == 0 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

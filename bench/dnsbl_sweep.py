"""Blocklist sweep throughput: repmon's DNS engine against dnsperf, same server, same names.

Generates three ip4set zones over 10.0.0.0/16 (the addresses are only names
inside the zones, never contacted), about 10 % of each listed with several
answer codes, serves them with one rbldnsd on 127.0.0.1, then measures

1. dnsperf over exactly the sweep's names (the ceiling),
2. repmon's transport (:class:`checks.dnsbl.transport.BulkResolver`), and
3. when present, the full sweep (:func:`checks.dnsbl.lookup.check_targets`, which
   also fetches the TXT reason of every listing),

and checks every answer against the zone files. Exits 1 when any answer is
wrong or unknown, 2 when a tool is missing. With two or more CPUs, rbldnsd runs
on CPU 0 and the clients (dnsperf, then repmon) on CPU 1.

    python bench/dnsbl_sweep.py            # 196,608 names
    python bench/dnsbl_sweep.py --quick    # 4,096 names, a smoke run
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.servers starts the real rbldnsd

from checks.dnsbl.transport import NXDOMAIN, A, Answer, BulkResolver  # noqa: E402
from checks.resolver import Nameserver  # noqa: E402

ZONES = ("bl-a.bench.example", "bl-b.bench.example", "bl-c.bench.example")
CODES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.10", "127.0.0.11")
NETWORK = ipaddress.ip_network("10.0.0.0/16")
QUICK_NAMES = 4096


@dataclass
class Sweep:
    """The generated zones and what every name must answer."""

    addresses: list[str]  # targets, in sweep order
    names: list[str]  # query names: every address against every zone
    expected: dict[str, str | None]  # name -> listed code, or None (NXDOMAIN)
    zone_files: dict[str, str]  # zone -> ip4set text


@dataclass
class Tally:
    """Answers checked against the zone files."""

    missed: int = 0  # listed, answered not listed
    false: int = 0  # not listed, answered listed
    wrong_code: int = 0  # listed, with another code
    unknown: int = 0  # no usable answer

    @property
    def wrong(self) -> int:
        return self.missed + self.false + self.wrong_code + self.unknown


def reason(zone: str, address: str) -> str:
    return f"Listed by {zone} for {address}"


def make_sweep(seed: int, limit: int | None) -> Sweep:
    """Zones with ~9 % single listings and ~1 % in /28 ranges; codes drawn at random."""
    rng = random.Random(seed)
    everything = [str(a) for a in NETWORK]
    listed: dict[str, dict[str, str]] = {}
    files: dict[str, str] = {}
    for zone in ZONES:
        codes: dict[str, str] = {}
        lines_by_code: dict[str, list[str]] = {c: [] for c in CODES}
        lines_by_code["127.0.0.2"].append("127.0.0.2")  # the RFC 5782 test point
        for block in rng.sample(range(len(everything) // 16), 40):
            code = rng.choice(CODES)
            first = everything[block * 16]
            lines_by_code[code].append(f"{first}/28")
            for a in everything[block * 16 : block * 16 + 16]:
                codes[a] = code
        for a in everything:
            if a not in codes and rng.random() < 0.09:
                code = rng.choice(CODES)
                codes[a] = code
                lines_by_code[code].append(a)
        text = []
        for code, lines in lines_by_code.items():
            # "$" in the TXT template is replaced by the queried address
            text.append(f":{code}:Listed by {zone} for $")
            text.extend(lines)
        files[zone] = "\n".join(text) + "\n"
        listed[zone] = codes
    names, expected, addresses = [], {}, []
    for a in everything:
        addresses.append(a)
        rev = ".".join(reversed(a.split(".")))
        for zone in ZONES:
            name = f"{rev}.{zone}"
            names.append(name)
            expected[name] = listed[zone].get(a)
        if limit is not None and len(names) >= limit:
            break
    if limit is not None:
        names = names[:limit]
    return Sweep(addresses, names, expected, files)


def check(answers: list[Answer], sweep: Sweep) -> Tally:
    tally = Tally()
    for name, ans in zip(sweep.names, answers, strict=True):
        want = sweep.expected[name]
        if ans.error is not None:
            tally.unknown += 1
        elif want is None:
            if ans.addresses or ans.rcode != NXDOMAIN:
                tally.false += 1
        elif not ans.addresses:
            tally.missed += 1
        elif ans.addresses != (want,):
            tally.wrong_code += 1
    return tally


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu})


@dataclass
class Row:
    """One client's measurements over the rounds."""

    label: str
    names: int = 0
    rates: list[float] = field(default_factory=list)  # per second, one per round
    cpu: list[float] = field(default_factory=list)  # client CPU seconds per query
    tally: Tally | None = None
    note: str = ""

    def add(self, names: int, rate: float, cpu: float, tally: Tally | None, note: str) -> None:
        self.names = names
        self.rates.append(rate)
        self.cpu.append(cpu)
        if tally is not None:
            self.tally = self.tally or Tally()
            for key in ("missed", "false", "wrong_code", "unknown"):
                setattr(self.tally, key, getattr(self.tally, key) + getattr(tally, key))
        self.note = note

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_dnsperf(port: int, query_file: Path, seconds: float) -> tuple[float, float, str]:
    """dnsperf's queries per second over the file (looped for ``seconds``), its CPU per query."""
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(query_file)]
    cmd += ["-c", "4", "-Q", "200000", "-l", str(seconds)]
    before = cpu_seconds(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - before
    found = re.search(r"Queries per second:\s+([0-9.]+)", out.stdout)
    done = re.search(r"Queries completed:\s+(\d+)", out.stdout)
    if out.returncode != 0 or not found or not done:
        raise RuntimeError(f"dnsperf failed ({out.returncode}): {out.stderr or out.stdout}")
    lost = re.search(r"Queries lost:\s+(\d+)", out.stdout)
    note = f"lost {lost.group(1) if lost else '?'}"
    return float(found.group(1)), cpu / max(1, int(done.group(1))), note


def run_transport(
    port: int, sweep: Sweep, concurrency: int | None
) -> tuple[float, float, Tally, str]:
    """Seconds and CPU per query for the sweep's A questions, answers checked."""
    kwargs = {} if concurrency is None else {"concurrency": concurrency}
    with BulkResolver([Nameserver("127.0.0.1", port)], **kwargs) as resolver:
        questions = [(name, A) for name in sweep.names]
        cpu = cpu_seconds(resource.RUSAGE_SELF)
        start = time.perf_counter()
        answers = resolver.resolve(questions)
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu
        note = "re-sent {resent}, ignored {ignored}".format(**resolver.stats)
        note += f", window {resolver.window:.0f} (peak {resolver.peak_window:.0f})"
    return elapsed, cpu / len(questions), check(answers, sweep), note


def run_sweep_engine(
    port: int, sweep: Sweep, concurrency: int | None
) -> tuple[float, float, int, Tally, str]:
    """check_targets over whole targets (all three zones each), TXT reasons checked too."""
    from checks.dnsbl.lookup import Target, check_targets
    from checks.dnsbl.zones import Code, Zone

    count = len(sweep.names) // len(ZONES)
    targets = [Target.parse(a) for a in sweep.addresses[:count]]
    zones = [Zone(z, "ip", codes={c: Code(f"code {c}") for c in CODES}) for z in ZONES]
    kwargs = {} if concurrency is None else {"concurrency": concurrency}
    with BulkResolver([Nameserver("127.0.0.1", port)], **kwargs) as resolver:
        cpu = cpu_seconds(resource.RUSAGE_SELF)
        start = time.perf_counter()
        results = check_targets(targets, zones, resolver)
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu
        note = "pairs/s; re-sent {resent}, ignored {ignored}".format(**resolver.stats)
    tally = Tally()
    for r in results:
        rev = ".".join(reversed(r.target.split(".")))
        want = sweep.expected[f"{rev}.{r.source}"]
        if r.status == "unknown":
            tally.unknown += 1
        elif want is None:
            tally.false += r.status != "ok"
        elif r.status != "problem":
            tally.missed += 1
        elif list(r.fields["codes"]) != [want] or r.fields["reason"] != reason(r.source, r.target):
            tally.wrong_code += 1
    return elapsed, cpu / len(results), len(results), tally, note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_NAMES:,} names only")
    parser.add_argument("--rounds", type=int, help="measure each client N times (3, quick 1)")
    parser.add_argument("--seconds", type=float, help="dnsperf run length (default 3, quick 1)")
    parser.add_argument("--concurrency", type=int, help="repmon's in-flight limit")
    parser.add_argument("--seed", type=int, default=5782)
    args = parser.parse_args(argv)
    for tool in ("dnsperf", "rbldnsd"):
        if not (shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}")):
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    from tests.servers import rbldnsd

    try:
        import checks.dnsbl.lookup  # noqa: F401
    except ImportError:
        with_engine = False
    else:
        with_engine = True
    sweep = make_sweep(args.seed, QUICK_NAMES if args.quick else None)
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    rounds = args.rounds or (1 if args.quick else 3)
    reference = Row("dnsperf -c 4 (reference)")
    transport = Row("repmon transport, A only")
    engine = Row("sweep engine incl. TXT for listed")
    pin(0)  # rbldnsd inherits CPU 0; this process moves to CPU 1 once it runs
    with rbldnsd({z: ("ip4set", text) for z, text in sweep.zone_files.items()}) as server:
        pin(1)
        with tempfile.TemporaryDirectory(prefix="repmon-bench-") as tmp:
            query_file = Path(tmp) / "queries.txt"
            query_file.write_text("".join(f"{name} A\n" for name in sweep.names))
            for _ in range(rounds):
                rate, cpu, note = run_dnsperf(server.port, query_file, seconds)
                reference.add(len(sweep.names), rate, cpu, None, note)
                elapsed, cpu, tally, note = run_transport(server.port, sweep, args.concurrency)
                transport.add(len(sweep.names), len(sweep.names) / elapsed, cpu, tally, note)
                if with_engine:
                    elapsed, cpu, pairs, tally, note = run_sweep_engine(
                        server.port, sweep, args.concurrency
                    )
                    engine.add(pairs, pairs / elapsed, cpu, tally, note)
    rows = [reference, transport] + ([engine] if with_engine else [])
    print_table(rows, reference.rate)
    if not with_engine:
        print("checks.dnsbl.lookup.check_targets is absent: measured the transport only")
    print(f"{rounds} round(s), median shown; load average {os.getloadavg()[0]:.2f}")
    bad = sum(row.tally.wrong for row in rows if row.tally is not None)
    print("every answer matched the zone files" if not bad else f"{bad} WRONG OR UNKNOWN ANSWERS")
    return 1 if bad else 0


def print_table(rows: list[Row], ref: float) -> None:
    head = f"{'client':34} {'names':>8} {'per s':>8} {'ratio':>6} {'range':>15} {'cpu us/q':>8}"
    head += f" {'missed':>6} {'false':>5} {'code':>4} {'unknown':>7}  note"
    print(head)
    for row in rows:
        spread = f"{min(row.rates) / 1000:.0f}k-{max(row.rates) / 1000:.0f}k"
        line = f"{row.label:34} {row.names:8,} {row.rate:8,.0f} {row.rate / ref:6.3f}"
        line += f" {spread:>15} {statistics.median(row.cpu) * 1e6:8.1f}"
        t = row.tally
        if t is None:
            line += f" {'':>6} {'':>5} {'':>4} {'':>7}"
        else:
            line += f" {t.missed:6} {t.false:5} {t.wrong_code:4} {t.unknown:7}"
        print(f"{line}  {row.note}")


if __name__ == "__main__":
    sys.exit(main())

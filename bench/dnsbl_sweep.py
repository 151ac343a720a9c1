"""Blocklist sweep throughput: repmon's DNS engine against dnsperf, same server, same names.

Generates three ip4set zones over 10.0.0.0/16 (the addresses are only names
inside the zones, never contacted), about 10 % of each listed with several
answer codes, serves them with one rbldnsd on 127.0.0.1, then measures

1. dnsperf over exactly the sweep's names (the ceiling),
2. repmon's transport (:class:`checks.dnsbl.transport.BulkResolver`),
3. when present, the full sweep (:func:`checks.dnsbl.lookup.check_targets`, which
   also fetches the TXT reason of every listing), and
4. end to end, the command ``repmon sweep --only dnsbl`` (config, inventory, engine, store,
   time series through the on-disk buffer into VictoriaMetrics) on SQLite and, when the local
   PostgreSQL answers, on PostgreSQL,

and checks every answer against the zone files (the end-to-end rows: the listings the store
holds afterwards). Exits 1 when any answer is wrong or unknown, 2 when a tool is missing.
With two or more CPUs, rbldnsd and VictoriaMetrics run on CPU 0 and the clients (dnsperf,
then repmon) on CPU 1.

    python bench/dnsbl_sweep.py            # 196,608 names
    python bench/dnsbl_sweep.py --quick    # 4,096 names, a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import io
import ipaddress
import json
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
from collections.abc import Iterator
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


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def e2e_config(
    path: Path,
    port: int,
    sweep: Sweep,
    store_url: str,
    influx: str | None,
    concurrency: int | None,
) -> Path:
    """A repmon config for the sweep: the zones, one pool holding exactly the sweep's targets
    (10.0.0.0/16, or the quick run's addresses one by one), the store, ``[influxdb]`` (when
    there is a server to write to)."""
    count = len(sweep.names) // len(ZONES)
    cidrs = [str(NETWORK)] if count == NETWORK.num_addresses else sweep.addresses[:count]
    resolver = {"nameservers": [f"127.0.0.1:{port}"]}
    if concurrency is not None:
        resolver["concurrency"] = concurrency
    lines = ["[resolver]", *(f"{k} = {_toml(v)}" for k, v in resolver.items()), ""]
    lines += ["[dnsbl]", "defaults = false", ""]
    for zone in ZONES:
        codes = {c: {"meaning": f"code {c}", "severity": "high"} for c in CODES}
        lines += ["[[dnsbl.zones]]", f'zone = "{zone}"', 'type = "ip"', f"codes = {_toml(codes)}"]
        lines.append("")
    lines += ["[inventory]", f"max_cidr_addresses = {NETWORK.num_addresses}", ""]
    lines += [
        "[[inventory.pools]]",
        'name = "bench"',
        'customer = "acme"',
        f"cidrs = {_toml(cidrs)}",
    ]
    lines += ["", "[store]", f"url = {_toml(store_url)}", ""]
    if influx is not None:
        buffer = path.parent / f"buffer-{path.stem}"
        influx_cfg = {"url": influx, "token": "x", "org": "repmon", "bucket": "repmon"}
        influx_cfg["buffer_dir"] = str(buffer)
        lines += ["[influxdb]", *(f"{k} = {_toml(v)}" for k, v in influx_cfg.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_e2e(config: Path, store_url: str, sweep: Sweep) -> tuple[float, float, int, Tally, str]:
    """``repmon sweep --only dnsbl`` in this process, timed from the command's start to its
    return (config, inventory, engine, store, series flushed); then the listings the store
    holds are checked against the zone files."""
    from monitor.cli import main as repmon
    from monitor.store import Store
    from monitor.store.checks import current_problems

    out, err = io.StringIO(), io.StringIO()
    cpu = cpu_seconds(resource.RUSAGE_SELF)
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = repmon(["sweep", "--config", str(config), "--only", "dnsbl", "--no-progress"])
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu
    if status != 0:
        raise RuntimeError(f"repmon sweep exited {status}: {err.getvalue()[-2000:]}")
    count = len(sweep.names) // len(ZONES)
    pairs = count * len(ZONES)
    want = {
        (a, z): sweep.expected[f"{'.'.join(reversed(a.split('.')))}.{z}"]
        for a in sweep.addresses[:count]
        for z in ZONES
    }
    tally = Tally()
    store = Store.open(store_url)
    try:
        got = {(p.target, p.source): p for p in current_problems(store, ["dnsbl"])}
    finally:
        store.close()
    for key, code in want.items():
        p = got.get(key)
        if code is None:
            tally.false += p is not None
        elif p is None:
            tally.missed += 1
        elif list(p.data.get("codes") or []) != [code] or p.data.get("reason") != reason(
            key[1], key[0]
        ):
            tally.wrong_code += 1
    line = next((x for x in out.getvalue().splitlines() if x.startswith("dnsbl sweep")), "")
    tally.unknown += int(re.search(r"(\d+) unknown", line).group(1)) if line else 0
    more = re.search(r"and ([\d,]+) more changes", out.getvalue())
    shown = sum(1 for x in out.getvalue().splitlines() if x.startswith("  dnsbl "))
    changes = shown + (int(more.group(1).replace(",", "")) if more else 0)
    return elapsed, cpu / pairs, pairs, tally, f"pairs/s; {changes:,} state changes"


@contextlib.contextmanager
def scratch_stores(tmp: Path, with_pg: bool) -> Iterator[dict[str, str]]:
    """A SQLite file and, when the local PostgreSQL answers, a scratch schema on it."""
    stores = {"SQLite": f"sqlite:///{tmp / 'bench.db'}"}
    if not with_pg:
        yield stores
        return
    from tests.pg import pg_available, pg_schema_url

    if not pg_available():
        print("PostgreSQL is not reachable on 127.0.0.1:5432: end to end on SQLite only")
        yield stores
        return
    with pg_schema_url() as url:
        yield stores | {"PostgreSQL": url}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_NAMES:,} names only")
    parser.add_argument("--rounds", type=int, help="measure each client N times (3, quick 1)")
    parser.add_argument("--seconds", type=float, help="dnsperf run length (default 3, quick 1)")
    parser.add_argument("--concurrency", type=int, help="repmon's in-flight limit")
    parser.add_argument("--seed", type=int, default=5782)
    parser.add_argument("--no-e2e", action="store_true", help="skip the repmon sweep rows")
    parser.add_argument("--no-pg", action="store_true", help="end to end on SQLite only")
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
    e2e: dict[str, Row] = {}
    first: dict[str, float] = {}
    stores: dict[str, str] = {}
    pin(0)  # rbldnsd and VictoriaMetrics inherit CPU 0; this process moves to CPU 1 after
    zones = {z: ("ip4set", text) for z, text in sweep.zone_files.items()}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(rbldnsd(zones))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="repmon-bench-")))
        configs: dict[str, Path] = {}
        if not args.no_e2e:
            influx = None
            if shutil.which("victoria-metrics"):
                from tests.tsdb_servers import victoria_metrics

                influx = stack.enter_context(victoria_metrics()).url
            else:
                print("victoria-metrics is not installed: end to end without [influxdb]")
            stores = stack.enter_context(scratch_stores(tmp, not args.no_pg))
            for name, url in stores.items():
                configs[name] = e2e_config(
                    tmp / f"{name.lower()}.toml", server.port, sweep, url, influx, args.concurrency
                )
                e2e[name] = Row(f"repmon sweep e2e, {name}")
        pin(1)
        query_file = tmp / "queries.txt"
        query_file.write_text("".join(f"{name} A\n" for name in sweep.names))
        for name, config in configs.items():  # the first sweep into an empty store
            elapsed, _, pairs, _, _ = run_e2e(config, stores[name], sweep)
            first[name] = pairs / elapsed
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
            for name, config in configs.items():
                elapsed, cpu, pairs, tally, note = run_e2e(config, stores[name], sweep)
                e2e[name].add(pairs, pairs / elapsed, cpu, tally, note)
    for name, row in e2e.items():
        row.note += f"; first sweep (empty store) {first[name]:,.0f}/s"
    rows = [reference, transport] + ([engine] if with_engine else []) + list(e2e.values())
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

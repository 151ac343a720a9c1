"""Abuse reports per second through the sink: SMTP -> spool (fsync) -> parse -> classify ->
attribute -> store, and a 50,000-row Shadowserver CSV attributed in bounded memory.

The harness is bench/sink_throughput.py's (imported, not copied): the same client (K threads,
each with one persistent smtplib session), the same reference measured in the same run (an
aiosmtpd handler that answers 250 and does nothing), and ``repmon sink`` itself as a
subprocess with its intake worker, its rate counted until the spool is drained. Here the
sink's ``[abuse] accept_domains`` holds the client's domain, so every message goes to the
abuse intake. The messages are distinct abuse reports: X-ARF 0.2 login-attack mails, small
zipped Shadowserver CSV reports and free-text letters, about our customers' addresses and
others'. After each round every 250'd message must be in ``abuse_messages`` exactly once.

The CSV part: a 50,000-row Shadowserver open-resolver report over 20,000 distinct addresses
(10 % of them in four customers' pools) parsed, classified and attributed (``Preparer``),
then stored; rows per second, and the peak of Python allocations (tracemalloc) while parsing
and attributing it, plain and zipped.

    python bench/abuse_intake.py [--quick] [--messages M] [--connections K] [--rounds R]
                                 [--store URL]

Exit status: 0 when nothing was lost, 1 otherwise (ratios and rates are reported).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import io
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import sink_throughput as harness  # noqa: E402  (bench/sink_throughput.py)

DOMAIN = harness.DOMAIN
CSV_ROWS = 50_000
CSV_DISTINCT = 20_000
TARGET_ROWS_PER_SECOND = 20_000
#: the abuse desk and the customers' pools of the sink under test
EXTRA_CONFIG = f"""
[abuse]
accept_domains = ["{DOMAIN}"]

[[inventory.pools]]
name = "acme-web"
customer = "acme"
cidrs = ["198.51.100.0/24"]

[[inventory.pools]]
name = "globex-web"
customer = "globex"
cidrs = ["203.0.113.0/24"]
"""
#: the big CSV's inventory: four customers' /20 pools in 172.16.0.0/18
CSV_POOLS = [
    {"name": f"pool-{i}", "customer": f"customer-{i}", "cidrs": [f"172.16.{16 * i}.0/20"]}
    for i in range(4)
]
HEADER = '"timestamp","ip","protocol","port","hostname","tag","asn","geo","region","city"\n'


def _ip(n: int) -> str:
    """Ours (a customer's) for n % 3 == 0, else somebody else's."""
    if n % 3 == 0:
        return f"198.51.100.{n % 250 + 1}" if n % 2 else f"203.0.113.{n % 250 + 1}"
    return f"100.{64 + n % 60}.{n // 250 % 250}.{n % 250 + 1}"


def xarf_mail(n: int) -> bytes:
    ip = _ip(n)
    part = (
        "---\r\nReported-From: reports@fail2ban.example\r\nCategory: abuse\r\n"
        "Report-Type: login-attack\r\nService: ssh\r\nVersion: 0.2\r\n"
        "Date: Tue, 14 May 2024 07:58:01 +0000\r\nSource-Type: ip-address\r\n"
        f"Source: {ip}\r\nPort: 22\r\nReport-ID: {n}@fail2ban.example\r\n"
    )
    return (
        f"From: Reporter <reports@fail2ban.example>\r\nTo: abuse@{DOMAIN}\r\n"
        f"Subject: abuse report about {ip} [{n}]\r\nDate: Tue, 14 May 2024 08:00:00 +0000\r\n"
        "X-ARF: YES\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n--XX\r\n'
        f"Content-Type: text/plain\r\n\r\nThe address {ip} attacked our SSH server.\r\n"
        f'--XX\r\nContent-Type: text/plain; name="report.txt"\r\n\r\n{part}\r\n'
        '--XX\r\nContent-Type: text/plain; name="logfile.log"\r\n\r\n'
        f"May 14 07:58:01 sshd: Failed password for root from {ip} port 4711 ssh2\r\n--XX--\r\n"
    ).encode()


def csv_text(ips: list[str], rows: int) -> bytes:
    body = "".join(
        f'"2024-05-01 00:{i // 60 % 60:02d}:{i % 60:02d}","{ips[i % len(ips)]}","udp",53,,'
        f'"openresolver",64500,"NL","X","Y"\n'
        for i in range(rows)
    )
    return (HEADER + body).encode()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def shadowserver_mail(n: int) -> bytes:
    name = f"2024-05-{n % 28 + 1:02d}-scan_dns-nl-asn-{n}.csv"
    data = zipped(name, csv_text([_ip(n + k) for k in range(10)], 10))
    body = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return (
        f"From: autoreports@shadowserver.org\r\nTo: abuse@{DOMAIN}\r\n"
        f"Subject: Shadowserver Open DNS Resolvers Report {n}\r\n"
        "Date: Wed, 01 May 2024 06:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n'
        "\r\nThe report is attached.\r\n--B\r\nContent-Type: application/zip\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="{name}.zip"\r\n\r\n{body}\r\n--B--\r\n'
    ).encode()


def letter(n: int) -> bytes:
    ip = _ip(n)
    return (
        f"From: Admin <admin@victim{n % 50}.example>\r\nTo: abuse@{DOMAIN}\r\n"
        f"Subject: SSH brute force from {ip}\r\nDate: Tue, 14 May 2024 09:00:00 +0000\r\n\r\n"
        f"Hello,\r\n\r\nyour IP address {ip} is running a brute force attack against our "
        f"ssh server since this morning (ticket {n}). Log excerpt:\r\n\r\n"
        f"May 14 08:{n % 60:02d}:01 sshd: Failed password for admin from {ip}\r\n"
        "Please stop it.\r\n"
    ).encode()


def report(n: int) -> bytes:
    """The n-th distinct abuse report of the mix: 6 X-ARF, 2 Shadowserver, 2 letters in 10."""
    kind = n % 10
    if kind < 6:
        return xarf_mail(n)
    if kind < 8:
        return shadowserver_mail(n)
    return letter(n)


# -- measurements --------------------------------------------------------------------------


def verify(store_url: str, acked: list[str]) -> tuple[list[str], int]:
    """Problems found (a 250'd message not stored, or stored twice) and the reports stored."""
    import sqlalchemy as sa

    from monitor.store import Store
    from monitor.store.schema import abuse_messages, abuse_reports

    store = Store.open(store_url)
    try:
        with store.begin() as conn:
            hashes = [h for (h,) in conn.execute(sa.select(abuse_messages.c.message_hash))]
            reports = int(
                conn.execute(sa.select(sa.func.count()).select_from(abuse_reports)).scalar() or 0
            )
            per_message = dict(
                conn.execute(
                    sa.select(abuse_reports.c.message_hash, sa.func.count())
                    .group_by(abuse_reports.c.message_hash)
                    .having(sa.func.count() > 1)
                ).all()
            )
    finally:
        store.close()
    problems = []
    missing = set(acked) - set(hashes)
    if missing:
        problems.append(f"{len(missing)} acknowledged message(s) are not in abuse_messages")
    if len(hashes) != len(set(acked)) + 1:  # and the warm-up message
        problems.append(f"abuse_messages has {len(hashes)} rows for {len(set(acked))} messages")
    if per_message:
        problems.append(f"{len(per_message)} message(s) stored more than one report")
    return problems, reports


def bench_pipeline(messages: list[bytes], store_url: str, batch: int = 200) -> dict:
    """``ingest_batch`` of the abuse intake alone, batches as the processor takes them."""
    from collectors.feedback.pipeline import SpooledItem
    from monitor.abuse_intake import ingest_batch
    from monitor.config import parse_config
    from monitor.inventory import Inventory
    from monitor.store import Store

    config = parse_config(
        {
            "abuse": {"accept_domains": [DOMAIN]},
            "inventory": {
                "pools": [
                    {"name": "acme-web", "customer": "acme", "cidrs": ["198.51.100.0/24"]},
                    {"name": "globex-web", "customer": "globex", "cidrs": ["203.0.113.0/24"]},
                ]
            },
        }
    )
    inventory = Inventory.from_config(config)
    store = Store.open(store_url)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(messages), batch):
            now = dt.datetime.now(dt.UTC)
            items = [
                SpooledItem(raw, hashlib.sha256(raw).hexdigest(), now)
                for raw in messages[i : i + batch]
            ]
            ingest_batch(store, config, inventory, items)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return {"rate": len(messages) / seconds, "cpu_ms": cpu * 1000 / len(messages)}
    finally:
        store.close()


def bench_csv(store_url: str, rows: int = CSV_ROWS) -> dict:
    """The big CSV: parse + classify + attribute (rows/s), the store's write, and the peak of
    Python allocations while parsing and attributing (plain and zipped)."""
    from collectors.abuse import parse_abuse
    from collectors.abuse.prepare import Preparer
    from monitor.config import parse_config
    from monitor.inventory import Inventory
    from monitor.store import Store
    from monitor.store.abuse import store_messages

    config = parse_config({"inventory": {"pools": CSV_POOLS}})
    inventory = Inventory.from_config(config)
    preparer = Preparer(config.abuse, inventory)  # type: ignore[attr-defined]
    ours = [f"172.16.{(i * 7) % 64}.{i % 250 + 1}" for i in range(CSV_DISTINCT // 10)]
    others = [f"100.{64 + i // 62_500}.{i // 250 % 250}.{i % 250 + 1}" for i in range(CSV_DISTINCT)]
    ips = (ours + others)[:CSV_DISTINCT]
    name = "2024-05-01-scan_dns-nl-asn.csv"
    data = csv_text(ips, rows)
    packed = zipped(name, data)
    now = dt.datetime.now(dt.UTC)
    out: dict = {"bytes": len(data), "zip_bytes": len(packed)}

    start = time.perf_counter()
    [parsed] = parse_abuse(data, name)
    out["parse_s"] = time.perf_counter() - start
    start = time.perf_counter()
    prepared = preparer.message(data, "c" * 64, now, filename=name)
    out["prepare_s"] = time.perf_counter() - start
    start = time.perf_counter()
    preparer.message(packed, "d" * 64, now, filename=name + ".zip")
    out["prepare_zip_s"] = time.perf_counter() - start
    [rep] = prepared.reports
    out["count"], out["distinct"] = rep.report.count, len(rep.report.ips)
    out["attributions"] = [(a.customer or "not ours", a.addresses) for a in rep.attributions]
    store = Store.open(store_url)
    try:
        start = time.perf_counter()
        store_messages(store, [prepared])
        out["store_s"] = time.perf_counter() - start
    finally:
        store.close()
    del parsed, prepared, rep
    for label, raw, fname in (("peak", data, name), ("peak_zip", packed, name + ".zip")):
        tracemalloc.start()
        preparer.message(raw, "e" * 64, now, filename=fname)
        out[label] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few hundred messages, one round")
    parser.add_argument("--messages", type=int, help="messages per server (default 2000)")
    parser.add_argument("--connections", type=int, default=8, help="client sessions (8)")
    parser.add_argument("--rounds", type=int, help="rounds, best of each kept (default 3)")
    parser.add_argument(
        "--store", help="store URL (default: SQLite in a temp dir); give it a scratch database"
    )
    args = parser.parse_args(argv)
    count = args.messages or (200 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 3)
    connections = min(args.connections, 4) if args.quick else args.connections
    messages = [report(i) for i in range(count)]

    def best(old: dict, new: dict, key: str = "rate") -> dict:
        return new if not old or new[key] > old[key] else old

    noop: dict = {}
    result: dict = {}
    pipeline: dict = {}
    csv: dict = {}
    problems: list[str] = []
    stored_reports = 0
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="abuse-bench-") as tmp:
            work = Path(tmp)
            store_url = args.store or f"sqlite:///{work / 'repmon.db'}"
            if args.store:
                _empty(store_url)
            noop = best(noop, harness.bench_intake(messages, connections, ["--noop-server"]))
            this = harness.bench_sink(messages, connections, work, store_url, EXTRA_CONFIG)
            found, stored_reports = verify(store_url, this["acked"])
            problems += found
            if this["errors"]:
                problems.append(f"the sink refused {this['errors']} message(s)")
            if this["exit"] != 0:
                problems.append(f"the sink exited with status {this['exit']} on SIGTERM")
            result = best(result, this, "sustained_rate")
            if args.store:
                _empty(store_url)
            else:
                store_url = f"sqlite:///{work / 'pipeline.db'}"
            pipeline = best(pipeline, bench_pipeline(messages, store_url))
            if args.store:
                _empty(store_url)
            else:
                store_url = f"sqlite:///{work / 'csv.db'}"
            this_csv = bench_csv(store_url, 5_000 if args.quick else CSV_ROWS)
            this_csv["rate"] = this_csv["count"] / this_csv["prepare_s"]
            csv = best(csv, this_csv)
    ratio = result["sustained_rate"] / noop["rate"]
    backend = (args.store or "sqlite").split(":")[0]
    print(f"abuse reports: {count} over {connections} SMTP sessions, best of {rounds}; "
          f"store {backend}")  # fmt: skip
    print(f"no-op aiosmtpd handler:            {noop['rate']:8.0f} msg/s")
    print(f"repmon sink, 250 after fsync:      {result['intake_rate']:8.0f} reports/s (intake)")
    print(f"repmon sink, spool drained:        {result['sustained_rate']:8.0f} reports/s "
          "(sustained: sink -> parse -> classify -> attribute -> store)")  # fmt: skip
    print(f"abuse intake alone, no SMTP:       {pipeline['rate']:8.0f} reports/s")
    print(
        "CPU ms per report: no-op server {:.2f}; sink with its worker {:.2f}; intake alone {:.2f}"
        .format(noop["server_ms"], result["server_ms"], pipeline["cpu_ms"])
    )  # fmt: skip
    print(f"ratio sustained / no-op: {ratio:.2f}")
    rows_rate = csv["rate"]
    verdict = "meets" if rows_rate >= TARGET_ROWS_PER_SECOND else "below"
    print(
        f"Shadowserver CSV: {csv['count']:,} rows, {csv['distinct']:,} distinct addresses, "
        f"{csv['bytes'] / 1e6:.1f} MB ({csv['zip_bytes'] / 1e6:.1f} MB zipped)"
    )
    print(
        f"  parse + classify: {csv['parse_s']:.2f} s; + attribute: {csv['prepare_s']:.2f} s = "
        f"{rows_rate:,.0f} rows/s ({verdict} the {TARGET_ROWS_PER_SECOND:,} rows/s target); "
        f"zipped {csv['prepare_zip_s']:.2f} s; store {csv['store_s'] * 1000:.0f} ms"
    )
    print(
        f"  peak Python allocations parsing and attributing: {csv['peak'] / 2**20:.1f} MiB "
        f"(zipped: {csv['peak_zip'] / 2**20:.1f} MiB) for a {csv['bytes'] / 2**20:.1f} MiB file"
    )
    print(f"  attribution rows: {csv['attributions']}")
    print(f"reports stored in the last round: {stored_reports}")
    print("loss check: " + ("every 250'd message stored exactly once" if not problems else ""))
    for p in problems:
        print(f"  PROBLEM: {p}")
    return 1 if problems else 0


def _empty(store_url: str) -> None:
    import sqlalchemy as sa

    from monitor.store import Store
    from monitor.store.schema import abuse_addresses, abuse_counts, abuse_messages, abuse_reports

    store = Store.open(store_url)
    try:
        with store.begin() as conn:
            for table in (abuse_addresses, abuse_reports, abuse_counts, abuse_messages):
                conn.execute(sa.delete(table))
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())

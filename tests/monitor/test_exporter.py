"""Exact series: counters exported once per change, as deltas, and DMARC records once each.

Against a real VictoriaMetrics (which keeps every sample it gets: a re-sent bucket would
count twice) after many flushes with writes in between, new and late (an old bucket); with
InfluxDB's semantics (a point with the same series and timestamp overwrites); and with two
writers on PostgreSQL committing around the exporter, one of them holding its transaction
open while a later one commits and is exported: nothing lost, nothing doubled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import monitor.exporter as exporter_module
from collectors.feedback.pipeline import SpooledItem
from collectors.volume.sent import sent_count
from monitor.config import Config, parse_config
from monitor.config.influxdb import InfluxConfig
from monitor.exporter import Exporter
from monitor.feedback_intake import ingest_batch
from monitor.inventory import Inventory
from monitor.store import Store
from monitor.store.db import Tx
from monitor.store.feedback import store_messages
from monitor.store.schema import dmarc_records, feedback_counts, sent_volume
from monitor.store.volume import add_sent
from monitor.timeseries.writer import InfluxWriter
from tests.monitor.trust_support import dmarc_report
from tests.tsdb_servers import VictoriaMetrics, victoria_metrics

IPS = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
HOUR = dt.timedelta(hours=1)


def config_for(store_url: str) -> Config:
    return parse_config(
        {
            "store": {"url": store_url},
            "inventory": {
                "pools": [{"name": "p1", "customer": "acme", "cidrs": ["203.0.113.0/28"]}]
            },
            # the intake lists DMARC records for export only when something exports
            "influxdb": {"url": "http://127.0.0.1:9"},
        }
    )


_SERIAL = iter(range(10**9))


def bounce(ip: str, domain: str = "mailbox.test") -> bytes:
    """A distinct RFC 3464 hard bounce of mail sent from ``ip``."""
    n = next(_SERIAL)
    rcpt = f"user{n}@{domain}"
    return (
        "From: MAILER-DAEMON@mx.mailbox.test\r\nTo: bounces@fbl.repmon.test\r\n"
        f"Subject: Undelivered {n}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.mailbox.test\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: User unknown\r\n\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: news@customer.test\r\nTo: {rcpt}\r\nX-Sending-IP: {ip}\r\n\r\n--b--\r\n"
    ).encode()


def items(raws: list[bytes], at: dt.datetime) -> list[SpooledItem]:
    return [SpooledItem(r, hashlib.sha256(r).hexdigest(), at) for r in raws]


class Capture:
    """A writer that keeps what it is given (the exporter's view of the time series)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, lines: list[str]) -> None:
        with self._lock:
            self.lines += lines


_LINE = re.compile(r"^(?P<series>\S+) (?P<fields>\S+) (?P<ts>\d+)$")


def parse(line: str) -> tuple[str, dict[str, int], int]:
    m = _LINE.match(line)
    assert m, line
    fields = {}
    for part in m["fields"].split(","):
        k, _, v = part.partition("=")
        fields[k] = int(v.rstrip("i"))
    return m["series"], fields, int(m["ts"])


def influx_sums(lines: list[str], measurement: str, field: str) -> dict[dt.datetime, int]:
    """Per hour, the sum InfluxDB would give: a point with the same series and timestamp
    overwrites the earlier one."""
    kept: dict[tuple[str, int], int] = {}
    for line in lines:
        series, fields, ts = parse(line)
        if series.split(",")[0] == measurement and field in fields:
            kept[(series, ts)] = fields[field]
    out: dict[dt.datetime, int] = defaultdict(int)
    for (_, ts), v in kept.items():
        out[_hour(ts // 1_000_000)] += v
    return dict(out)


def _hour(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms // 3_600_000 * 3600, dt.UTC)


def store_sums(store: Store, table: sa.Table, **where: str) -> dict[dt.datetime, int]:
    with store.begin() as tx:
        q = sa.select(table.c.bucket_start, sa.func.sum(table.c.count)).group_by(
            table.c.bucket_start
        )
        for k, v in where.items():
            q = q.where(table.c[k] == v)
        return {b: int(n) for b, n in tx.execute(q)}


def vm_sums(vm: VictoriaMetrics, name: str) -> dict[dt.datetime, int]:
    out: dict[dt.datetime, int] = defaultdict(int)
    for s in vm.export(name):
        for ts, v in zip(s["timestamps"], s["values"], strict=True):
            out[_hour(ts)] += int(v)
    return dict(out)


@pytest.fixture(scope="module")
def vm() -> Iterator[VictoriaMetrics]:
    with victoria_metrics() as server:
        yield server


def test_sums_in_victoriametrics_match_the_store_after_many_flushes(
    tmp_path: Path, vm: VictoriaMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporter_module, "FULL_SCAN_SECONDS", 0.0)  # old buckets each time
    config = config_for(f"sqlite:///{tmp_path / 'repmon.db'}")
    store = Store.open(config.store.url)
    inventory = Inventory.from_config(config)
    writer = InfluxWriter(
        InfluxConfig.model_validate(
            {"url": vm.url, "token": "x", "bucket": "repmon", "buffer_dir": str(tmp_path / "b")}
        )
    )
    capture = Capture()

    class Both:
        def write(self, lines: list[str]) -> None:
            writer.write(lines)
            capture.write(lines)

    exporter = Exporter(store, Both(), inventory)
    rng = random.Random(7)
    now = dt.datetime.now(dt.UTC)
    hours = [now, now - HOUR, now - 3 * HOUR, now - dt.timedelta(days=4)]  # the last: old
    try:
        for _ in range(25):
            for _ in range(rng.randint(1, 4)):
                at = rng.choice(hours)
                raws = [bounce(rng.choice(IPS)) for _ in range(rng.randint(1, 6))]
                ingest_batch(store, config, inventory, items(raws, at))
                add_sent(store, [sent_count(rng.choice(IPS), rng.randint(1, 500), at, "mta")])
            exporter.export()
            assert writer.flush() >= 0
        assert exporter.export() == 0  # nothing changed: nothing sent
        writer.flush()
        assert writer.pending() == 0
        want_bounces = store_sums(store, feedback_counts, kind="bounce")
        want_sent = store_sums(store, sent_volume)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got_bounces, got_sent = vm_sums(vm, "feedback_bounce"), vm_sums(vm, "feedback_sent")
            if (got_bounces, got_sent) == (want_bounces, want_sent):
                break
            time.sleep(0.2)
        assert got_bounces == want_bounces
        assert got_sent == want_sent
        assert len(want_bounces) == 4  # the old bucket too
        # InfluxDB's overwrite semantics give the same sums from the same points
        assert influx_sums(capture.lines, "feedback", "bounce") == want_bounces
        assert influx_sums(capture.lines, "feedback", "sent") == want_sent
        # every point of a series lies at its own timestamp inside its hour
        seen: set[tuple[str, int]] = set()
        for line in capture.lines:
            series, _, ts = parse(line)
            if series.startswith("feedback"):
                assert (series, ts) not in seen
                seen.add((series, ts))
    finally:
        writer.close()
        store.close()


def test_nothing_changed_nothing_sent(tmp_path: Path) -> None:
    config = config_for(f"sqlite:///{tmp_path / 'repmon.db'}")
    store = Store.open(config.store.url)
    inventory = Inventory.from_config(config)
    capture = Capture()
    exporter = Exporter(store, capture, inventory)
    now = dt.datetime.now(dt.UTC)
    try:
        ingest_batch(store, config, inventory, items([bounce(IPS[0]) for _ in range(3)], now))
        exporter.export()
        first = [line for line in capture.lines if line.startswith("feedback")]
        assert len(first) == 1 and "bounce=3i" in first[0]
        for _ in range(3):
            exporter.export()
        assert [line for line in capture.lines if line.startswith("feedback")] == first
        ingest_batch(store, config, inventory, items([bounce(IPS[0])], now))
        exporter.export()
        delta = [line for line in capture.lines if line.startswith("feedback")][1:]
        assert len(delta) == 1 and "bounce=1i" in delta[0]
        assert parse(delta[0])[2] - parse(first[0])[2] == 1_000_000  # the next millisecond
    finally:
        store.close()


# -- two writers on PostgreSQL ---------------------------------------------------------------


class HeldStore(Store):
    """A store whose transactions wait, after their work and before their commit, until
    ``release`` is set: a writer that commits late."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.engine, store.url)
        self.written = threading.Event()
        self.release = threading.Event()

    @contextmanager
    def begin(self) -> Iterator[Tx]:
        with super().begin() as tx:
            yield tx
            self.written.set()
            assert self.release.wait(30)


def exported_totals(lines: list[str]) -> tuple[dict[tuple[str, dt.datetime], int], int]:
    """(series, hour) -> bounces, and DMARC messages, as the exporter wrote them."""
    bounces: dict[tuple[str, dt.datetime], int] = defaultdict(int)
    messages = 0
    for line in lines:
        series, fields, ts = parse(line)
        if series.startswith("feedback,") and "bounce" in fields:
            bounces[(series, _hour(ts // 1_000_000))] += fields["bounce"]
        if series.startswith("dmarc,"):
            messages += fields["messages"]
    return dict(bounces), messages


def stored_totals(store: Store) -> tuple[dict[tuple[str, dt.datetime], int], int]:
    from monitor.timeseries.schema import feedback_points

    with store.begin() as tx:
        rows = [
            dict(r._mapping)
            for r in tx.execute(
                sa.select(feedback_counts).where(feedback_counts.c.kind == "bounce")
            )
        ]
        messages = int(tx.execute(sa.select(sa.func.sum(dmarc_records.c.count))).scalar() or 0)
    return exported_totals(feedback_points(rows))[0], messages


def prepare(config: Config, inventory: Inventory, raws: list[bytes], at: dt.datetime) -> Any:
    from collectors.feedback.pipeline import Preparer

    preparer = Preparer(inventory, config.feedback)
    return [preparer.spooled(i) for i in items(raws, at)]


@pytest.mark.postgres
def test_two_writers_on_postgresql_around_the_exporter(pg_url: str) -> None:
    config = config_for(pg_url)
    store = Store.open(pg_url)
    inventory = Inventory.from_config(config)
    capture = Capture()
    exporter = Exporter(store, capture, inventory)
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(days=3)  # outside the lookback: a late write to an old bucket
    try:
        # 1. writer A stores DMARC records and bounces but commits late; writer B commits
        #    later rows (higher ids) first, and the exporter exports them in between
        held = HeldStore(store)
        late = prepare(
            config,
            inventory,
            [
                dmarc_report(IPS[0], 111, now - HOUR, report_id="late"),
                bounce(IPS[0]),
                bounce(IPS[1]),
            ],
            old,
        )
        a = threading.Thread(target=store_messages, args=(held, late))
        a.start()
        assert held.written.wait(30)
        early = [dmarc_report(IPS[1], 222, now - HOUR, report_id="early"), bounce(IPS[0])]
        ingest_batch(store, config, inventory, items(early, now))
        exporter.export()
        held.release.set()
        a.join(30)
        exporter.export()  # the last 48 hours: A's DMARC records, not its old bucket ...
        assert exported_totals(capture.lines)[1] == 333
        exporter._full_at = 0.0  # ... which the next full comparison (hourly) finds
        exporter.export()
        assert exported_totals(capture.lines) == stored_totals(store)
        assert exported_totals(capture.lines)[1] == 333

        # 2. two writer threads committing all the while the exporter exports
        rng = random.Random(11)
        errors: list[BaseException] = []

        def write(seed: int) -> None:
            r = random.Random(seed)
            try:
                for _ in range(30):
                    at = r.choice([now, now - HOUR, old])
                    raws = [bounce(r.choice(IPS)) for _ in range(r.randint(1, 5))]
                    if r.random() < 0.3:
                        raws.append(
                            dmarc_report(
                                r.choice(IPS),
                                r.randint(1, 50),
                                now - HOUR,
                                report_id=f"{seed}-{r.random()}",
                            )
                        )
                    ingest_batch(store, config, inventory, items(raws, at))
            except BaseException as exc:  # reported below
                errors.append(exc)

        writers = [threading.Thread(target=write, args=(rng.random(),)) for _ in range(2)]
        for w in writers:
            w.start()
        while any(w.is_alive() for w in writers):
            exporter.export()
            time.sleep(0.01)
        for w in writers:
            w.join()
        assert not errors
        exporter._full_at = 0.0
        exporter.export()
        assert exported_totals(capture.lines) == stored_totals(store)
    finally:
        store.close()

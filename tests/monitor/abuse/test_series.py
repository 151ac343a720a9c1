"""The ``abuse`` measurement: bounded tags, totals that a re-export overwrites, the review
backlog dropping to 0, reclassifications and first actions; exported from the store."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

from collectors.feedback.pipeline import SpooledItem
from monitor.abuse_intake import AbuseSeries, SeriesThread, ingest_batch, reclassify_report
from monitor.cases import acknowledge, evaluate, list_cases
from monitor.inventory import Inventory
from monitor.store import Store
from monitor.store.abuse import find_reports
from monitor.timeseries.abuse import count_points, reporter_tag
from tests.monitor.abuse.samples import (
    ACME_IPS,
    FOREIGN,
    GLOBEX_IPS,
    config,
    shadowserver_mail,
    unsure_letter,
    xarf_login,
)

AT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=30)


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.flushed = 0
        self.closed = False

    def write(self, lines: Sequence[str]) -> None:
        self.lines += lines

    def flush(self) -> int:
        self.flushed += 1
        return 0

    def close(self) -> None:
        self.closed = True

    def having(self, *parts: str) -> list[str]:
        return [x for x in self.lines if all(p in x for p in parts)]


def take(store: Store, cfg: object, *mails: bytes) -> None:
    items = [SpooledItem(m, hashlib.sha256(m).hexdigest(), AT, "") for m in mails]
    ingest_batch(store, cfg, Inventory.from_config(cfg), items)  # type: ignore[arg-type]


def test_reporters_beyond_the_known_ones_are_other() -> None:
    assert reporter_tag("Shadowserver") == "Shadowserver"
    assert reporter_tag("random-isp.example") == "other"
    at = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    rows = [
        {"bucket_start": at, "category": "spam", "reporter": r, "customer": "*",
         "reports": 1, "addresses": 2}
        for r in ("a.example", "b.example")
    ]  # fmt: skip
    [point] = count_points(rows)
    assert "reporter=other" in point and "customer=all" in point and "reports=2i" in point


def test_the_store_exported(sqlite_url: str) -> None:
    cfg = config(sqlite_url)
    store = Store.open(sqlite_url)
    try:
        take(
            store,
            cfg,
            xarf_login(ACME_IPS[0], 1),
            shadowserver_mail(ACME_IPS[:2] + GLOBEX_IPS + [FOREIGN]),
            unsure_letter(ACME_IPS[3]),
        )
        writer = Lines()
        series = AbuseSeries(store, writer)
        assert series.export() > 0
        assert writer.having("kind=reports", "category=open-service", "customer=all",
                             "reporter=Shadowserver", "reports=1i", "addresses=6i")  # fmt: skip
        assert writer.having("kind=reports", "customer=globex", "addresses=3i")
        assert writer.having("kind=reports", "customer=none", "addresses=1i")
        [other] = writer.having("kind=backlog", "category=other")
        assert "waiting=1i" in other
        assert len(writer.having("kind=backlog")) == 13  # every category, 0 when none waits
        # an analyst classifies the letter and acknowledges a case: the next export says so
        [queued] = find_reports(store, review=True)
        reclassify_report(store, cfg, queued.id, "phishing", "alice")
        evaluate(store, cfg)
        acknowledge(store, list_cases(store)[0].id, actor="bob")
        writer.lines.clear()
        series.export()
        [other] = writer.having("kind=backlog", "category=other")
        assert "waiting=0i" in other
        assert writer.having("kind=reclassified", "category=phishing", "previous=other")
        assert writer.having("kind=action", "what=review", "category=other")
        assert writer.having("kind=action", "what=case")
        # the letter's hour now counts it as phishing, and no longer as other
        assert writer.having("kind=reports", "category=phishing", "customer=acme", "reports=1i")
        assert writer.having("kind=reports", "category=other", "customer=acme", "reports=0i")
        # the background exporter of the sink's process: exports, delivers, closes
        thread = SeriesThread(AbuseSeries(store, writer), interval=0.05, min_gap=0.01)
        thread.poke()
        thread.close()
        assert writer.flushed >= 1 and writer.closed
    finally:
        store.close()

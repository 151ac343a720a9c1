"""Abuse reports in the store, on SQLite and PostgreSQL: exactly once per message, bounded
attribution rows, hourly counts that follow a reclassification, the review queue, and the
labelled export."""

from __future__ import annotations

import datetime as dt
import hashlib
import tracemalloc

import sqlalchemy as sa

from collectors.abuse.prepare import Preparer
from collectors.feedback.pipeline import SpooledItem
from monitor.abuse_intake import ingest_batch, labelled, reclassify_report
from monitor.inventory import Inventory
from monitor.store import Store
from monitor.store.abuse import (
    count_reports,
    find_reports,
    report_with_addresses,
    review_backlog,
    store_messages,
)
from monitor.store.schema import abuse_addresses, abuse_counts, abuse_messages, abuse_reports
from tests.monitor.abuse.samples import (
    ACME_IPS,
    FOREIGN,
    GLOBEX_IPS,
    config,
    shadowserver_mail,
    unsure_letter,
    xarf_login,
)

NOW = dt.datetime(2024, 5, 14, 10, 30, tzinfo=dt.UTC)


def item(raw: bytes, at: dt.datetime = NOW) -> SpooledItem:
    return SpooledItem(raw, hashlib.sha256(raw).hexdigest(), at, "done/segment-1")


def count(store: Store, table: sa.Table) -> int:
    with store.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)


def counts(store: Store) -> dict[tuple[str, str], tuple[int, int]]:
    with store.begin() as conn:
        rows = conn.execute(sa.select(abuse_counts)).mappings().all()
    return {(r["category"], r["customer"]): (r["reports"], r["addresses"]) for r in rows}


def test_a_message_is_stored_once_with_its_attribution(store: Store) -> None:
    cfg = config(store.url)
    inventory = Inventory.from_config(cfg)
    mails = [xarf_login(ACME_IPS[0], 1), shadowserver_mail(ACME_IPS + GLOBEX_IPS + [FOREIGN])]
    first = ingest_batch(store, cfg, inventory, [item(m) for m in mails])
    assert [(o.reports, o.customers, o.duplicate) for o in first] == [  # type: ignore[union-attr]
        (1, ["acme"], False),
        (1, ["acme", "globex"], False),
    ]
    # the same bytes again (a retry after a crash, a second copy in the batch): nothing twice
    again = ingest_batch(store, cfg, inventory, [item(m) for m in [*mails, mails[0]]])
    assert all(o.duplicate for o in again)  # type: ignore[union-attr]
    assert count(store, abuse_messages) == 2
    assert count(store, abuse_reports) == 2
    # the CSV: one row per customer and one for what is not ours, never one per address
    [csv] = find_reports(store, category="open-service")
    shown = report_with_addresses(store, csv.id)
    assert shown is not None
    assert [(x.customer, x.ours, x.addresses, x.pools) for x in shown.addresses] == [
        ("acme", True, 5, ["web-a"]),
        ("globex", True, 3, ["web-b"]),
        ("", False, 1, []),
    ]
    assert (shown.ips, shown.ours, shown.not_ours, shown.reporter) == (9, 8, 1, "Shadowserver")
    assert shown.count == 9 and shown.to_json()["count"] == 9
    assert shown.customers == ["acme", "globex"]
    c = counts(store)
    assert c[("open-service", "*")] == (1, 9)
    assert c[("open-service", "acme")] == (1, 5)
    assert c[("open-service", "globex")] == (1, 3)
    assert c[("open-service", "")] == (1, 1)  # per reporter: addresses that are not ours
    assert c[("login-attack", "acme")] == (1, 1)


def test_a_broken_message_is_its_own_failure(store: Store) -> None:
    cfg = config(store.url)
    broken = b"PK\x03\x04 this is no zip"
    results = ingest_batch(
        store, cfg, Inventory.from_config(cfg), [item(broken), item(xarf_login(ACME_IPS[1], 2))]
    )
    assert isinstance(results[0], Exception) and "zip" in str(results[0]).lower()
    assert count(store, abuse_messages) == 1


def test_a_50000_row_csv_is_attributed_in_bounded_rows_and_memory(store: Store) -> None:
    cfg = config(store.url)
    inventory = Inventory.from_config(cfg)
    ips = [f"203.0.{i // 256}.{i % 256}" for i in range(1, 4000)] + ACME_IPS + GLOBEX_IPS
    raw = shadowserver_mail(ips, rows=50_000)
    tracemalloc.start()
    prepared = Preparer(cfg.abuse, inventory).message(raw, "h" * 64, NOW)  # type: ignore[attr-defined]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    [report] = prepared.reports
    assert report.report.count == 50_000
    assert [(a.customer, a.addresses) for a in report.attributions] == [
        ("acme", 5),
        ("globex", 3),
        ("", len(ips) - 8),
    ]
    assert all(len(a.sample) <= 20 for a in report.attributions)
    assert peak < 32 * 1024 * 1024, peak
    assert store_messages(store, [prepared]) == {"h" * 64}
    assert count(store, abuse_addresses) == 3


def test_reclassification_moves_the_counts_and_leaves_the_queue(store: Store) -> None:
    cfg = config(store.url)
    ingest_batch(store, cfg, Inventory.from_config(cfg), [item(unsure_letter(ACME_IPS[2]))])
    [queued] = find_reports(store, review=True)
    assert (queued.category, queued.in_review, queued.customers) == ("other", True, ["acme"])
    assert count_reports(store, review=True) == 1
    assert review_backlog_of(store) == {"other": 1}
    done = reclassify_report(store, cfg, queued.id, "web-attack", "alice", now=NOW)
    assert done.previous == "other"
    assert (done.report.category, done.report.reclassified_by) == ("web-attack", "alice")
    assert done.report.severity == "medium" and not done.report.in_review
    assert count_reports(store, review=True) == 0 and review_backlog_of(store) == {}
    c = counts(store)
    assert c[("other", "acme")] == (0, 0) and c[("other", "*")] == (0, 0)
    assert c[("web-attack", "acme")] == (1, 1) and c[("web-attack", "*")] == (1, 1)
    [example] = list(labelled(store))
    assert (example["label"], example["classified_as"], example["reclassified_by"]) == (
        "web-attack",
        "other",
        "alice",
    )
    assert example["excerpt"] and "people.example" in example["reporter"]


def review_backlog_of(store: Store) -> dict[str, int]:
    with store.begin() as conn:
        return {k: n for k, (n, _) in review_backlog(conn).items()}


def test_filters_of_the_listing(store: Store) -> None:
    cfg = config(store.url, mute_reporters=["fail2ban.example"])
    inventory = Inventory.from_config(cfg)
    ingest_batch(
        store,
        cfg,
        inventory,
        [item(xarf_login(FOREIGN, 3)), item(shadowserver_mail(GLOBEX_IPS))],
    )
    assert [r.reporter for r in find_reports(store, customer="globex")] == ["Shadowserver"]
    assert [r.muted for r in find_reports(store, reporter="fail2ban.example")] == [True]
    assert count_reports(store, category="login-attack") == 1
    assert count_reports(store, since=NOW + dt.timedelta(hours=1)) == 0
    # a foreign, unsure report is stored and counted but not queued for review
    ingest_batch(store, cfg, inventory, [item(unsure_letter(FOREIGN))])
    assert count_reports(store, review=True) == 0
    assert count_reports(store) == 3

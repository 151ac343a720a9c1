"""Batch intake: many spooled messages per transaction, a bad one quarantined alone, a store
failure keeping the whole batch, and group commit of the spool's fsyncs.

The store is SQLite and the local PostgreSQL; a store that fails mid-batch is a real one,
made to refuse writes to ``feedback_counts`` (the last table a batch writes) by a trigger.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import smtplib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from checks.errors import ParseError, StoreUnavailable
from collectors.feedback.pipeline import IngestOutcome, SpooledItem
from collectors.sink import BatchProcess, GroupCommit, RetryLater, Spool, SpoolError
from collectors.sink.spool import SpooledMessage
from monitor.config import Config, parse_config
from monitor.feedback_intake import ingest_batch
from monitor.intake import make_process
from monitor.inventory import Inventory
from monitor.store import Store
from monitor.store.schema import feedback_counts, feedback_events, feedback_messages
from tests.sink_support import running

DOMAIN = "fb.example"
WHEN = dt.datetime(2026, 11, 24, 10, 17, 5, tzinfo=dt.UTC)


def dsn(n: int, rcpt_domain: str = "receiver.example") -> bytes:
    """A distinct RFC 3464 bounce from 192.0.2.10 (the inventory's) for user<n>."""
    rcpt = f"user{n}@{rcpt_domain}"
    return (
        "From: MAILER-DAEMON@mx.receiver.example\r\n"
        f"To: bounces@{DOMAIN}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="b{n}"\r\n'
        "\r\n"
        f"--b{n}\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
        f"--b{n}\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.receiver.example\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: User unknown\r\n\r\n"
        f"--b{n}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: news@sender.example\r\nTo: {rcpt}\r\nX-Sending-IP: 192.0.2.10\r\n\r\n"
        f"--b{n}--\r\n"
    ).encode()


#: claims to carry a gzipped DMARC report that is not gzip: the parsers raise ParseError
BROKEN = (
    b"From: dmarc@mail.example.com\r\nTo: bounces@fb.example\r\n"
    b"Subject: Report domain: shop.example.net\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: application/gzip; name="mail.example.com!shop.example.net!1!2.xml.gz"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="mail.example.com!shop.example.net!1!2.xml.gz"'
    b"\r\n\r\nH4sIACB0aGlzIGlzIG5vdCBnemlwIGF0IGFsbA==\r\n"
)


def config_for(store_url: str = "sqlite://", spool: str = "") -> Config:
    return parse_config(
        {
            "store": {"url": store_url},
            "sink": {"listen": "127.0.0.1:0", "accept_domains": [DOMAIN], "spool": spool},
            "inventory": {"pools": [{"name": "p", "customer": "c", "cidrs": ["192.0.2.0/28"]}]},
        }
    )


def item(raw: bytes) -> SpooledItem:
    return SpooledItem(raw, hashlib.sha256(raw).hexdigest(), WHEN, "done/x.eml", ["b@fb.example"])


def count(store: Store, table: sa.Table) -> int:
    with store.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def refuse_counter_writes(store: Store) -> Callable[[], None]:
    """Make the store fail every write to feedback_counts with a connection-class error (as
    a store going away mid-transaction would); returns the function that undoes it."""
    with store.begin() as conn:
        if store.dialect == "sqlite":
            # the function does not exist: SQLite fails the insert with OperationalError
            conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON feedback_counts "
                    "BEGIN SELECT repmon_store_offline(); END"
                )
            )
        else:
            conn.execute(
                sa.text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "RAISE EXCEPTION 'store offline' USING ERRCODE = '08006'; END $$"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON feedback_counts "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )

    def undo() -> None:
        with store.begin() as conn:
            conn.execute(
                sa.text(
                    "DROP TRIGGER refuse" + (" ON feedback_counts" * (store.dialect != "sqlite"))
                )
            )

    return undo


# -- ingest_batch -------------------------------------------------------------------------


def test_batch_skips_duplicates_and_merges_counters(store: Store) -> None:
    config = config_for()
    inventory = Inventory.from_config(config)
    first, second, third = dsn(1), dsn(2), dsn(3)
    [before] = ingest_batch(store, config, inventory, [item(first)])
    assert isinstance(before, IngestOutcome) and not before.duplicate
    out = ingest_batch(
        store, config, inventory, [item(second), item(first), item(third), item(second)]
    )
    assert [(o.kind, o.duplicate) for o in out if isinstance(o, IngestOutcome)] == [
        ("bounce", False),
        ("bounce", True),  # stored by the earlier call
        ("bounce", False),
        ("bounce", True),  # the same bytes earlier in this batch
    ]
    assert out[0].sending_ip == "192.0.2.10"  # type: ignore[union-attr]
    assert count(store, feedback_messages) == 3
    assert count(store, feedback_events) == 3
    with store.begin() as conn:
        [row] = conn.execute(sa.select(feedback_counts)).mappings()
    # one key (hour, IP, kind, category, domain) for all three: one row, counted once each
    assert (row["sending_ip"], row["kind"], row["count"], row["pool"]) == (
        "192.0.2.10",
        "bounce",
        3,
        "p",
    )


def test_unparseable_message_fails_alone(store: Store) -> None:
    config = config_for()
    out = ingest_batch(
        store, config, Inventory.from_config(config), [item(dsn(1)), item(BROKEN), item(dsn(2))]
    )
    assert isinstance(out[1], ParseError)
    assert [o.kind for o in (out[0], out[2]) if isinstance(o, IngestOutcome)] == ["bounce"] * 2
    assert count(store, feedback_messages) == 2
    assert count(store, feedback_events) == 2


def test_store_failure_mid_batch_commits_nothing(store: Store) -> None:
    config = config_for()
    inventory = Inventory.from_config(config)
    items = [item(dsn(n)) for n in range(5)]
    undo = refuse_counter_writes(store)
    with pytest.raises(StoreUnavailable):  # the store's own error, not the driver's
        ingest_batch(store, config, inventory, items)
    # messages and events were written before the counters failed: all rolled back
    for table in (feedback_messages, feedback_events, feedback_counts):
        assert count(store, table) == 0
    undo()
    assert not any(o.duplicate for o in ingest_batch(store, config, inventory, items))  # type: ignore[union-attr]
    assert count(store, feedback_events) == 5


# -- the spool and its processor ------------------------------------------------------------


def test_group_commit_shares_the_directory_fsync(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    commit = GroupCommit(spool)

    async def main() -> list[SpooledMessage]:
        return await asyncio.gather(*(commit.accept(dsn(n), {"rcpt_tos": []}) for n in range(20)))

    accepted = asyncio.run(main())
    assert commit.messages == 20 and commit.groups < 20
    assert {m.message_hash for m in spool.pending()} == {m.message_hash for m in accepted}
    assert all(spool.read(m) == dsn(n) for n, m in enumerate(accepted))
    # one segment file per group, and every message read back from it by a fresh reader
    assert len(list(spool.new.iterdir())) == commit.groups
    assert sorted(m.data or b"" for m in Spool(spool.directory).pending()) == sorted(
        dsn(n) for n in range(20)
    )
    assert not list(spool.tmp.iterdir())


def test_group_commit_write_failure_is_an_error_for_its_sender(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.tmp.rmdir()  # the spool cannot be written
    with pytest.raises(SpoolError):
        asyncio.run(GroupCommit(spool).accept(dsn(1), {}))
    assert spool.depth() == 0


def wait_for(cond: Callable[[], bool], timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_processor_batch_outcomes(tmp_path: Path) -> None:
    """One batch: the bad message quarantined alone; a RetryLater keeps the whole batch; a bug
    in the callback is narrowed down one message at a time."""
    config = config_for(spool=str(tmp_path / "spool")).sink
    spool = Spool(config.spool)
    batches: list[int] = []
    mode = {"retry": 1, "bug": False}

    async def run(batch: Sequence[tuple[SpooledMessage, bytes]]) -> list[BaseException | None]:
        if mode["retry"]:
            mode["retry"] -= 1
            raise RetryLater("store unavailable")
        if mode["bug"] and any(b"boom" in raw for _, raw in batch):
            raise KeyError("bug")
        batches.append(len(batch))
        return [ParseError("broken") if b"broken" in raw else None for _, raw in batch]

    for text in (b"one", b"broken", b"two"):
        spool.accept(b"Subject: " + text + b"\r\n\r\nx\r\n", {})
    with running(config, BatchProcess(run, max_batch=50), drain_timeout=20) as sink:
        wait_for(lambda: sink.spool.depth() == 0)
        assert sink.processor.stats.retries == 1
        assert batches == [3]  # all three, together, after the deferred attempt
        assert sink.processor.stats.quarantined == 1
        (reason,) = sink.spool.quarantine_dir.glob("*.reason")
        assert reason.read_text().startswith("ParseError: broken")
        assert sink.processor.stats.processed == 2
        assert [kept(sink.spool, t) for t in (b"one", b"broken", b"two")] == [True, False, True]
        mode["bug"] = True
        for text in (b"ok1", b"boom", b"ok2"):
            sink.spool.accept(b"Subject: " + text + b"\r\n\r\nx\r\n", {})
        sink.processor.wake()
        wait_for(lambda: sink.spool.depth() == 0)
        assert sink.processor.stats.quarantined == 2
        assert sink.processor.stats.processed == 4
        assert [kept(sink.spool, t) for t in (b"ok1", b"boom", b"ok2")] == [True, False, True]


def kept(spool: Spool, text: bytes) -> bool:
    """Whether the test message with this subject is in done/ (processed, not quarantined)."""
    raw = b"Subject: " + text + b"\r\n\r\nx\r\n"
    return spool.evidence(hashlib.sha256(raw).hexdigest()) is not None


def test_sink_store_outage_keeps_the_batch_spooled(store_url: str, tmp_path: Path) -> None:
    """End to end with make_process: SMTP in, a store refusing writes (everything stays in
    new/, nothing committed), then the store back: each message stored exactly once, the
    unparseable one quarantined."""
    config = config_for(store_url, spool=str(tmp_path / "spool"))
    store = Store.open(store_url)
    try:
        undo = refuse_counter_writes(store)
        process = make_process(config, store)
        assert process is not None
        with running(config.sink, process, drain_timeout=20) as sink:
            with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
                for raw in (dsn(1), dsn(2), BROKEN, dsn(3), dsn(2)):
                    smtp.sendmail("", [f"bounces@{DOMAIN}"], raw)
            wait_for(lambda: sink.processor.stats.retries >= 1)
            assert sink.spool.depth() == 4  # dsn(2) twice is one spool file
            assert count(store, feedback_messages) == 0
            undo()
            wait_for(lambda: sink.spool.depth() == 0, timeout=40)
        assert count(store, feedback_messages) == 3
        assert count(store, feedback_events) == 3
        assert len(list(Path(config.sink.spool, "quarantine").glob("*.eml"))) == 1
    finally:
        store.close()


def test_intake_worker_death_fails_the_batch_then_recovers(tmp_path: Path) -> None:
    """A worker that dies fails its batch with an error that is not RetryLater (so the
    processor narrows it down to one message); the next batch gets a new worker."""
    import os
    import signal

    from monitor.intake import IntakeWorker

    store_url = f"sqlite:///{tmp_path / 'repmon.db'}"
    Store.open(store_url).close()
    spool = Spool(tmp_path / "spool")
    worker = IntakeWorker(config_for(store_url, spool=str(spool.directory)))
    batch = [(spool.accept(dsn(n), {"rcpt_tos": []}), dsn(n)) for n in range(3)]
    try:
        pid = worker._executor().submit(os.getpid).result(60)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="worker process died"):
            asyncio.run(worker.run(batch))
        assert asyncio.run(worker.run(batch)) == [None, None, None]
    finally:
        worker.close()
    store = Store.open(store_url)
    try:
        assert count(store, feedback_events) == 3
    finally:
        store.close()

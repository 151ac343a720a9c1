"""Sent volume: validated counts (collector) added to the store, the Postfix log reader, and
``repmon volume``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from collectors.volume.postfix_log import count_lines, ip_for_tag, parse_time, read_log
from collectors.volume.sent import (
    SentCount,
    VolumeError,
    bucket_of,
    sent_count,
    sent_counts,
)
from monitor.cli import main
from monitor.store import Store
from monitor.store.volume import add_sent, sent_total

T0 = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def _delivery(head: str, qid: str, rcpt: str, status: str = "sent (250 2.0.0 OK)") -> str:
    """A Postfix delivery line: ``head`` is the stamp, host and tag with pid."""
    relay = "relay=mx.example[192.0.2.10]:25, delay=0.4, delays=0.1/0/0.1/0.2"
    dsn = "2.0.0" if status.startswith("sent") else "4.2.1"
    return f"{head}: {qid}: to=<{rcpt}>, {relay}, dsn={dsn}, status={status}\n"


LOG = "".join(
    [
        _delivery("Nov  2 10:15:01 mx1 postfix-out1/smtp[4242]", "4QABC1", "a@big.example"),
        _delivery("Nov  2 10:15:02 mx1 postfix-out1/smtp[4242]", "4QABC2", "b@big.example"),
        _delivery(
            "Nov  2 10:15:03 mx1 postfix-out1/smtp[4242]",
            "4QABC3",
            "c@big.example",
            "deferred (421 try later)",
        ),
        "Nov  2 10:15:04 mx1 postfix-out1/qmgr[4001]: 4QABC1: removed\n",
        _delivery("Nov  2 11:00:00 mx1 postfix-out2/smtp[4243]", "4QABC4", "d@small.example"),
        _delivery("Nov  2 11:00:01 mx1 postfix/lmtp[4244]", "4QABC5", "e@local.example"),
        _delivery(
            "2026-11-02T11:30:00.123456+00:00 mx2 postfix/out3/smtp[77]", "4QABC6", "f@big.example"
        ),
        _delivery("2026-11-02T11:31:00+0000 mx2 postfix/out4/smtp[78]", "4QABC7", "g@big.example"),
    ]
)

MAPPING = {
    "postfix-out1": "203.0.113.7",
    "postfix-out2/smtp": "203.0.113.8",
    "postfix/out3": "2001:db8::25",
}


def record_sent(store: Store, ip: str, count: int, at: dt.datetime, source: str = "api") -> None:
    """What ``repmon volume add`` and ``POST /v1/volume`` do: validate, then add."""
    add_sent(store, [sent_count(ip, count, at, source)])


def test_record_sent_adds_up_within_the_hour(store: Store) -> None:
    record_sent(store, "203.0.113.7", 100, T0 + dt.timedelta(minutes=5), "http")
    record_sent(store, "203.0.113.7", 50, T0 + dt.timedelta(minutes=55), "http")
    record_sent(store, "203.0.113.7", 70, T0 + H, "http")
    record_sent(store, "203.0.113.7", 10, T0, "postfix-log")
    assert sent_total(store, "203.0.113.7", T0, T0 + H) == {"http": 150, "postfix-log": 10}
    assert sent_total(store, "203.0.113.7", T0, T0 + 2 * H)["http"] == 220
    assert add_sent(store, sent_counts({}, "http")) == 0


def test_sent_counts_merge_per_ip_and_hour() -> None:
    rows = sent_counts(
        {
            ("203.0.113.7", T0 + dt.timedelta(minutes=5)): 3,
            (" 203.0.113.7", T0 + dt.timedelta(minutes=50)): 4,
            ("2001:DB8::1", T0 + H): 1,
        },
        "postfix-log",
    )
    assert rows == [
        SentCount(T0, "203.0.113.7", "postfix-log", 7),
        SentCount(T0 + H, "2001:db8::1", "postfix-log", 1),
    ]
    with pytest.raises(VolumeError, match="source"):
        sent_counts({}, "")


@pytest.mark.parametrize(
    ("ip", "count", "at", "why"),
    [
        ("not-an-ip", 1, T0, "not an IP"),
        ("203.0.113.7", -1, T0, "whole number"),
        ("203.0.113.7", 99999999999999999999, T0, "whole number from 0 to"),
        ("203.0.113.7", 1, T0.replace(tzinfo=None), "no timezone"),
    ],
)
def test_record_sent_refuses_bad_input(
    sqlite_url: str, ip: str, count: int, at: dt.datetime, why: str
) -> None:
    store = Store.open(sqlite_url)
    with pytest.raises(VolumeError, match=why):
        record_sent(store, ip, count, at)
    with pytest.raises(VolumeError, match=why):
        sent_count(ip, count, at)  # the collector refuses it before any store is involved
    store.close()


def test_bucket_of() -> None:
    assert bucket_of(T0 + dt.timedelta(minutes=59, seconds=59)) == T0
    local = dt.datetime(2026, 11, 2, 13, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert bucket_of(local) == T0


def test_postfix_lines_counted_per_ip_and_hour() -> None:
    found = count_lines(LOG.splitlines(), MAPPING, now=T0)
    assert dict(found.counts) == {
        ("203.0.113.7", T0 - 2 * H): 2,
        ("203.0.113.8", T0 - H): 1,
        ("2001:db8::25", T0 - H): 1,
    }
    assert found.sent_lines == 5  # lmtp and deferred lines are not counted
    assert dict(found.unmapped) == {"postfix/out4/smtp": 1}


def test_tags_and_times() -> None:
    assert ip_for_tag("postfix-out1/smtp", {"postfix-out1": "x"}) == "x"
    assert ip_for_tag("postfix-out1/smtp", {"postfix-out1/smtp": "y", "postfix-out1": "x"}) == "y"
    assert ip_for_tag("postfix/smtp", {"postfix-out1": "x"}) is None
    jan = dt.datetime(2027, 1, 1, 0, 5, tzinfo=dt.UTC)
    assert parse_time("Dec 31 23:59:00", jan) == dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC)
    assert parse_time("Foo 31 23:59:00", jan) is None
    assert parse_time("2026-13-01T00:00:00Z", jan) is None


def test_read_log_resumes_and_survives_rotation(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    lines = LOG.splitlines(keepends=True)
    log.write_text(lines[0] + lines[1].rstrip("\n"))  # last line still being written
    first = read_log(log, MAPPING, now=T0)
    assert sum(first.counts.values()) == 1
    with log.open("a") as fh:
        fh.write("\n" + "".join(lines[2:]))
    second = read_log(log, MAPPING, now=T0, offset=first.end_offset)
    assert sum(second.counts.values()) == 3 and second.sent_lines == 4
    log.write_text(lines[0])  # rotated: shorter than the offset, read from the start
    third = read_log(log, MAPPING, now=T0, offset=second.end_offset)
    assert sum(third.counts.values()) == 1
    log.write_bytes(b"\xff\xfe garbage\n" + lines[0].encode())
    assert sum(read_log(log, MAPPING, now=T0).counts.values()) == 1


def test_volume_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "repmon.db"
    cfg = tmp_path / "repmon.toml"
    cfg.write_text(
        f'[store]\nurl = "sqlite:///{db}"\n'
        '[rules.volume]\npostfix_ips = {"postfix-out1" = "203.0.113.7"}\n'
    )
    assert main(["volume", "add", "203.0.113.9", "500", "--at", "2026-11-02T12:10",
                 "--config", str(cfg)]) == 0  # fmt: skip
    assert main(["volume", "add", "bad", "5", "--config", str(cfg)]) == 2
    log = tmp_path / "mail.log"
    log.write_text(LOG)
    state = tmp_path / "offset.json"
    code = main(["volume", "import-postfix", str(log), "--map", "postfix-out2=203.0.113.8",
                 "--state", str(state), "--config", str(cfg)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 3  # two tags had no IP: said so, nothing guessed
    assert "5 sent deliveries read, 3 recorded" in out
    assert "postfix/out4/smtp: no IP mapped" in out
    # run again: nothing new is counted twice
    main(["volume", "import-postfix", str(log), "--state", str(state), "--config", str(cfg)])
    assert "0 sent deliveries read" in capsys.readouterr().out
    store = Store.open(f"sqlite:///{db}")
    try:
        day = (T0 - 12 * H, T0 + 12 * H)
        assert sent_total(store, "203.0.113.7", *day) == {"postfix-log": 2}
        assert sent_total(store, "203.0.113.8", *day) == {"postfix-log": 1}
        assert sent_total(store, "203.0.113.9", *day) == {"cli": 500}
    finally:
        store.close()
    assert main(["volume", "import-postfix", str(tmp_path / "none.log"), "--config", str(cfg)]) == 2
    assert (
        main(["volume", "import-postfix", str(log), "--map", "nonsense", "--config", str(cfg)]) == 2
    )

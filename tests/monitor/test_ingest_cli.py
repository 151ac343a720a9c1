"""``repmon ingest``: saved messages and report files of every form, stored or as JSON."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from monitor.cli import main
from monitor.store import Store
from monitor.store.schema import dmarc_records, feedback_events, feedback_messages
from tests.monitor.test_feedback_pipeline import (
    MX_RECEIVED,
    arf,
    dmarc_mail,
    dmarc_xml,
    dsn,
    original_headers,
    plain_mail,
    tls_json,
)

BOUNCE = dsn(
    [("gone@example.com", "failed", "5.1.1", "550 5.1.1 user unknown")],
    original_headers(MX_RECEIVED),
)
DELAY = dsn([("slow@example.net", "delayed", "4.4.7", "451 4.4.1 no answer from host")])


def write_config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "repmon.toml"
    path.write_text(
        f'[store]\nurl = "{store_url}"\n\n'
        '[[inventory.pools]]\nname = "pool-a"\ncustomer = "acme"\ncidrs = ["192.0.2.0/28"]\n\n'
        '[feedback]\nverp_pattern = "^bounce-(?P<ipx>[0-9a-f]{8})-"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config_file(tmp_path: Path, sqlite_url: str) -> Path:
    return write_config(tmp_path, sqlite_url)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(["ingest", "--dry-run", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def mbox(*messages: bytes) -> bytes:
    out = b""
    for raw in messages:
        out += b"From MAILER-DAEMON Tue Nov 24 10:15:00 2026\n" + raw.rstrip(b"\n") + b"\n\n"
    return out


def test_eml_is_stored_once(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, store_url)
    eml = tmp_path / "bounce.eml"
    eml.write_bytes(BOUNCE)
    assert main(["ingest", "--config", str(config), str(eml)]) == 0
    out = capsys.readouterr().out
    assert "messages: 1 (bounce 1)" in out and "events: 1 (unattributed: 0)" in out
    assert main(["ingest", "--config", str(config), str(eml)]) == 0
    assert "duplicates (already stored, skipped): 1" in capsys.readouterr().out
    store = Store.open(store_url)
    try:
        with store.begin() as conn:
            [msg] = conn.execute(sa.select(feedback_messages)).mappings()
            [event] = conn.execute(sa.select(feedback_events)).mappings()
    finally:
        store.close()
    assert msg["spool_path"] == str(eml) and msg["kind"] == "bounce"
    # the received time of a saved message is its Date header
    assert msg["received_at"].isoformat() == "2026-11-24T10:15:00+00:00"
    assert (event["sending_ip"], event["attributed_by"], event["pool"]) == (
        "192.0.2.5",
        "received",
        "pool-a",
    )


def test_mbox_of_three_messages(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box = tmp_path / "feedback.mbox"
    box.write_bytes(mbox(BOUNCE, arf(), plain_mail()))
    code, items = run_json(capsys, "--config", str(config_file), str(box))
    assert code == 0
    assert [(i["file"], i["kind"]) for i in items] == [
        (f"{box}#1", "bounce"),
        (f"{box}#2", "complaint"),
        (f"{box}#3", "other"),
    ]
    bounce, complaint, _ = items
    assert bounce["sending_ip"] == "192.0.2.5"
    assert bounce["recipients"] == [
        {
            "address": "gone@example.com",
            "action": "failed",
            "status": "5.1.1",
            "diagnostic": "550 5.1.1 user unknown",
            "category": "bad-mailbox",
            "hard": True,
            "blocklist": "",
            "sending_ip": "192.0.2.5",
        }
    ]
    assert complaint["feedback_type"] == "abuse" and complaint["source_ip"] == "192.0.2.9"
    assert complaint["reported_domain"] == ["shop.example.net"]
    assert complaint["sending_ip"] == "192.0.2.9"


def test_mbox_stored_per_message(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, store_url)
    box = tmp_path / "feedback.mbox"
    box.write_bytes(mbox(BOUNCE, DELAY, plain_mail()))
    assert main(["ingest", "--config", str(config), str(box)]) == 0
    out = capsys.readouterr().out
    assert "messages: 3 (bounce 1, delay 1, other 1)" in out
    assert "events: 2 (unattributed: 1)" in out
    store = Store.open(store_url)
    try:
        with store.begin() as conn:
            hashes = conn.execute(sa.select(feedback_messages.c.message_hash)).scalars().all()
    finally:
        store.close()
    assert len(set(hashes)) == 3


def test_maildir(tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1764000000.M1P1.host:2,S").write_bytes(BOUNCE)
    (maildir / "new" / "1764000001.M2P2.host").write_bytes(arf())
    (maildir / "tmp" / "1764000002.M3P3.host").write_bytes(b"half written")
    code, items = run_json(capsys, "--config", str(config_file), str(maildir))
    assert code == 0
    assert [(Path(i["file"]).parent.name, i["kind"]) for i in items] == [
        ("cur", "bounce"),
        ("new", "complaint"),
    ]


def test_raw_report_files(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = dmarc_xml([("192.0.2.4", 120, "pass"), ("198.51.100.50", 3, "fail")])
    (tmp_path / "a.xml").write_bytes(xml)
    (tmp_path / "b.xml.gz").write_bytes(gzip.compress(xml))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mail.example.com!shop.example.net!1763942400!1764028799.xml", xml)
    (tmp_path / "c.zip").write_bytes(buf.getvalue())
    (tmp_path / "d.json").write_bytes(tls_json())
    (tmp_path / "e.json.gz").write_bytes(gzip.compress(tls_json()))
    paths = [str(tmp_path / n) for n in ("a.xml", "b.xml.gz", "c.zip", "d.json", "e.json.gz")]
    code, items = run_json(capsys, "--config", str(config_file), *paths)
    assert code == 0, items
    assert [i["kind"] for i in items] == ["dmarc-aggregate"] * 3 + ["tls-report"] * 2
    for item in items[:3]:
        assert item["org_name"] == "mail.example.com" and item["report_id"] == "r-1"
        assert item["records"] == [
            {"source_ip": "192.0.2.4", "count": 120, "disposition": "none", "dkim": "pass",
             "spf": "pass"},
            {"source_ip": "198.51.100.50", "count": 3, "disposition": "none", "dkim": "fail",
             "spf": "fail"},
        ]  # fmt: skip
    for item in items[3:]:
        assert (item["organization_name"], item["report_id"]) == (
            "Mail Example Inc.",
            "tls-2026-11-23",
        )
        assert (item["successful"], item["failed"]) == (90, 3)


def test_directory_stored_with_dmarc_records(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, store_url)
    inbox = tmp_path / "inbox"
    (inbox / "deeper").mkdir(parents=True)
    (inbox / "report.eml").write_bytes(dmarc_mail([("192.0.2.4", 7, "pass")]))
    (inbox / "deeper" / "raw.xml").write_bytes(dmarc_xml([("192.0.2.8", 5, "fail")], "r-2"))
    assert main(["ingest", "--config", str(config), str(inbox)]) == 0
    assert "dmarc records: 2" in capsys.readouterr().out
    store = Store.open(store_url)
    try:
        with store.begin() as conn:
            got = conn.execute(sa.select(dmarc_records.c.source_ip, dmarc_records.c.pool))
            assert sorted(got) == [("192.0.2.4", "pool-a"), ("192.0.2.8", "pool-a")]
    finally:
        store.close()


def test_errors_exit_1_and_store_nothing(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, sqlite_url)
    bad = tmp_path / "broken.xml"
    bad.write_bytes(b"<feedback><report_metadata>")
    good = tmp_path / "good.eml"
    good.write_bytes(BOUNCE)
    code, items = run_json(capsys, "--config", str(config), str(bad), str(good))
    assert code == 1
    assert items[0]["file"] == str(bad) and items[0]["error"]
    assert "kind" not in items[0] and items[1]["kind"] == "bounce"
    assert main(["ingest", "--config", str(config), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "errors: 1" in out and f"  {bad}: " in out
    store = Store.open(sqlite_url)
    try:
        with store.begin() as conn:
            assert (
                conn.execute(sa.select(sa.func.count()).select_from(feedback_messages)).scalar()
                == 0
            )
    finally:
        store.close()


def test_dry_run_stores_nothing(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eml = tmp_path / "x.eml"
    eml.write_bytes(DELAY)
    assert main(["ingest", "--dry-run", "--config", str(config_file), str(eml)]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing stored" in out and "messages: 1 (delay 1)" in out
    assert not (tmp_path / "repmon.db").exists()


def test_oversized_message_is_an_error(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file.write_text(config_file.read_text() + "\n[sink]\nmax_message_bytes = 2048\n")
    big = tmp_path / "big.eml"
    big.write_bytes(plain_mail() + b"x" * 4096)
    code, items = run_json(capsys, "--config", str(config_file), str(big))
    assert code == 1 and "limit of 2048" in items[0]["error"]


def test_usage_errors(tmp_path: Path, config_file: Path) -> None:
    assert main(["ingest", "--config", str(config_file), str(tmp_path / "nope.eml")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["ingest"])
    assert exc.value.code == 2


def test_single_message_after_a_from_line_keeps_its_plain_label(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eml = tmp_path / "unix-from.eml"
    eml.write_bytes(mbox(BOUNCE))
    code, items = run_json(capsys, "--config", str(config_file), str(eml))
    assert code == 0 and [(i["file"], i["kind"]) for i in items] == [(str(eml), "bounce")]


def test_older_than_the_retention_is_never_dropped_silently(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report older than [retention] feedback is not stored (housekeeping would delete it)
    unless --keep, and the run says so either way."""
    config = write_config(tmp_path, sqlite_url)
    config.write_text(config.read_text() + '\n[retention]\nfeedback = "1d"\n')
    report = tmp_path / "old.xml"
    report.write_bytes(dmarc_xml([("192.0.2.4", 120, "pass")]))  # a report from 2025
    assert main(["ingest", "--config", str(config), str(report)]) == 0
    out, err = capsys.readouterr()
    assert "older than the retention" in err and "--keep" in err
    assert "older than the retention (not stored): 1" in out
    store = Store.open(sqlite_url)
    with store.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dmarc_records)).scalar() == 0
    assert main(["ingest", "--keep", "--config", str(config), str(report)]) == 0
    assert "stored (--keep)" in capsys.readouterr().err
    with store.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dmarc_records)).scalar() == 1
    store.close()


def test_symlink_loops_and_unreadable_entries_never_stop_the_run(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    top = tmp_path / "mail"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "a.eml").write_bytes(BOUNCE)
    (top / "sub" / "loop").symlink_to(top)  # a directory linking back to its parent
    (top / "dangling").symlink_to(tmp_path / "nowhere")
    locked = top / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        code, items = run_json(capsys, "--config", str(config_file), str(top))
    finally:
        locked.chmod(0o755)
    assert [i["file"] for i in items if "error" not in i] == [str(top / "sub" / "a.eml")]
    errors = {i["file"]: i["error"] for i in items if "error" in i}
    assert errors[str(top / "dangling")] == "not a regular file"
    if os.geteuid() != 0:  # root lists any directory
        assert "cannot read" in errors[str(locked)]
    assert code == 1  # some entries failed; the run went on

"""``repmon ingest`` with abuse reports (eml, mbox, bare CSV / zip / gzip / X-ARF JSON, how it
tells them from feedback, ``--abuse``, exactly once, errors), and the sink's routing by
envelope recipient."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from collectors.feedback.pipeline import SpooledItem
from monitor.cli import main
from monitor.intake import Router, ingest_routed, sink_config
from monitor.inventory import Inventory
from monitor.store import Store
from monitor.store.schema import abuse_messages, abuse_reports, feedback_messages
from tests.monitor.abuse.samples import (
    ABUSE_DESK,
    ACME_IPS,
    FEEDBACK,
    FOREIGN,
    GLOBEX_IPS,
    bounce,
    config,
    shadowserver_csv,
    shadowserver_mail,
    unsure_letter,
    write_config,
    xarf_login,
    zipped,
)
from tests.monitor.test_feedback_pipeline import arf, plain_mail

XARF_JSON = {
    "Version": "3",
    "ReporterInfo": {"ReporterOrg": "Example CERT", "ReporterOrgEmail": "cert@cert.example"},
    "Report": {
        "ReportClass": "Activity",
        "ReportType": "Phishing",
        "Date": "2024-05-14T09:00:00Z",
        "SourceIp": ACME_IPS[2],
        "SourceUrl": "http://shop.acme.example/login/",
    },
}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(["ingest", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def count(url: str, table: sa.Table) -> int:
    store = Store.open(url)
    try:
        with store.begin() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)
    finally:
        store.close()


def test_abuse_files_of_every_form_are_told_from_feedback(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, sqlite_url)
    files = {
        "login.eml": xarf_login(ACME_IPS[0], 1),
        "2024-05-01-scan_dns-nl-asn.csv": shadowserver_csv(ACME_IPS + [FOREIGN]),
        "2024-05-01-scan_ntp-nl-asn.csv.zip": zipped(
            "2024-05-01-scan_ntp-nl-asn.csv", shadowserver_csv(GLOBEX_IPS)
        ),
        "2024-05-02-scan_dns-nl-asn.csv.gz": gzip.compress(shadowserver_csv([ACME_IPS[1]])),
        "phish.json": json.dumps(XARF_JSON).encode(),
        "bounce.eml": bounce(),
        "complaint.eml": arf(),
        "note.eml": plain_mail(),
    }
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    code, items = run(capsys, "--config", str(cfg), str(folder))
    assert code == 0
    by = {Path(i["file"]).name: i for i in items}
    assert {n: by[n].get("intake", "feedback") for n in files} == {
        "login.eml": "abuse",
        "2024-05-01-scan_dns-nl-asn.csv": "abuse",
        "2024-05-01-scan_ntp-nl-asn.csv.zip": "abuse",
        "2024-05-02-scan_dns-nl-asn.csv.gz": "abuse",
        "phish.json": "abuse",
        "bounce.eml": "feedback",
        "complaint.eml": "feedback",  # an ARF feedback-loop complaint is feedback
        "note.eml": "feedback",  # a plain note is not an abuse report
    }
    login = by["login.eml"]
    for key in ("file", "kind", "category", "confidence", "reporter", "format", "ips", "urls",
                "count", "reported_at"):  # fmt: skip
        assert key in login, key
    assert (login["kind"], login["category"], login["ips"]) == (
        "abuse-report",
        "login-attack",
        [ACME_IPS[0]],
    )
    assert login["customers"] == {"acme": {"addresses": 1, "urls": 0, "pools": ["web-a"]}}
    csv = by["2024-05-01-scan_dns-nl-asn.csv"]
    assert (csv["format"], csv["count"], csv["not_ours"]) == ("shadowserver-csv", 6, 1)
    assert by["2024-05-01-scan_ntp-nl-asn.csv.zip"]["format"].startswith("shadowserver-csv")
    assert by["2024-05-01-scan_ntp-nl-asn.csv.zip"]["customers"]["globex"]["addresses"] == 3
    assert by["2024-05-02-scan_dns-nl-asn.csv.gz"]["format"].startswith("shadowserver-csv")
    phish = by["phish.json"]
    assert (phish["category"], phish["urls"]) == ("phishing", ["http://shop.acme.example/login/"])
    assert phish["customers"]["acme"]["urls"] == 1
    assert count(sqlite_url, abuse_messages) == 5
    assert count(sqlite_url, feedback_messages) == 3
    # again: every abuse report is a duplicate, nothing is stored twice
    code, items = run(capsys, "--config", str(cfg), str(folder))
    assert all(i["duplicate"] for i in items if i.get("intake") == "abuse")
    assert count(sqlite_url, abuse_reports) == 5
    # the summary for people
    assert main(["ingest", "--dry-run", "--config", str(cfg), str(folder / "login.eml")]) == 0
    out = capsys.readouterr().out
    assert "abuse reports: 1 (login-attack 1)" in out and "abuse customers: acme 1" in out


def test_abuse_forces_the_abuse_intake_and_errors_are_per_file(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, sqlite_url)
    complaint = tmp_path / "complaint.eml"
    complaint.write_bytes(arf())
    broken = tmp_path / "2024-05-01-scan_dns-nl-asn.csv.zip"
    broken.write_bytes(b"PK\x03\x04 not a zip at all")
    code, items = run(capsys, "--dry-run", "--abuse", "--config", str(cfg), str(complaint),
                      str(broken))  # fmt: skip
    assert code == 1
    assert (items[0]["intake"], items[0]["kind"], items[0]["category"]) == (
        "abuse",
        "complaint",
        "spam",
    )
    assert items[1]["intake"] == "abuse" and "zip" in items[1]["error"].lower()
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # a dry run


def test_the_sink_accepts_the_union_and_routes_by_recipient(sqlite_url: str) -> None:
    cfg = config(sqlite_url, accept_domains=["abuse.provider.example"])
    sink = sink_config(cfg)
    assert sink.accept_domains == ["feedback.example", "abuse.provider.example"]
    assert sink.accept_addresses == [ABUSE_DESK]
    router = Router(cfg)
    assert router.routes([ABUSE_DESK]) == (False, True)
    assert router.routes(["desk@abuse.provider.example"]) == (False, True)
    assert router.routes([FEEDBACK]) == (True, False)
    assert router.routes([FEEDBACK, ABUSE_DESK.upper()]) == (True, True)
    assert router.routes([]) == (True, False)  # no envelope: feedback, as before
    # an address of the sink's own list stays feedback even in an abuse domain
    shared = config(sqlite_url, accept_domains=["feedback.example"])
    shared = shared.model_copy(
        update={"sink": shared.sink.model_copy(update={"accept_addresses": [FEEDBACK]})}
    )
    assert Router(shared).routes([FEEDBACK]) == (True, False)
    assert Router(shared).routes(["other@feedback.example"]) == (False, True)
    # without an abuse desk nothing changes
    plain = config(sqlite_url)
    plain = plain.model_copy(update={"abuse": plain.abuse.model_copy(  # type: ignore[attr-defined]
        update={"accept_addresses": []})})  # fmt: skip
    assert sink_config(plain) is plain.sink and Router(plain).routes([ABUSE_DESK]) == (True, False)


def test_a_routed_batch_goes_to_each_intake_once(sqlite_url: str) -> None:
    cfg = config(sqlite_url)
    store = Store.open(sqlite_url)
    now = dt.datetime.now(dt.UTC)

    def item(raw: bytes, rcpts: list[str]) -> SpooledItem:
        return SpooledItem(raw, hashlib.sha256(raw).hexdigest(), now, "", rcpts)

    broken = b"PK\x03\x04 broken"
    batch = [
        item(xarf_login(ACME_IPS[0], 1), [ABUSE_DESK]),
        item(bounce(), [FEEDBACK]),
        item(unsure_letter(ACME_IPS[1]), [ABUSE_DESK, FEEDBACK]),
        item(broken, [ABUSE_DESK]),
        item(shadowserver_mail(GLOBEX_IPS), [ABUSE_DESK]),
    ]
    try:
        inventory = Inventory.from_config(cfg)
        results = ingest_routed(store, cfg, inventory, batch)
        assert results[:3] == [None, None, None] and results[4] is None
        assert "zip" in str(results[3]).lower()
        assert ingest_routed(store, cfg, inventory, batch)[:3] == [None, None, None]
        with store.begin() as conn:
            abuse = conn.execute(sa.select(sa.func.count()).select_from(abuse_messages)).scalar()
            fb = conn.execute(sa.select(sa.func.count()).select_from(feedback_messages)).scalar()
        assert (abuse, fb) == (3, 2)
    finally:
        store.close()

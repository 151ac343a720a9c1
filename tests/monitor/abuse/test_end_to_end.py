"""Abuse reports end to end: SMTP into a real sink (tests/sink_support.py) that accepts the
``[sink]`` and ``[abuse]`` recipients and routes each message by them, the real intake
(worker process), the rules, and an analyst's reclassification from the command line and
from the HTTP API (a real uvicorn on loopback)."""

from __future__ import annotations

import json
import smtplib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn

from monitor.api import create_app
from monitor.cases import evaluate, get_case, list_cases
from monitor.cli import main
from monitor.config import Config, parse_config
from monitor.intake import make_process, sink_config
from monitor.store import Store
from monitor.store.abuse import find_reports
from monitor.store.schema import abuse_counts, abuse_messages, feedback_messages
from tests.monitor.abuse.samples import (
    ABUSE_DESK,
    ACME_IPS,
    FEEDBACK,
    FOREIGN,
    GLOBEX_IPS,
    bounce,
    settings,
    shadowserver_mail,
    unsure_letter,
    write_config,
    xarf_login,
)
from tests.monitor.api.test_guard import FakeDaemon, request
from tests.servers import free_port
from tests.sink_support import running

WRITE = "write-secret"


def stored(store: Store, table: sa.Table) -> int:
    with store.begin() as tx:
        return int(tx.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)


def deliver(config: Config, store: Store, mails: list[tuple[list[str], bytes]]) -> None:
    """Send (recipients, message) pairs to a real sink with the real intake; wait until the
    abuse and feedback intakes have each stored what was sent to them."""
    want_abuse = stored(store, abuse_messages) + sum(ABUSE_DESK in r for r, _ in mails)
    want_feedback = stored(store, feedback_messages) + sum(
        any(x != ABUSE_DESK for x in r) for r, _ in mails
    )
    process = make_process(config, store)
    assert process is not None
    with running(sink_config(config), process, drain_timeout=30) as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
            for rcpts, raw in mails:
                smtp.sendmail("reports@reporter.example", rcpts, raw)
            # a recipient of neither is refused: the union opened no relay
            code, _ = smtp.docmd("MAIL FROM:<x@reporter.example>")
            assert code == 250
            assert smtp.docmd("RCPT TO:<someone@elsewhere.example>")[0] == 550
        deadline = time.monotonic() + 90
        while (
            stored(store, abuse_messages) < want_abuse
            or stored(store, feedback_messages) < want_feedback
        ):
            assert time.monotonic() < deadline, "the sink did not store every message"
            time.sleep(0.1)


@contextmanager
def api(config: Config, store: Store) -> Iterator[str]:
    port = free_port(socket.SOCK_STREAM)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(FakeDaemon(config, store)),  # type: ignore[arg-type]
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_reports_through_the_sink_become_cases_per_customer(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = settings(sqlite_url, str(tmp_path / "spool"))
    doc["api"] = {"token": WRITE, "open_reads": True}
    config = parse_config(doc)
    store = Store.open(sqlite_url)
    try:
        deliver(
            config,
            store,
            [
                ([ABUSE_DESK], xarf_login(ACME_IPS[0], 1)),
                ([ABUSE_DESK], shadowserver_mail(ACME_IPS[:3] + GLOBEX_IPS + [FOREIGN])),
                ([ABUSE_DESK], xarf_login(FOREIGN, 2)),  # about somebody else
                ([ABUSE_DESK], unsure_letter(GLOBEX_IPS[1])),  # for the review queue
                ([FEEDBACK], bounce()),  # feedback only
                ([ABUSE_DESK, FEEDBACK], xarf_login(ACME_IPS[4], 3)),  # both intakes
            ],
        )
        assert stored(store, abuse_messages) == 5 and stored(store, feedback_messages) == 2
        evaluate(store, config)
        cases = {(c.subject, c.source): c for c in list_cases(store) if c.rule == "abuse"}
        assert set(cases) == {
            ("acme", "login-attack"),
            ("acme", "open-service"),
            ("globex", "open-service"),
        }
        login = cases[("acme", "login-attack")]
        assert sorted(login.evidence["ips"]) == [ACME_IPS[0], ACME_IPS[4]]
        assert login.numerator == 2
        # the unrelated report is counted (per reporter, not ours), and opens nothing
        with store.begin() as tx:
            foreign = tx.execute(
                sa.select(abuse_counts.c.reporter, sa.func.sum(abuse_counts.c.addresses))
                .where(abuse_counts.c.customer == "")
                .group_by(abuse_counts.c.reporter)
            ).all()
        assert dict(foreign) == {"fail2ban.example": 1, "Shadowserver": 1}

        # the review queue, from the command line; the analyst classifies the letter
        cli = write_config(tmp_path, sqlite_url)
        assert main(["reports", "list", "--review", "--json", "--config", str(cli)]) == 0
        [queued] = json.loads(capsys.readouterr().out)
        assert queued["customers"] == ["globex"] and queued["in_review"]
        assert (
            main(
                [
                    "reports",
                    "reclassify",
                    str(queued["id"]),
                    "login-attack",
                    "--by",
                    "alice",
                    "--config",
                    str(cli),
                ]
            )  # fmt: skip
            == 0
        )
        assert "other -> login-attack by alice" in capsys.readouterr().out
        assert main(["reports", "list", "--review", "--config", str(cli)]) == 0
        assert "0 reports waiting for review" in capsys.readouterr().out
        cases = {(c.subject, c.source): c for c in list_cases(store) if c.rule == "abuse"}
        assert ("globex", "login-attack") in cases

        # and from the API: the Shadowserver report was really a botnet report
        [csv] = find_reports(store, reporter="Shadowserver")
        with api(config, store) as addr:
            status, listed = request(addr, "GET", "/v1/reports?category=open-service")
            assert status == 200 and [r["id"] for r in listed] == [csv.id]  # type: ignore[index]
            body = json.dumps({"category": "botnet", "by": "bob"}).encode()
            path = f"/v1/reports/{csv.id}/reclassify"
            assert request(addr, "POST", path, body=body)[0] == 401  # the write token
            status, done = request(addr, "POST", path, token=WRITE, body=body)
            assert status == 200, done
            assert (done["previous"], done["report"]["category"]) == ("open-service", "botnet")
            assert done["report"]["reclassified_by"] == "bob"
            assert request(addr, "POST", "/v1/reports/999999/reclassify", WRITE, body)[0] == 404
            bad = json.dumps({"category": "nonsense"}).encode()
            assert request(addr, "POST", path, token=WRITE, body=bad)[0] == 422
            status, queue = request(addr, "GET", "/v1/reports?review=true")
            assert status == 200 and queue == []
        cases = {(c.subject, c.source): c for c in list_cases(store) if c.rule == "abuse"}
        assert cases[("acme", "botnet")].severity == "high"
        assert cases[("globex", "botnet")].severity == "high"
        old = get_case(store, cases[("acme", "open-service")].id)
        assert any(e.kind == "note" and e.actor == "bob" for e in old.events)
        # the labelled export
        out = tmp_path / "labels.jsonl"
        assert main(["reports", "export", "-o", str(out), "--config", str(cli)]) == 0
        labels = [json.loads(line) for line in out.read_text().splitlines()]
        assert [(x["label"], x["reclassified_by"]) for x in labels] == [
            ("login-attack", "alice"),
            ("botnet", "bob"),
        ]
        assert main(["reports", "show", str(csv.id), "--config", str(cli)]) == 0
        shown = capsys.readouterr().out
        assert "reclassified from open-service by bob" in shown and "customer acme" in shown
        assert main(["reports", "show", "999999", "--config", str(cli)]) == 1
    finally:
        store.close()


def test_an_unreadable_report_is_quarantined_with_its_reason(
    tmp_path: Path, sqlite_url: str
) -> None:
    spool = tmp_path / "spool"
    config = parse_config(settings(sqlite_url, str(spool)))
    broken = (
        f"From: autoreports@shadowserver.org\r\nTo: {ABUSE_DESK}\r\nSubject: report\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nattached\r\n--B\r\n"
        "Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="2024-05-01-scan_dns-nl-asn.csv.zip"\r\n\r\n'
        "UEsDBAoAAAAAAP////8=\r\n--B--\r\n"
    ).encode()
    store = Store.open(sqlite_url)
    try:
        process = make_process(config, store)
        assert process is not None
        with running(sink_config(config), process, drain_timeout=30) as sink:
            with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
                smtp.sendmail("autoreports@shadowserver.org", [ABUSE_DESK], broken)
            deadline = time.monotonic() + 60
            while not list((spool / "quarantine").glob("*.reason")):
                assert time.monotonic() < deadline, "nothing was quarantined"
                time.sleep(0.1)
        [reason] = list((spool / "quarantine").glob("*.reason"))
        assert "ParseError" in reason.read_text() and "zip" in reason.read_text().lower()
        assert stored(store, abuse_messages) == 0
    finally:
        store.close()

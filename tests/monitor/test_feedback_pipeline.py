"""The feedback intake: dispatch, attribution by each rule in order, exactly-once storage, counters.

Every message here is built by the test; the store is SQLite and the local PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from typing import Any

import pytest
import sqlalchemy as sa

from checks.errors import ParseError
from collectors.feedback.attribution import SendingIpRules, ips_in
from collectors.feedback.model import (
    BouncedRecipient,
    Report,
    TlsPolicyResult,
    TlsReport,
)
from collectors.feedback.parse import parse_message
from collectors.feedback.pipeline import bucket_start, recipient_token, redact
from monitor.config import Config, ConfigError, parse_config
from monitor.feedback_intake import ingest_report, ingest_spooled
from monitor.inventory import Inventory
from monitor.store import Store
from monitor.store.schema import (
    dmarc_records,
    feedback_counts,
    feedback_events,
    feedback_messages,
)

#: VERP return path: bounce-<8 hex digits of the sending IP>-<anything>@bounces.example.net
VERP = r"^bounce-(?P<ipx>[0-9a-f]{8})-"
WHEN = dt.datetime(2026, 11, 24, 10, 17, 5, tzinfo=dt.UTC)


def make_config(**feedback: Any) -> Config:
    return parse_config(
        {
            "inventory": {
                "pools": [
                    {"name": "pool-a", "customer": "acme", "cidrs": ["192.0.2.0/28"]},
                    {"name": "pool-b", "customer": "beta", "cidrs": ["2001:db8:5::/120"]},
                ]
            },
            "feedback": {"verp_pattern": VERP, **feedback},
        }
    )


CONFIG = make_config()
INVENTORY = Inventory.from_config(CONFIG)

# --- messages the tests build ----------------------------------------------------------------


def dsn(
    recipients: list[tuple[str, str, str, str]],
    original: str = "",
    to: str = "postmaster@feedback.example.net",
) -> bytes:
    """An RFC 3464 DSN; ``recipients`` are (address, action, status, diagnostic)."""
    blocks = "".join(
        f"Final-Recipient: rfc822; {addr}\nAction: {action}\nStatus: {status}\n"
        f"Remote-MTA: dns; mx.example.com\nDiagnostic-Code: smtp; {diag}\n\n"
        for addr, action, status, diag in recipients
    )
    orig = f"--B0\nContent-Type: text/rfc822-headers\n\n{original.strip()}\n\n" if original else ""
    text = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\n"
        f"To: {to}\n"
        "Subject: Delivery Status Notification (Failure)\n"
        "Date: Tue, 24 Nov 2026 10:15:00 +0000\n"
        "Message-ID: <dsn-1@mx.example.org>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B0"\n\n'
        "--B0\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
        "--B0\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.org\n\n"
        f"{blocks}"
        f"{orig}"
        "--B0--\n"
    )
    return text.encode()


def original_headers(*received: str, extra: str = "") -> str:
    lines = [f"Received: {r}" for r in received]
    lines += [
        "Return-Path: <news@shop.example.net>",
        "From: Shop <news@shop.example.net>",
        "To: someone@example.com",
        "Subject: Our offers",
        "Date: Tue, 24 Nov 2026 10:14:00 +0000",
        "Message-ID: <offer-1@shop.example.net>",
    ]
    if extra:
        lines.insert(0, extra)
    return "\n".join(lines)


#: the receiving MX's header: our IP 192.0.2.5 connected to it
MX_RECEIVED = (
    "from out5.esp.example.net (out5.esp.example.net [192.0.2.5])\n"
    "\tby mx.example.com with ESMTPS id abc; Tue, 24 Nov 2026 10:14:02 +0000"
)
#: our MTA's own header: the customer's IP submitted the message
OUR_RECEIVED = (
    "from shop-app (unknown [203.0.113.77])\n"
    "\tby out5.esp.example.net with ESMTPSA id def; Tue, 24 Nov 2026 10:14:01 +0000"
)


def arf(
    feedback_type: str = "abuse",
    source_ip: str = "192.0.2.9",
    received: tuple[str, ...] = (),
    extra_fields: str = "",
    mail_from: str = "news@shop.example.net",
) -> bytes:
    fields = f"Feedback-Type: {feedback_type}\nUser-Agent: ExampleFBL/1.0\nVersion: 1\n"
    if source_ip:
        fields += f"Source-IP: {source_ip}\n"
    fields += (
        f"Original-Mail-From: <{mail_from}>\n"
        "Original-Rcpt-To: <reader@mail.example.com>\n"
        "Arrival-Date: Tue, 24 Nov 2026 09:00:00 +0000\n"
        "Reported-Domain: shop.example.net\n"
        f"{extra_fields}"
    )
    text = (
        "From: fbl@fbl.example.com\n"
        "To: abuse@esp.example.net\n"
        "Subject: FW: Our offers\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0000\n"
        "Message-ID: <arf-1@fbl.example.com>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="A0"\n\n'
        "--A0\nContent-Type: text/plain\n\nThis is an email abuse report.\n\n"
        f"--A0\nContent-Type: message/feedback-report\n\n{fields}\n"
        f"--A0\nContent-Type: message/rfc822\n\n{original_headers(*received)}\n\nHello\n\n"
        "--A0--\n"
    )
    return text.encode()


def dmarc_xml(records: list[tuple[str, int, str]], report_id: str = "r-1") -> bytes:
    rows = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated>"
        f"<disposition>none</disposition><dkim>{res}</dkim><spf>{res}</spf>"
        f"</policy_evaluated></row><identifiers><header_from>shop.example.net</header_from>"
        f"</identifiers><auth_results><dkim><domain>shop.example.net</domain>"
        f"<selector>s1</selector><result>{res}</result></dkim><spf><domain>shop.example.net"
        f"</domain><result>{res}</result></spf></auth_results></record>"
        for ip, n, res in records
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feedback><report_metadata>'
        "<org_name>mail.example.com</org_name><email>noreply@mail.example.com</email>"
        f"<report_id>{report_id}</report_id><date_range><begin>1763942400</begin>"
        "<end>1764028799</end></date_range></report_metadata><policy_published>"
        "<domain>shop.example.net</domain><p>none</p><sp>none</sp><pct>100</pct>"
        f"</policy_published>{rows}</feedback>\n"
    ).encode()


def mail_with_attachment(data: bytes, content_type: str, filename: str, subject: str) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "noreply@mail.example.com"
    msg["To"] = "dmarc@esp.example.net"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 24 Nov 2026 10:16:00 +0000"
    msg["Message-ID"] = f"<{filename}@mail.example.com>"
    msg.set_content("Report attached.")
    maintype, subtype = content_type.split("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def dmarc_mail(records: list[tuple[str, int, str]]) -> bytes:
    data = gzip.compress(dmarc_xml(records))
    name = "mail.example.com!shop.example.net!1763942400!1764028799.xml.gz"
    return mail_with_attachment(data, "application/gzip", name, "Report domain: shop.example.net")


def tls_json() -> bytes:
    report = {
        "organization-name": "Mail Example Inc.",
        "date-range": {
            "start-datetime": "2026-11-23T00:00:00Z",
            "end-datetime": "2026-11-23T23:59:59Z",
        },
        "contact-info": "tlsrpt@mail.example.com",
        "report-id": "tls-2026-11-23",
        "policies": [
            {
                "policy": {"policy-type": "sts", "policy-domain": "esp.example.net"},
                "summary": {"total-successful-session-count": 90, "total-failure-session-count": 3},
                "failure-details": [
                    {
                        "result-type": "certificate-expired",
                        "sending-mta-ip": "198.51.100.20",
                        "receiving-mx-hostname": "mx1.esp.example.net",
                        "failed-session-count": 3,
                    }
                ],
            }
        ],
    }
    return json.dumps(report).encode()


def plain_mail() -> bytes:
    return (
        b"From: someone@example.com\nTo: postmaster@feedback.example.net\n"
        b"Subject: Hello there\nDate: Tue, 24 Nov 2026 10:00:00 +0000\n\nJust a note.\n"
    )


# --- helpers -----------------------------------------------------------------------------


def ingest(store: Store, raw: bytes, config: Config = CONFIG, when: dt.datetime = WHEN, **kw: Any):
    digest = hashlib.sha256(raw).hexdigest()
    return ingest_spooled(store, config, INVENTORY, raw, digest, when, f"new/{digest}", **kw)


def rows(store: Store, table: sa.Table) -> list[Any]:
    with store.begin() as conn:
        return list(conn.execute(sa.select(table)).mappings())


# --- attribution, one rule at a time ------------------------------------------------------


def test_bounce_by_sending_ip_header(store: Store) -> None:
    original = original_headers(OUR_RECEIVED, extra="X-Sending-IP: 192.0.2.3")
    raw = dsn([("gone@example.com", "failed", "5.1.1", "550 5.1.1 user unknown")], original)
    out = ingest(store, raw)
    assert (out.kind, out.events, out.sending_ips, out.duplicate) == (
        "bounce",
        1,
        ["192.0.2.3"],
        False,
    )
    [event] = rows(store, feedback_events)
    assert event["sending_ip"] == "192.0.2.3"
    assert event["attributed_by"] == "header"
    assert (event["pool"], event["customer"]) == ("pool-a", "acme")
    assert event["receiving_domain"] == "example.com"
    assert event["status"] == "5.1.1"
    assert event["category"] == "bad-mailbox" and event["hard"] is True


def test_bounce_by_received_header_of_the_receiving_mx(store: Store) -> None:
    # our MTA's own Received names the customer (203.0.113.77, not ours): only the MX's matches
    original = original_headers(MX_RECEIVED, OUR_RECEIVED)
    raw = dsn([("full@example.com", "failed", "5.2.2", "552 5.2.2 mailbox full")], original)
    out = ingest(store, raw)
    [event] = rows(store, feedback_events)
    assert (event["sending_ip"], event["attributed_by"]) == ("192.0.2.5", "received")
    assert out.sending_ip == "192.0.2.5"


def test_bounce_by_verp_in_the_envelope(store: Store) -> None:
    raw = dsn([("gone@example.com", "failed", "5.1.1", "550 5.1.1 user unknown")])
    out = ingest(store, raw, envelope_to=["bounce-c0000206-xyz@bounces.example.net"])
    assert out.sending_ip == "192.0.2.6"
    [event] = rows(store, feedback_events)
    assert event["attributed_by"] == "verp"


def test_bounce_by_verp_in_the_to_header(store: Store) -> None:
    raw = dsn(
        [("gone@example.com", "failed", "5.1.1", "550 5.1.1 user unknown")],
        to="bounce-c000020a-q1@bounces.example.net",
    )
    assert ingest(store, raw).sending_ip == "192.0.2.10"


def test_bounce_by_ip_in_the_diagnostic(store: Store) -> None:
    diag = "554 5.7.1 Service unavailable; Client host [192.0.2.11] blocked using zen.spamhaus.org"
    out = ingest(store, dsn([("x@example.org", "failed", "5.7.1", diag)]))
    [event] = rows(store, feedback_events)
    assert (event["sending_ip"], event["attributed_by"]) == ("192.0.2.11", "diagnostic")
    assert event["blocklist"] == "zen.spamhaus.org"
    assert out.unattributed == 0


def test_rules_apply_in_documented_order(store: Store) -> None:
    # header beats Received, VERP and diagnostic; VERP beats diagnostic
    diag = "550 blocked: client 192.0.2.11 listed"
    original = original_headers(MX_RECEIVED, extra="X-Sending-IP: 192.0.2.3")
    envelope = ["bounce-c0000206-1@bounces.example.net"]
    raw = dsn([("a@example.com", "failed", "5.7.1", diag)], original)
    assert ingest(store, raw, envelope_to=envelope).sending_ip == "192.0.2.3"
    raw = dsn([("b@example.com", "failed", "5.7.1", diag)], original_headers(MX_RECEIVED))
    assert ingest(store, raw, envelope_to=envelope).sending_ip == "192.0.2.5"
    raw = dsn([("c@example.com", "failed", "5.7.1", diag)])
    assert ingest(store, raw, envelope_to=envelope).sending_ip == "192.0.2.6"
    raw = dsn([("d@example.com", "failed", "5.7.1", diag)])
    assert ingest(store, raw).sending_ip == "192.0.2.11"


def test_unattributed_bounce_is_kept_and_counted(store: Store) -> None:
    raw = dsn([("gone@example.com", "failed", "5.1.1", "550 5.1.1 user unknown")])
    out = ingest(store, raw)
    assert (out.events, out.unattributed, out.sending_ips) == (1, 1, [])
    [event] = rows(store, feedback_events)
    assert (event["sending_ip"], event["attributed_by"], event["pool"]) == ("", "", "")
    [count] = rows(store, feedback_counts)
    assert (count["sending_ip"], count["kind"], count["count"]) == ("", "bounce", 1)


def test_complaint_by_source_ip(store: Store) -> None:
    out = ingest(store, arf(source_ip="192.0.2.9"))
    assert out.kind == "complaint"
    [event] = rows(store, feedback_events)
    assert (event["sending_ip"], event["attributed_by"]) == ("192.0.2.9", "source-ip")
    assert (event["kind"], event["category"], event["feedback_type"]) == (
        "complaint",
        "abuse",
        "abuse",
    )
    assert event["receiving_domain"] == "mail.example.com"
    assert event["recipient"] == recipient_token("reader@mail.example.com")


def test_complaint_with_a_foreign_source_ip_prefers_our_received(store: Store) -> None:
    # a forwarder's IP as Source-IP: the reported message's Received header names ours
    ingest(store, arf(source_ip="198.51.100.99", received=(MX_RECEIVED, OUR_RECEIVED)))
    [event] = rows(store, feedback_events)
    assert (event["sending_ip"], event["attributed_by"]) == ("192.0.2.5", "received")


def test_complaint_falls_back_to_verp_then_to_the_stated_foreign_ip(store: Store) -> None:
    # Original-Mail-From is the reported message's envelope sender: our VERP return path
    verp = "bounce-c0000207-1@bounces.example.net"
    assert ingest(store, arf(source_ip="198.51.100.99", mail_from=verp)).sending_ip == "192.0.2.7"
    raw = arf(source_ip="198.51.100.99", feedback_type="other").replace(
        b"Return-Path: <news@shop.example.net>", f"Return-Path: <{verp}>".encode()
    )
    assert ingest(store, raw).sending_ip == "192.0.2.7"
    ingest(store, arf(source_ip="198.51.100.99", feedback_type="fraud"))
    event = [e for e in rows(store, feedback_events) if e["category"] == "fraud"][0]
    assert (event["sending_ip"], event["attributed_by"], event["pool"]) == (
        "198.51.100.99",
        "source-ip",
        "",
    )


def test_ipv6_source_ip_gets_its_pool(store: Store) -> None:
    ingest(store, arf(source_ip="2001:db8:5::1f"))
    [event] = rows(store, feedback_events)
    assert (event["sending_ip"], event["pool"], event["customer"]) == (
        "2001:db8:5::1f",
        "pool-b",
        "beta",
    )


def test_dmarc_failure_report(store: Store) -> None:
    raw = arf(feedback_type="auth-failure", extra_fields="Auth-Failure: dmarc\n")
    assert parse_message(raw).kind == "dmarc-failure"
    out = ingest(store, raw)
    assert out.kind == "dmarc-failure"
    [event] = rows(store, feedback_events)
    assert (event["kind"], event["category"], event["sending_ip"]) == (
        "dmarc-failure",
        "dmarc",
        "192.0.2.9",
    )


# --- other kinds ----------------------------------------------------------------------------


def test_delay_is_not_a_bounce(store: Store) -> None:
    raw = dsn([("slow@example.net", "delayed", "4.4.7", "451 4.4.1 no answer")])
    out = ingest(store, raw, envelope_to=["bounce-c0000201-1@bounces.example.net"])
    assert out.kind == "delay"
    [count] = rows(store, feedback_counts)
    assert (count["kind"], count["sending_ip"], count["receiving_domain"]) == (
        "delay",
        "192.0.2.1",
        "example.net",
    )


def test_dmarc_aggregate_records_carry_their_own_ip(store: Store) -> None:
    raw = dmarc_mail([("192.0.2.4", 120, "pass"), ("198.51.100.50", 3, "fail")])
    out = ingest(store, raw)
    assert (out.kind, out.events, out.records) == ("dmarc-aggregate", 0, 2)
    recs = sorted(rows(store, dmarc_records), key=lambda r: r["seq"])
    assert [(r["source_ip"], r["count"], r["pool"], r["customer"]) for r in recs] == [
        ("192.0.2.4", 120, "pool-a", "acme"),
        ("198.51.100.50", 3, "", ""),
    ]
    assert recs[0]["org_name"] == "mail.example.com" and recs[0]["report_id"] == "r-1"
    assert recs[1]["dkim"] == "fail"
    assert recs[0]["detail"]["auth_results"][0]["selector"] == "s1"
    assert rows(store, feedback_events) == []


def test_tls_report_is_one_summary_event(store: Store) -> None:
    report = Report(
        "tls-report",
        tls=TlsReport(
            "Mail Example Inc.",
            "tls-1",
            WHEN,
            WHEN,
            [TlsPolicyResult("sts", "esp.example.net", 90, 3)],
        ),
    )
    out = ingest_report(store, CONFIG, INVENTORY, report, "f" * 64, WHEN)
    assert (out.kind, out.events, out.unattributed) == ("tls-report", 1, 0)
    [event] = rows(store, feedback_events)
    assert (event["kind"], event["category"], event["receiving_domain"]) == (
        "tls-report",
        "failed",
        "esp.example.net",
    )
    assert event["detail"]["successful"] == 90 and event["detail"]["failed"] == 3


def test_tls_report_mail_is_dispatched(store: Store) -> None:
    pytest.importorskip("collectors.feedback.tlsrpt")
    raw = mail_with_attachment(
        gzip.compress(tls_json()), "application/tlsrpt+gzip", "tls.json.gz", "Report Domain"
    )
    out = ingest(store, raw)
    assert (out.kind, out.events) == ("tls-report", 1)


def test_other_message_is_recorded_without_events(store: Store) -> None:
    out = ingest(store, plain_mail())
    assert (out.kind, out.events) == ("other", 0)
    [msg] = rows(store, feedback_messages)
    assert msg["kind"] == "other" and msg["received_at"] == WHEN
    assert rows(store, feedback_events) == [] and rows(store, feedback_counts) == []


# --- exactly once, counters, personal data, errors ---------------------------------------


def test_duplicate_is_a_no_op(store: Store) -> None:
    raw = dsn([("gone@example.com", "failed", "5.1.1", "550 5.1.1 user unknown")])
    first = ingest(store, raw, envelope_to=["bounce-c0000201-1@bounces.example.net"])
    second = ingest(store, raw, envelope_to=["bounce-c0000201-1@bounces.example.net"])
    assert not first.duplicate and second.duplicate and second.kind == "bounce"
    assert len(rows(store, feedback_messages)) == 1
    assert len(rows(store, feedback_events)) == 1
    assert [c["count"] for c in rows(store, feedback_counts)] == [1]
    # the transaction itself refuses a second writer that passed the early check
    again = ingest_report(
        store, CONFIG, INVENTORY, parse_message(raw), hashlib.sha256(raw).hexdigest(), WHEN
    )
    assert again.duplicate
    assert len(rows(store, feedback_events)) == 1


def test_counters_add_up_per_hour_ip_kind_category_domain(store: Store) -> None:
    verp = ["bounce-c0000201-1@bounces.example.net"]
    three = dsn(
        [
            ("a@example.com", "failed", "5.1.1", "550 5.1.1 user unknown"),
            ("b@example.com", "failed", "5.1.1", "550 5.1.1 user unknown"),
            ("c@example.org", "failed", "5.1.1", "550 5.1.1 user unknown"),
        ]
    )
    one = dsn([("d@example.com", "failed", "5.1.1", "550 5.1.1 no such user")])
    later = dsn([("e@example.com", "failed", "5.1.1", "550 5.1.1 no such user here")])
    ingest(store, three, envelope_to=verp)
    ingest(store, one, envelope_to=verp, when=WHEN + dt.timedelta(minutes=30))
    ingest(store, later, envelope_to=verp, when=WHEN + dt.timedelta(hours=1))
    got = {
        (c["bucket_start"], c["receiving_domain"]): (c["count"], c["pool"], c["customer"])
        for c in rows(store, feedback_counts)
    }
    hour = bucket_start(WHEN)
    assert hour == dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC)
    assert got == {
        (hour, "example.com"): (3, "pool-a", "acme"),
        (hour, "example.org"): (1, "pool-a", "acme"),
        (hour + dt.timedelta(hours=1), "example.com"): (1, "pool-a", "acme"),
    }
    assert sum(c["count"] for c in rows(store, feedback_counts)) == len(
        rows(store, feedback_events)
    )


def test_recipients_are_hashed_unless_configured(store: Store) -> None:
    diag = "550 5.1.1 <Gone@Example.com>: Recipient address rejected"
    ingest(store, dsn([("gone@example.com", "failed", "5.1.1", diag)]))
    [event] = rows(store, feedback_events)
    token = recipient_token("gone@example.com")
    assert event["recipient"] == token == recipient_token(" Gone@EXAMPLE.com ")
    assert len(token) == 16 and "gone@" not in event["diagnostic"].lower()
    assert f"sha256:{token}@Example.com" in event["diagnostic"]
    assert "gone" not in json.dumps(list(rows(store, feedback_counts)), default=str)

    clear = make_config(store_recipients=True)
    raw = dsn([("kept@example.com", "failed", "5.1.1", "550 5.1.1 <kept@example.com> unknown")])
    ingest(store, raw, config=clear)
    kept = [e for e in rows(store, feedback_events) if e["recipient"] == "kept@example.com"]
    assert kept and "<kept@example.com>" in kept[0]["diagnostic"]


def test_complaint_detail_is_redacted(store: Store) -> None:
    # a VERP return path carries the recipient's address: hashed, its domain kept
    verp = "bounce-c0000207-reader=mail.example.com@bounces.example.net"
    assert redact(f"from <{verp}>") == f"from <sha256:{recipient_token(verp)}@bounces.example.net>"
    ingest(store, arf(mail_from=verp))
    [event] = rows(store, feedback_events)
    assert event["detail"]["original_mail_from"] == redact(verp)
    assert "reader" not in json.dumps(event["detail"])


def test_broken_message_raises_and_stores_nothing(store: Store) -> None:
    broken = mail_with_attachment(
        b"\x1f\x8b\x08\x00 this is not gzip at all",
        "application/gzip",
        "mail.example.com!shop.example.net!1!2.xml.gz",
        "Report domain: shop.example.net",
    )
    with pytest.raises(ParseError):
        ingest(store, broken)
    for table in (feedback_messages, feedback_events, feedback_counts, dmarc_records):
        assert rows(store, table) == []


def test_naive_received_time_is_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        ingest(store, plain_mail(), when=WHEN.replace(tzinfo=None))


def test_hostile_values_fit_the_columns(store: Store) -> None:
    # PostgreSQL enforces VARCHAR lengths and refuses NUL; SQLite does neither
    long_domain = "x" * 300 + ".example"
    r = BouncedRecipient(f"a@{long_domain}", status="5.1.1.1.1.1.1.1.1.1", diagnostic="bad\x00nul")
    from collectors.feedback.model import Bounce

    report = Report("bounce", bounce=Bounce([r]))
    out = ingest_report(store, CONFIG, INVENTORY, report, "e" * 64, WHEN)
    assert out.events == 1
    [event] = rows(store, feedback_events)
    assert len(event["receiving_domain"]) == 255 and "\x00" not in event["diagnostic"]


# --- pure functions -----------------------------------------------------------------------


def test_ips_in_text() -> None:
    text = "from a.example ([IPv6:2001:db8:5::2]) [192.0.2.1] ::ffff:192.0.2.2 10:22:33 1.2.3"
    assert ips_in(text) == ["2001:db8:5::2", "192.0.2.1", "192.0.2.2"]


def test_verp_forms() -> None:
    plain = SendingIpRules(INVENTORY, make_config(verp_pattern=r"^b-(?P<ip>[0-9-]+)-").feedback)
    found = plain.from_verp(["b-192-0-2-12-x@bounces.example.net"])
    assert found is not None and found.sending_ip == "192.0.2.12"
    v6 = SendingIpRules(INVENTORY, make_config(verp_pattern=r"^b-(?P<ipx>[0-9a-f]{32})-").feedback)
    hexa = "20010db8000500000000000000000003"
    found = v6.from_verp([f"b-{hexa}-x@bounces.example.net"])
    assert found is not None and found.sending_ip == "2001:db8:5::3"
    assert v6.from_verp(["b-zz-x@bounces.example.net"]) is None


def test_bad_verp_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="verp_pattern"):
        SendingIpRules(INVENTORY, make_config(verp_pattern="(unclosed").feedback)
    with pytest.raises(ConfigError, match="named group"):
        SendingIpRules(INVENTORY, make_config(verp_pattern="bounce-([0-9a-f]+)").feedback)


def test_dispatch_order() -> None:
    assert parse_message(arf()).kind == "complaint"
    assert parse_message(arf(feedback_type="auth-failure")).kind == "dmarc-failure"
    assert parse_message(dmarc_mail([("192.0.2.4", 1, "pass")])).kind == "dmarc-aggregate"
    bounce = dsn([("a@example.com", "failed", "5.1.1", "550 5.1.1 unknown")])
    assert parse_message(bounce).kind == "bounce"
    assert parse_message(plain_mail()).kind == "other"
    assert parse_message(b"\x00\xff garbage \x00").kind == "other"


def test_concurrent_writers_store_once_and_count_right(store: Store) -> None:
    # two sink instances taking the same re-delivered message, and others, at the same time
    from concurrent.futures import ThreadPoolExecutor

    verp = ["bounce-c0000201-1@bounces.example.net"]
    same = dsn([("same@example.com", "failed", "5.1.1", "550 5.1.1 user unknown")])
    others = [
        dsn([(f"u{i}@example.com", "failed", "5.1.1", "550 5.1.1 user unknown")]) for i in range(6)
    ]
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(
            pool.map(lambda raw: ingest(store, raw, envelope_to=verp), [same] * 4 + others)
        )
    assert sum(not o.duplicate for o in outcomes[:4]) == 1
    [count] = rows(store, feedback_counts)
    assert count["count"] == 7 == len(rows(store, feedback_events))


# --- the third-party corpus: every labelled report sample is dispatched to its kind ------------


def _expected_kind(folder: str, labels: dict[str, Any]) -> str | None:
    if folder == "arf":
        ftype = str(labels.get("feedback_type") or "").lower().replace("-", "")
        if not ftype:
            return None  # unlabelled: only "parses without error" is checked
        return "dmarc-failure" if ftype == "authfailure" else "complaint"
    return {
        "dmarc-failure": "dmarc-failure",
        "dmarc-aggregate": "dmarc-aggregate",
        "tls-rpt": "tls-report",
    }[folder]


@pytest.mark.parametrize("folder", ["arf", "dmarc-failure", "dmarc-aggregate", "tls-rpt"])
def test_corpus_reports_dispatch(corpus: Any, folder: str) -> None:
    from collectors.feedback.parse import parse_file

    expected = json.loads((corpus / folder / "expected.json").read_text())
    wrong = []
    for rel, labels in sorted(expected.items()):
        want = _expected_kind(folder, labels)
        got = [
            r if isinstance(r, ParseError) else r.kind for _, r in parse_file(corpus / folder / rel)
        ]
        if any(isinstance(g, ParseError) for g in got) or (want and got != [want]):
            wrong.append((rel, want, got))
    assert wrong == []

"""Unit tests of the complaint, DMARC and TLS report parsers on messages and files built here."""

from __future__ import annotations

import base64
import datetime as dt
import email
import gzip
import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from email.message import Message

import pytest

from checks.errors import ParseError
from collectors.feedback.arf import connecting_ip, parse_arf, valid_ip
from collectors.feedback.dmarc_aggregate import (
    MAX_REPORT_BYTES,
    extract_aggregate,
    parse_aggregate_bytes,
    parse_aggregate_xml,
)
from collectors.feedback.dmarc_failure import parse_dmarc_failure
from collectors.feedback.tlsrpt import extract_tls_report, parse_tls_report_bytes


def _msg(text: str) -> Message:
    return email.message_from_string(text.lstrip())


# -- ARF ---------------------------------------------------------------------------------------

REPORTED = """\
Received: from mx-in.provider.example (mx-in.provider.example [10.1.2.3])
    by store.provider.example with LMTP; Tue, 3 Mar 2026 10:00:01 +0000
Received: from out7.sender.example (out7.sender.example [198.51.100.7])
    by mx-in.provider.example with ESMTPS id 4711; Tue, 3 Mar 2026 10:00:00 +0000
From: News <news@sender.example>
To: someone@provider.example
Subject: Spring offers
Message-ID: <offer-1@sender.example>

Buy now.
"""


def _arf(
    fields: str,
    *,
    report_type: str = "; report-type=feedback-report",
    fields_type: str = "message/feedback-report",
    reported: str = REPORTED,
    human: str = "This is an email abuse report.",
) -> Message:
    return _msg(f"""
From: fbl@provider.example
To: abuse@sender.example
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report{report_type}; boundary="b1"

--b1
Content-Type: text/plain; charset=us-ascii

{human}

--b1
Content-Type: {fields_type}

{fields}
--b1
Content-Type: message/rfc822
Content-Disposition: inline

{reported}
--b1--
""")


FULL_FIELDS = """\
Feedback-Type: Abuse
User-Agent: ProviderFBL/2.1
Version: 1
Original-Mail-From: <bounce-17@sender.example>
Original-Rcpt-To: <someone@provider.example>
Original-Rcpt-To: Second <second@provider.example>
Arrival-Date: Tue, 3 Mar 2026 10:00:00 +0000
Source-IP: [198.51.100.7]
Reported-Domain: Sender.example
Reported-Domain: links.sender.example
"""


def test_arf_with_all_fields() -> None:
    complaint = parse_arf(_arf(FULL_FIELDS))
    assert complaint is not None
    assert complaint.feedback_type == "abuse"
    assert complaint.source_ip == "198.51.100.7"
    assert complaint.original_mail_from == "bounce-17@sender.example"
    assert complaint.original_rcpt_to == ["someone@provider.example", "second@provider.example"]
    assert complaint.reported_domain == ["sender.example", "links.sender.example"]
    assert complaint.arrival_date == dt.datetime(2026, 3, 3, 10, 0, tzinfo=dt.UTC)
    assert complaint.user_agent == "ProviderFBL/2.1"
    assert complaint.original is not None
    assert complaint.original["Message-ID"] == "<offer-1@sender.example>"


def test_arf_source_ip_missing_comes_from_received() -> None:
    fields = "Feedback-Type: abuse\nUser-Agent: X/1\nVersion: 1\n"
    complaint = parse_arf(_arf(fields, human="Complaint."))
    assert complaint is not None
    # the top hop is the provider's internal relay (10.1.2.3): skipped
    assert complaint.source_ip == "198.51.100.7"


def test_arf_ipv6_received_and_bad_source_ip() -> None:
    reported = (
        "Received: from out.sender.example ([IPv6:2001:db8::25])\n"
        "    by mx.provider.example with ESMTPS; Tue, 3 Mar 2026 10:00:00 +0000\n"
        "Subject: x\n\nbody\n"
    )
    fields = "Feedback-Type: fraud\nSource-IP: not-an-ip\nArrival-Date: yesterday\n"
    complaint = parse_arf(_arf(fields, reported=reported, human="Complaint."))
    assert complaint is not None
    assert complaint.feedback_type == "fraud"
    assert complaint.source_ip == "2001:db8::25"
    assert complaint.arrival_date is None


def test_arf_without_report_type_and_fields_as_text_plain() -> None:
    fields = "Feedback-Type: abuse\nUser-Agent: Old/0.1\nSource-IP: 192.0.2.44\n"
    complaint = parse_arf(_arf(fields, report_type="", fields_type="text/plain"))
    assert complaint is not None
    assert (complaint.feedback_type, complaint.source_ip) == ("abuse", "192.0.2.44")


def test_arf_reported_headers_only() -> None:
    msg = (
        _arf(FULL_FIELDS)
        .as_string()
        .replace("Content-Type: message/rfc822", "Content-Type: text/rfc822-headers")
    )
    complaint = parse_arf(email.message_from_string(msg))
    assert complaint is not None and complaint.original is not None
    assert complaint.original["Subject"] == "Spring offers"


def test_jmrp_style_complaint() -> None:
    msg = _msg("""
From: staff@hotmail.example
To: fbl@sender.example
Subject: complaint about message from 198.51.100.9
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="jm"

--jm
Content-Type: message/rfc822
Content-Disposition: inline

X-HmXmrOriginalRecipient: <reader@outlook.example>
Received: from out9.sender.example ([198.51.100.9]) by mx.outlook.example
    with Microsoft SMTPSVC; Tue, 3 Mar 2026 10:00:00 +0000
From: News <news@sender.example>
Subject: Offers

Hello
--jm--
""")
    complaint = parse_arf(msg)
    assert complaint is not None
    assert complaint.feedback_type == "abuse"  # JMRP carries no type
    assert complaint.original_rcpt_to == ["reader@outlook.example"]
    assert complaint.source_ip == "198.51.100.9"
    assert complaint.original is not None and complaint.original["Subject"] == "Offers"


def test_not_a_complaint() -> None:
    assert parse_arf(_msg("From: a@b.example\nSubject: hi\n\nhello\n")) is None
    dsn = _msg("""
Content-Type: multipart/report; report-type=delivery-status; boundary="d"

--d
Content-Type: text/plain

failed
--d
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example

Final-Recipient: rfc822; a@b.example
Action: failed
Status: 5.1.1
--d--
""")
    assert parse_arf(dsn) is None
    assert parse_dmarc_failure(dsn) is None


def test_connecting_ip_forms() -> None:
    headers = email.message_from_string(
        "Received: from unknown (HELO mx.sender.example) (203.0.113.70)\n"
        "  by mail.provider.example with SMTP; 1 Mar 2026 00:00:00 -0000\n\n"
    )
    assert connecting_ip(headers) == "203.0.113.70"
    assert connecting_ip(email.message_from_string("Received: by x; now\n\n")) == ""
    assert valid_ip("[IPv6:::ffff:192.0.2.1]") == "192.0.2.1"
    assert valid_ip("300.1.1.1") == ""


# -- DMARC failure -----------------------------------------------------------------------------


def test_dmarc_failure_arf() -> None:
    fields = (
        "Feedback-Type: auth-failure\nUser-Agent: F/1\nVersion: 1\nAuth-Failure: DKIM\n"
        "Source-IP: 192.0.2.5\nReported-Domain: sender.example\nDelivery-Result: reject\n"
        "DKIM-Domain: sender.example\nIdentity-Alignment: dkim\n"
    )
    complaint = parse_dmarc_failure(_arf(fields))
    assert complaint is not None
    assert (complaint.feedback_type, complaint.auth_failure) == ("auth-failure", "dkim")
    assert complaint.source_ip == "192.0.2.5"
    assert complaint.reported_domain == ["sender.example"]
    # an abuse report is a complaint, not a failure report
    assert parse_dmarc_failure(_arf(FULL_FIELDS)) is None


def test_dmarc_failure_plain_text() -> None:
    msg = _msg("""
Subject: DMARC Forensic Report for sender.example from IP 192.0.2.66
Content-Type: multipart/report; boundary="x"

--x
Content-Type: text/plain

A message claiming to be from you has failed the published DMARC policy for your domain.

  Sender Domain: sender.example
  Sender IP Address: 192.0.2.66
  Received date: Mon, 07 Apr 2025 23:16:09 +0200

------ This is a copy of the headers that were received before the error was detected.

Received: from [192.0.2.66] (helo=x) by mx.receiver.example; Mon, 07 Apr 2025 23:16:08 +0200
From: <ceo@sender.example>
Subject: Pay now

--x--
""")
    complaint = parse_dmarc_failure(msg)
    assert complaint is not None
    assert complaint.feedback_type == "auth-failure"
    assert complaint.source_ip == "192.0.2.66"
    assert complaint.reported_domain == ["sender.example"]
    assert complaint.original is not None and complaint.original["Subject"] == "Pay now"


# -- DMARC aggregate ---------------------------------------------------------------------------

AGGREGATE = """<?xml version="1.0" encoding="UTF-8"?>
<feedback{ns}>
  <report_metadata>
    <org_name>receiver.example</org_name>
    <email>dmarc@receiver.example</email>
    <report_id>r-42</report_id>
    <date_range><begin>1772323200</begin><end>1772409599</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>Sender.example</domain><p>reject</p><sp>none</sp>{extra}
  </policy_published>
  <record>
    <row>
      <source_ip>198.51.100.7</source_ip><count>40</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>FAIL</spf>
        <reason><type>forwarded</type><comment>list</comment></reason>
      </policy_evaluated>
    </row>
    <identifiers><header_from>sender.example</header_from>
      <envelope_from>bounce.sender.example</envelope_from></identifiers>
    <auth_results>
      <dkim><domain>sender.example</domain><selector>s1</selector><result>pass</result></dkim>
      <spf><domain>bounce.sender.example</domain><scope>mfrom</scope><result>fail</result></spf>
    </auth_results>
  </record>
  <record>
    <row><source_ip>2001:db8::7</source_ip><count>2</count>
      <policy_evaluated><disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf>
      </policy_evaluated></row>
    <identifiers><header_from>sender.example</header_from></identifiers>
  </record>
</feedback>
"""


def _aggregate(ns: str = "", extra: str = "<pct>100</pct>") -> bytes:
    return AGGREGATE.format(ns=ns, extra=extra).encode()


def test_aggregate_rfc7489() -> None:
    report = parse_aggregate_xml(_aggregate())
    assert (report.org_name, report.report_id, report.policy_domain) == (
        "receiver.example",
        "r-42",
        "sender.example",
    )
    assert report.begin == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert report.policy == {"p": "reject", "sp": "none", "pct": "100"}
    assert [(r.source_ip, r.count) for r in report.records] == [
        ("198.51.100.7", 40),
        ("2001:db8::7", 2),
    ]
    first = report.records[0]
    assert (first.disposition, first.dkim, first.spf) == ("none", "pass", "fail")
    assert first.reasons == ["forwarded: list"]
    assert first.envelope_from == "bounce.sender.example"
    assert first.dkim_selectors == ["s1"]
    assert [(a.method, a.domain, a.result, a.scope) for a in first.auth_results] == [
        ("dkim", "sender.example", "pass", ""),
        ("spf", "bounce.sender.example", "fail", "mfrom"),
    ]
    assert report.xml_namespace == ""


def test_aggregate_rfc9990_namespace() -> None:
    ns = ' xmlns="urn:ietf:params:xml:ns:dmarc-2.0"'
    extra = "<np>quarantine</np><testing>y</testing><discovery_method>treewalk</discovery_method>"
    report = parse_aggregate_xml(_aggregate(ns, extra))
    assert report.xml_namespace == "urn:ietf:params:xml:ns:dmarc-2.0"
    assert report.policy["np"] == "quarantine"
    assert report.policy["testing"] == "y"
    assert report.policy["discovery_method"] == "treewalk"
    assert "pct" not in report.policy
    assert sum(r.count for r in report.records) == 42


def _zip(data: bytes, name: str = "receiver.example!sender.example!1!2.xml") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buf.getvalue()


def test_aggregate_gzip_and_zip_sniffed_by_magic() -> None:
    xml = _aggregate()
    for data in (gzip.compress(xml), _zip(xml), xml):
        # the name is deliberately misleading: content decides
        assert parse_aggregate_bytes(data, "report.txt").report_id == "r-42"


def _attached(ctype: str, payload: bytes, filename: str) -> Message:
    body = base64.encodebytes(payload).decode()
    return _msg(f"""
From: noreply-dmarc@receiver.example
Subject: Report domain: sender.example
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="m"

--m
Content-Type: text/plain

This is an aggregate report.
--m
Content-Type: {ctype}; name="{filename}"
Content-Disposition: attachment; filename="{filename}"
Content-Transfer-Encoding: base64

{body}
--m--
""")


@pytest.mark.parametrize(
    ("ctype", "pack", "filename"),
    [
        ("application/gzip", gzip.compress, "r.xml.gz"),
        ("application/x-gzip", gzip.compress, "r.xml.gz"),
        ("application/zip", _zip, "r.zip"),
        ("application/x-zip-compressed", _zip, "r.zip"),
        ("application/octet-stream", gzip.compress, "r.xml.gz"),
        ("text/xml", lambda b: b, "r.xml"),
    ],
)
def test_aggregate_attached(ctype: str, pack: Callable[[bytes], bytes], filename: str) -> None:
    xml = extract_aggregate(_attached(ctype, pack(_aggregate()), filename))
    assert xml is not None
    assert len(parse_aggregate_xml(xml).records) == 2


def test_aggregate_inline_body() -> None:
    msg = _msg("From: r@receiver.example\nContent-Type: text/xml\n\n" + _aggregate().decode())
    xml = extract_aggregate(msg)
    assert xml is not None and parse_aggregate_xml(xml).report_id == "r-42"
    plain = _msg("From: r@receiver.example\nContent-Type: text/plain\n\n" + _aggregate().decode())
    assert extract_aggregate(plain) is not None
    assert extract_aggregate(_msg("From: a@b.example\n\nno report here\n")) is None


def test_aggregate_repairs_stray_bytes() -> None:
    broken = _aggregate().replace(b"<envelope_from>bounce", b"<envelope_from>b<ounce\xff")
    report = parse_aggregate_xml(broken)
    assert [r.count for r in report.records] == [40, 2]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [
 <!ENTITY a "lol">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<feedback><report_metadata><report_id>&d;</report_id></report_metadata></feedback>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<feedback><report_metadata><org_name>&x;</org_name><report_id>1</report_id></report_metadata>
</feedback>
"""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (BILLION_LAUGHS, "DTD"),
        (EXTERNAL_ENTITY, "DTD"),
        (b"\x00\x01garbage\xff", "not well-formed"),
        (b"<html><body>hi</body></html>", "not a DMARC"),
        (_aggregate().replace(b"<report_id>r-42</report_id>", b""), "report_id"),
        (_aggregate().replace(b"<count>40</count>", b"<count>forty</count>"), "not an integer"),
        (_aggregate().replace(b"<count>40</count>", b""), "no <count>"),
        (_aggregate().replace(b"<source_ip>198.51.100.7</source_ip>", b""), "no <source_ip>"),
        (_aggregate().replace(b"198.51.100.7", b"198.51.100.777"), "not an IP"),
    ],
)
def test_aggregate_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_aggregate_bytes(data)


def test_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(b"\0" * (MAX_REPORT_BYTES + 1024 * 1024), compresslevel=1)
    assert len(bomb) < MAX_REPORT_BYTES // 100
    with pytest.raises(ParseError, match="limit"):
        parse_aggregate_bytes(bomb)
    with pytest.raises(ParseError, match="limit"):
        parse_tls_report_bytes(bomb)


def _patch_declared_size(data: bytes, size: int) -> bytes:
    """A zip whose headers declare ``size`` uncompressed bytes for its member."""
    buf = bytearray(data)
    local = buf.find(b"PK\x03\x04")
    struct.pack_into("<I", buf, local + 22, size)
    central = buf.find(b"PK\x01\x02")
    struct.pack_into("<I", buf, central + 24, size)
    return bytes(buf)


def test_zip_with_huge_declared_size_is_refused() -> None:
    lying = _patch_declared_size(_zip(_aggregate()), 0x7FFFFFFF)
    with pytest.raises(ParseError, match="declares"):
        parse_aggregate_bytes(lying)


def test_zip_whose_content_exceeds_its_declared_size_is_refused() -> None:
    big = _zip(b"\0" * (MAX_REPORT_BYTES + 1024))
    with pytest.raises(ParseError):
        parse_aggregate_bytes(_patch_declared_size(big, 1000))


def test_zip_with_many_members_and_corrupt_archives() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for n in range(10):
            archive.writestr(f"{n}.xml", b"<feedback/>")
    with pytest.raises(ParseError, match="at most"):
        parse_aggregate_bytes(buf.getvalue())
    with pytest.raises(ParseError, match="zip"):
        parse_aggregate_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(ParseError, match="gzip"):
        parse_aggregate_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 5)


# -- TLS reports -------------------------------------------------------------------------------

TLS = {
    "organization-name": "Receiver Inc.",
    "date-range": {
        "start-datetime": "2026-03-01T00:00:00Z",
        "end-datetime": "2026-03-01T23:59:59Z",
    },
    "contact-info": "tls@receiver.example",
    "report-id": "2026-03-01_sender.example",
    "policies": [
        {
            "policy": {"policy-type": "sts", "policy-domain": "sender.example"},
            "summary": {"total-successful-session-count": 90, "total-failure-session-count": 4},
            "failure-details": [
                {
                    "result-type": "certificate-expired",
                    "sending-mta-ip": "198.51.100.7",
                    "failed-session-count": 4,
                }
            ],
        },
        {
            "policy": {"policy-type": "no-policy-found", "policy-domain": "mx.sender.example"},
            "summary": {"total-successful-session-count": 10, "total-failure-session-count": 0},
        },
    ],
}


def test_tls_report_json_and_gzip() -> None:
    raw = json.dumps(TLS).encode()
    for data in (raw, gzip.compress(raw)):
        report = parse_tls_report_bytes(data)
        assert (report.organization_name, report.report_id) == (
            "Receiver Inc.",
            "2026-03-01_sender.example",
        )
        assert (report.successful, report.failed) == (100, 4)
        assert report.begin == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
        assert [p.policy_type for p in report.policies] == ["sts", "no-policy-found"]
        assert report.policies[0].failure_details[0]["result-type"] == "certificate-expired"


@pytest.mark.parametrize(
    ("ctype", "pack"),
    [
        ("application/tlsrpt+gzip", gzip.compress),
        ("application/tlsrpt+json", lambda b: b),
        ("application/gzip", gzip.compress),
        ("application/octet-stream", lambda b: b),
    ],
)
def test_tls_report_in_email(ctype: str, pack: Callable[[bytes], bytes]) -> None:
    data = extract_tls_report(_attached(ctype, pack(json.dumps(TLS).encode()), "r.json.gz"))
    assert data is not None
    assert parse_tls_report_bytes(data).failed == 4


def test_tls_report_garbage() -> None:
    with pytest.raises(ParseError, match="not JSON"):
        parse_tls_report_bytes(b"\xffnot json")
    with pytest.raises(ParseError, match="not a TLS report"):
        parse_tls_report_bytes(b'{"hello": 1}')
    bad = json.loads(json.dumps(TLS))
    bad["policies"][0]["summary"]["total-failure-session-count"] = "many"
    with pytest.raises(ParseError, match="not an integer"):
        parse_tls_report_bytes(json.dumps(bad).encode())
    assert extract_tls_report(_msg("From: a@b.example\n\nhello\n")) is None


def test_compressed_garbage_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_aggregate_bytes(gzip.compress(b"\x00garbage"))
    with pytest.raises(ParseError):
        parse_tls_report_bytes(zlib.compress(b"not gzip framing"))


def test_arf_fields_in_a_single_part_body() -> None:
    msg = _msg("""
From: fbl@provider.example
Subject: Complaint
Content-Type: text/plain

A complaint was received for the message below.

Feedback-Type: abuse
User-Agent: Flat/1.0
Source-IP: 192.0.2.99

Received: from out.sender.example ([192.0.2.99]) by mx.provider.example; now
""")
    complaint = parse_arf(msg)
    assert complaint is not None and complaint.source_ip == "192.0.2.99"
    prose = _msg("From: a@b.example\n\nPlease set Feedback-Type: abuse in your reports.\n")
    assert parse_arf(prose) is None


def test_reports_are_not_mistaken_for_each_other() -> None:
    tls_as_gzip = _attached("application/gzip", gzip.compress(json.dumps(TLS).encode()), "r.gz")
    assert extract_aggregate(tls_as_gzip) is None
    assert extract_tls_report(tls_as_gzip) is not None
    dmarc = _attached("application/gzip", gzip.compress(_aggregate()), "r.xml.gz")
    assert extract_tls_report(dmarc) is None


def test_bounce_is_neither_failure_report_nor_aggregate() -> None:
    quoting = _msg(
        "Subject: failure notice\nContent-Type: text/plain\n\n"
        "Remote host said: 550 5.7.515 Access denied. Spf= Fail , Dkim= Pass , DMARC= Pass\n"
    )
    assert parse_dmarc_failure(quoting) is None
    returned = _attached("application/gzip", gzip.compress(_aggregate()), "r.xml.gz")
    bounce = _msg(f"""
Content-Type: multipart/report; report-type=delivery-status; boundary="d"

--d
Content-Type: text/plain

Your DMARC report could not be delivered.
--d
Content-Type: message/rfc822

{returned.as_string()}
--d--
""")
    assert extract_aggregate(bounce) is None


def test_failure_report_keeps_rfc6591_fields() -> None:
    from email import message_from_bytes

    from collectors.feedback.dmarc_failure import parse_dmarc_failure

    raw = (
        b"From: dmarc@receiver.example\r\nTo: ruf@sender.example\r\nSubject: DMARC failure\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nA message failed DMARC.\r\n"
        b"--b\r\nContent-Type: message/feedback-report\r\n\r\n"
        b"Feedback-Type: auth-failure\r\nVersion: 1\r\nAuth-Failure: dkim\r\n"
        b"Source-IP: 192.0.2.5\r\nReported-Domain: sender.example\r\n"
        b"Delivery-Result: reject\r\nIdentity-Alignment: dkim\r\n"
        b"DKIM-Domain: sender.example\r\nDKIM-Selector: s1\r\n"
        b"--b--\r\n"
    )
    c = parse_dmarc_failure(message_from_bytes(raw))
    assert c is not None and c.feedback_type == "auth-failure" and c.source_ip == "192.0.2.5"
    assert c.report_fields == {
        "delivery-result": "reject",
        "identity-alignment": "dkim",
        "dkim-domain": "sender.example",
        "dkim-selector": "s1",
    }

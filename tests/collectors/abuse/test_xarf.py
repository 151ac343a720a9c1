"""X-ARF 0.1/0.2 report parts, and the JSON generations (v1/v3, v4)."""

from __future__ import annotations

import json

from collectors.abuse import parse_abuse
from collectors.abuse.xarf import is_xarf_json, read_xarf0, report_from_json, report_from_xarf0

PART = """---
Reported-From: reports@fail2ban.example
Category: abuse
Report-Type: login-attack
Service: ssh
Version: 0.2
User-Agent: example-reporter 1.0
Date: Tue, 14 May 2024 07:58:01 +0000
Source-Type: ip-address
Source: 203.0.113.7
Port: 22
Report-ID: 42@fail2ban.example
Schema-URL: http://www.x-arf.org/schema/abuse_login-attack_0.1.2.json
Attachment: text/plain
"""


def mail(*parts: tuple[str, str, str], subject: str = "abuse report") -> bytes:
    """A multipart message of (content type, file name, text) parts."""
    out = [
        "From: Reporter <reports@fail2ban.example>",
        "To: abuse@provider.example",
        f"Subject: {subject}",
        "Date: Tue, 14 May 2024 08:00:00 +0000",
        "X-ARF: YES",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="XX"',
        "",
    ]
    for ctype, name, text in parts:
        out += ["--XX", f"Content-Type: {ctype}" + (f'; name="{name}"' if name else ""), "", text]
    out.append("--XX--")
    return "\n".join(out).encode()


def test_a_yaml_part_is_read() -> None:
    fields = read_xarf0(PART)
    assert fields is not None
    assert fields["report-type"] == "login-attack"
    assert fields["source"] == "203.0.113.7"
    assert fields["date"].startswith("Tue, 14 May 2024")


def test_a_part_yaml_refuses_is_read_line_by_line() -> None:
    # python tags and unquoted "http: //" values: real senders write both
    text = "Report-Type: web-attack\nSource: !!python/unicode '198.51.100.4'\n"
    text += "Source-Type: ip-address\nSchema-URL: http: //example/schema.json\n"
    fields = read_xarf0(text)
    assert fields is not None
    assert fields["source"] == "198.51.100.4"
    assert fields["report-type"] == "web-attack"


def test_prose_mentioning_a_report_type_is_not_a_report() -> None:
    assert read_xarf0("The Report-Type: field names the kind of abuse.") is None


def test_an_xarf_mail_gives_one_report_from_its_part() -> None:
    raw = mail(
        ("text/plain", "", "Hello, your customer 203.0.113.7 attacked us."),
        ("text/plain", "report.txt", PART),
        (
            "text/plain",
            "logfile.log",
            "May 14 07:58:01 sshd: Failed password for root from 203.0.113.7",
        ),
    )
    [report] = parse_abuse(raw)
    assert (report.category, report.confidence) == ("login-attack", 0.95)
    assert report.reason == "X-ARF Report-Type: login-attack"
    assert report.format == "xarf-0.2-email"
    assert report.ips == ["203.0.113.7"]
    assert report.count == 1
    assert (
        report.reported_at is not None
        and report.reported_at.isoformat() == "2024-05-14T07:58:01+00:00"
    )
    assert "Failed password" in report.excerpt
    assert report.extra["xarf_report_type"] == "login-attack"
    assert not report.needs_review


def test_distinct_parts_count_as_incidents_and_copies_do_not() -> None:
    second = PART.replace("42@", "43@").replace("203.0.113.7", "203.0.113.8")
    raw = mail(
        ("application/octet-stream", "arf_report1.txt", PART),
        ("application/octet-stream", "arf_report2.txt", second),
        ("application/octet-stream", "arf_report3.txt", PART),
    )
    [report] = parse_abuse(raw)
    assert report.count == 2
    assert report.ips == ["203.0.113.7", "203.0.113.8"]


def test_a_uri_source_takes_the_address_the_letter_states() -> None:
    part = (
        "---\nReported-From: takedown@brand.example\nCategory: fraud\nReport-Type: phishing\n"
        "Source-Type: uri\nSource: http://phish.example/login/\nDomain: phish.example\n"
        "Date: 2024-05-15T07:00:00+00:00\n"
    )
    letter = (
        "This e-mail is to notify you of a phishing attack:\n\nhttp://phish.example/login/\n\n"
        "You are the upstream provider for this website, located at IP address 192.0.2.77.\n"
        "A traceroute: 1 gw.example (198.51.100.1)  2 core.example (198.51.100.2)\n"
    )
    [report] = parse_abuse(mail(("text/plain", "", letter), ("text/plain", "report.txt", part)))
    assert report.category == "phishing"
    assert report.ips == ["192.0.2.77"]  # not the traceroute hops
    assert report.urls == ["http://phish.example/login/", "phish.example"]


def test_a_bare_report_part_is_a_report() -> None:
    [report] = parse_abuse(PART.encode(), "report.txt")
    assert report.format == "xarf-0.2"
    assert report.ips == ["203.0.113.7"]


V3 = {
    "Version": "3",
    "ReporterInfo": {"ReporterOrg": "Example CERT", "ReporterOrgEmail": "cert@example.org"},
    "Report": {
        "ReportClass": "Activity",
        "ReportType": "PortScan",
        "Date": "2024-05-16T11:00:01Z",
        "SourceIp": "203.0.113.44",
        "DestinationIp": "198.51.100.10",
        "Samples": [{"ContentType": "text/plain", "Base64Encoded": False,
                     "Description": "IDS", "Payload": "SYN 203.0.113.44 -> 198.51.100.10:22"}],
    },
}  # fmt: skip
V4 = {
    "xarf_version": "4.0.0",
    "timestamp": "2024-05-18T22:15:00Z",
    "reporter": {"org": "DDoS Defence", "contact": "soc@ddos-defence.example"},
    "source_identifier": "203.0.113.9",
    "category": "connection",
    "type": "ddos",
    "destination_ip": "198.51.100.5",
    "evidence": [{"content_type": "text/plain", "description": "flows",
                  "payload": "VURQIGZsb29kIDMgR2JpdC9z"}],
}  # fmt: skip


def test_json_v3() -> None:
    assert is_xarf_json(V3)
    report = report_from_json(V3)
    assert (report.category, report.format, report.reporter) == (
        "port-scan",
        "xarf-json-v3",
        "Example CERT",
    )
    assert report.ips == ["203.0.113.44"]  # never the destination
    assert "SYN" in report.excerpt


def test_json_v4() -> None:
    assert is_xarf_json(V4)
    report = report_from_json(V4)
    assert (report.category, report.format) == ("ddos", "xarf-json-v4")
    assert report.ips == ["203.0.113.9"]
    assert "UDP flood 3 Gbit/s" in report.excerpt  # the base64 evidence, decoded


def test_json_v4_with_a_domain_source_and_a_critical_type() -> None:
    doc = dict(V4, category="content", type="csam", source_identifier="bad.example",
               url="https://bad.example/x")  # fmt: skip
    report = report_from_json(doc)
    assert report.ips == []
    assert report.urls == ["https://bad.example/x", "bad.example"]
    assert report.category == "other" and report.severity == "high"


def test_json_in_a_mail_wins_over_its_arf_part() -> None:
    """Netcraft's MARF mails carry an ARF part and an X-ARF JSON attachment: the JSON is
    the more precise report."""
    arf = "Feedback-Type: xarf\nUser-Agent: Netcraft\nVersion: 1\nSource-IP: 10.9.9.9\n"
    raw = mail(
        ("text/plain", "", "A phishing site was found."),
        ("message/feedback-report", "", arf),
        ("application/json", "xarf.json", json.dumps(V3)),
    )
    [report] = parse_abuse(raw)
    assert report.format == "xarf-json-v3-email"
    assert report.ips == ["203.0.113.44"]


def test_report_from_xarf0_without_a_known_type_needs_review() -> None:
    fields = {"report-type": "mystery", "source": "203.0.113.1", "source-type": "ip-address"}
    report = report_from_xarf0([fields]).finish()
    assert report.category == "other"
    assert report.needs_review

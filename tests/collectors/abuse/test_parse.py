"""The entry point: sniffing what the bytes are, refusing what cannot be read, and the
shape of what comes out."""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile

import pytest

from checks.errors import ParseError
from collectors.abuse import REVIEW_THRESHOLD, AbuseReport, parse_abuse

ARF = b"""From: fbl@mailbox.example
To: abuse@provider.example
Subject: Email Feedback Report for IP 203.0.113.25
Date: Tue, 04 Jun 2024 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B"

--B
Content-Type: text/plain

This is an email abuse report for an email message received from IP 203.0.113.25.
--B
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Source-IP: 203.0.113.25
Arrival-Date: Tue, 04 Jun 2024 09:58:00 +0000
Reported-Domain: shop.example
--B
Content-Type: text/rfc822-headers

Received: from out.shop.example (out.shop.example [203.0.113.25]) by mx.mailbox.example
From: news@shop.example
Subject: Summer sale
--B--
"""


def test_an_arf_complaint() -> None:
    [report] = parse_abuse(ARF)
    assert (report.kind, report.category, report.format) == ("complaint", "spam", "arf")
    assert report.reason == "ARF Feedback-Type: abuse"
    assert report.ips == ["203.0.113.25"]
    assert report.urls == ["shop.example"]
    assert (
        report.reported_at is not None
        and report.reported_at.isoformat() == "2024-06-04T09:58:00+00:00"
    )
    assert report.reporter == "mailbox.example"
    assert "Summer sale" in report.excerpt


def test_to_json_has_every_field() -> None:
    [report] = parse_abuse(ARF)
    shown = report.to_json()
    assert set(shown) >= {
        "kind", "category", "confidence", "reason", "reporter", "format", "ips", "urls",
        "count", "reported_at", "incidents", "excerpt", "needs_review", "severity",
    }  # fmt: skip
    assert shown["reported_at"] == "2024-06-04T09:58:00+00:00"
    assert shown["severity"] == "medium"
    json.dumps(shown)  # JSON-ready as it is


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty input"),
        (b"   \n\n", "empty input"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary data"),
        (b'{"hello": "world"}', "neither an X-ARF report nor a threat indicator"),
        (b'{"broken": ', "not valid JSON"),
        (b"[" * 100_000, "nested too deeply|not valid JSON"),
        (b"<html><body>hi</body></html>", "neither an ACNS notice"),
        (b"PK\x03\x04 this is no zip", "not a readable zip archive"),
        (b"\x1f\x8b\x08\x00 truncated gzip", "cannot decompress"),
        (b"Dear friend,\nhow are you?\n", "no abuse report found"),
    ],
)
def test_unreadable_input_is_a_parse_error_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_abuse(raw, "upload")


def test_oversized_input_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("collectors.abuse.parse.MAX_INPUT_BYTES", 1000)
    with pytest.raises(ParseError, match="exceeds"):
        parse_abuse(ARF * 10)


def test_a_zip_bomb_stops_at_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("collectors.abuse.archive.MAX_EXPANDED_BYTES", 4 * 2**20)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "2024-06-01-scan_dns-x-y.csv", b"a,b,c\n" + (b"1,2," + b"3" * 2000 + b"\n") * 5_000
        )
    assert len(buffer.getvalue()) < 500_000
    started = time.perf_counter()
    with pytest.raises(ParseError, match="expands to more than 4 MB"):
        parse_abuse(buffer.getvalue(), "bomb.zip")
    assert time.perf_counter() - started < 5


def test_members_share_one_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("collectors.abuse.archive.MAX_EXPANDED_BYTES", 4 * 2**20)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in range(5):  # each under the budget, together over it
            rows = (b"1,2," + b"3" * 2000 + b"\n") * 1000
            archive.writestr(f"2024-06-01-scan_dns-{n}-y.csv", b"a,b,c\n" + rows)
    with pytest.raises(ParseError, match="expands to more than"):
        parse_abuse(buffer.getvalue(), "many.zip")


def test_a_gzip_bomb_of_one_endless_line_is_refused() -> None:
    bomb = gzip.compress(b"x" * (3 * 2**20))  # one 3 MB "line", 3 KB compressed
    with pytest.raises(ParseError, match="longer than"):
        parse_abuse(bomb, "feed.csv.gz")


def test_archives_inside_archives_stop_at_a_depth() -> None:
    data = b"timestamp,ip,port\n2024-06-01 00:00:00,203.0.113.1,53\n"
    for _ in range(6):
        data = gzip.compress(data)
    with pytest.raises(ParseError, match="nested more than"):
        parse_abuse(data, "deep.gz")


def test_a_zip_of_reports_gives_one_report_each() -> None:
    buffer = io.BytesIO()
    row = b"timestamp,ip,port\n2024-06-01 00:00:00,203.0.113.1,53\n"
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("2024-06-01-scan_dns-a-b.csv", row)
        archive.writestr("2024-06-01-botnet_drone-a-b.csv", row)
        archive.writestr("notes/", b"")
    reports = parse_abuse(buffer.getvalue(), "reports.zip")
    assert [r.category for r in reports] == ["open-service", "botnet"]


def nested_mail(depth: int) -> bytes:
    head = "From: a@b.example\nSubject: x\nMIME-Version: 1.0\n"
    parts = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(depth)
    )
    return (head + parts + "Content-Type: text/plain\n\nport scan from 203.0.113.9\n").encode()


def test_deep_mime_nesting_is_walked_to_a_depth() -> None:
    [report] = parse_abuse(nested_mail(30))  # read, although its text is below the walk
    assert isinstance(report, AbuseReport)


def test_mime_nesting_the_mail_parser_cannot_follow_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="too deeply"):
        parse_abuse(nested_mail(3000))


def test_a_forwarded_report_is_read_from_the_attachment() -> None:
    inner = ARF.decode()
    raw = (
        "From: colleague@provider.example\nTo: abuse@provider.example\nSubject: fyi\n"
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="OUTER"\n\n'
        "--OUTER\nContent-Type: text/plain\n\nsee below\n"
        f"--OUTER\nContent-Type: message/rfc822\n\n{inner}\n--OUTER--\n"
    ).encode()
    [report] = parse_abuse(raw)
    assert report.kind == "complaint"
    assert report.ips == ["203.0.113.25"]
    assert report.confidence >= REVIEW_THRESHOLD

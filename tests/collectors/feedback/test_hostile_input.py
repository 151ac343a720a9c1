"""Hostile input never crashes the feedback intake: each finding of the fuzzing campaign,
reproduced, and the limits of docs/reports.md ("Limits against hostile input") held.

The campaign's crashing inputs are read from ``../shared/repro`` (``$REPMON_REPRO``), never
copied into the project; those tests skip when the folder is absent.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import io
import json
import logging
import os
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from checks.errors import ConfigError, ParseError
from collectors.feedback import arf, dsn, limits, parse, tlsrpt
from collectors.feedback.attribution import SendingIpRules
from collectors.feedback.config import FeedbackConfig
from collectors.feedback.dmarc_aggregate import (
    extract_aggregate,
    parse_aggregate_bytes,
    parse_aggregate_xml,
)
from collectors.feedback.limits import ExtractionBudget
from collectors.feedback.model import Bounce, BouncedRecipient
from collectors.feedback.verp import MAX_ADDRESS_CHARS, compile_verp, verp_candidates
from tests.collectors.feedback.fuzzing import RULES, _Inventory

ROOT = Path(__file__).resolve().parents[3]
REPRO = Path(os.environ.get("REPMON_REPRO", ROOT.parent / "shared" / "repro"))


@pytest.fixture
def repro() -> Path:
    if not REPRO.is_dir():
        pytest.skip(f"the fuzzing campaign's inputs are not at {REPRO} (set REPMON_REPRO)")
    return REPRO


@pytest.fixture
def parser_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the dispatcher logged as a parser bug (an exception it had to catch)."""
    caplog.set_level(logging.ERROR, logger="repmon.feedback")
    return caplog.records


def _ingest(path: Path) -> list[tuple[str, object]]:
    """What ``repmon ingest`` does with a file, up to the store: each message's report
    (kind) or ParseError; any other exception escapes."""
    out: list[tuple[str, object]] = []
    for saved in parse.read_saved(path):
        try:
            report, _ = parse.parse_saved(saved)
        except ParseError as exc:
            out.append((saved.label, exc))
        else:
            out.append((saved.label, report.kind))
    return out


def _cpu(call: object) -> float:
    started = time.thread_time()
    assert callable(call)
    call()
    return time.thread_time() - started


# -- the three crashing inputs ---------------------------------------------------------------


def test_gzip_that_fails_in_the_sniffer_is_a_parse_error(
    repro: Path, parser_errors: list[logging.LogRecord]
) -> None:
    # zlib.error "invalid distance too far back" escaped the format sniffer's fallback
    raw = (repro / "gzip_sniff_crash.gz").read_bytes()
    assert parse.sniff(raw) == "dmarc-file"
    ((_, result),) = _ingest(repro / "gzip_sniff_crash.gz")
    assert isinstance(result, ParseError)
    assert "gzip" in str(result)
    assert not parser_errors


def test_date_with_a_huge_year_is_no_date(
    repro: Path, parser_errors: list[logging.LogRecord]
) -> None:
    # "Date: Feb  3 2014 02999999999999999999999999999999:13:35": OverflowError
    ((_, kind),) = _ingest(repro / "date_overflow.eml")
    assert kind == "other"
    date = "Feb  3 2014 02999999999999999999999999999999:13:35 +0100"
    assert arf.parse_date(date) is None
    assert dsn._date(date) is None
    assert arf.parse_date("Tue, 3 Feb 10000 12:13:35 +0000") is None
    assert arf.parse_date("Mon, 31 Dec 1969 23:59:59 +0000") is None
    assert arf.parse_date("Tue, 3 Mar 2026 10:00:00 +0000") is not None
    assert not parser_errors


def test_ingest_received_time_survives_a_huge_year(repro: Path) -> None:
    # fixed in monitor/cli/ingest.py (received_time catches OverflowError)
    from monitor.cli.ingest import received_time

    (saved,) = parse.read_saved(repro / "date_overflow.eml")
    _, msg = parse.parse_saved(saved)
    when = received_time(saved, msg)
    assert when <= dt.datetime.now(dt.UTC)


def test_zip_with_a_negative_seek_is_a_parse_error(
    repro: Path, parser_errors: list[logging.LogRecord]
) -> None:
    # the central directory's offset lies: ValueError "negative seek value"
    ((_, result),) = _ingest(repro / "zip_negative_seek.eml")
    assert isinstance(result, ParseError)
    assert "corrupt zip archive" in str(result)
    assert not parser_errors  # a clean refusal, not a parser bug caught and logged


# -- addresses nested past the stack -----------------------------------------------------------

#: comments nested 20,000 deep, then the address: the stdlib parser recursed once per level
DEEP = "(" * 20000 + ")" * 20000 + " fbl@provider.example"


def _complaint_with_from(sender: str) -> bytes:
    return f"""\
From: {sender}
To: abuse@sender.example
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b"

--b
Content-Type: text/plain

This is an abuse report.
--b
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: fbl/1.0
Version: 1
Original-Mail-From: {sender}
Source-IP: 192.0.2.1

--b
Content-Type: text/rfc822-headers

From: {sender}
Return-Path: {sender}
Subject: offer

--b--
""".encode()


def test_nested_comments_in_address_headers(parser_errors: list[logging.LogRecord]) -> None:
    report = parse.parse_message(_complaint_with_from(DEEP))
    assert report.kind == "complaint" and report.complaint is not None
    assert report.complaint.original_mail_from  # read, whatever is left of it
    assert limits.bare_address(DEEP) == "fbl@provider.example"
    assert limits.bare_addresses([DEEP, '"a (b" <x@y.example>']) == [
        "fbl@provider.example",
        "x@y.example",
    ]
    RULES.for_complaint(report.complaint, [DEEP])
    assert not parser_errors


def test_complaint_events_with_a_nested_from_header() -> None:
    from collectors.feedback.pipeline import build_events

    raw = _complaint_with_from(DEEP).replace(b"Original-Rcpt-To", b"X-Nothing")
    msg = parse.read_message(raw)
    report = parse.parse_email(msg)
    assert report.complaint is not None and not report.complaint.original_rcpt_to
    (event,) = build_events(report, RULES, msg)
    assert event.receiving_domain == "provider.example"


# -- numbers and dates -------------------------------------------------------------------------


def _aggregate(count: str, begin: str = "1711929600", end: str = "1712015999") -> bytes:
    return f"""<?xml version="1.0"?>
<feedback>
  <report_metadata><org_name>x</org_name><report_id>r1</report_id>
    <date_range><begin>{begin}</begin><end>{end}</end></date_range></report_metadata>
  <policy_published><domain>example.com</domain><p>none</p></policy_published>
  <record><row><source_ip>192.0.2.1</source_ip><count>{count}</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf>
    </policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers>
  </record>
</feedback>""".encode()


@pytest.mark.parametrize(
    "count",
    [
        "1e23",
        "99999999999999999999",
        "9223372036854775808",
        str(limits.MAX_COUNT + 1),
        "-1",
        "1_000",
        "+5",
        "0x10",
        "1.5",
        "\u0663",  # ARABIC-INDIC DIGIT THREE: int() takes it
        "9" * 5000,
        "NaN",
    ],
)
def test_dmarc_count_out_of_range_is_refused(count: str) -> None:
    with pytest.raises(ParseError, match="record 1: count"):
        parse_aggregate_xml(_aggregate(count))


def test_dmarc_count_limits() -> None:
    assert parse_aggregate_xml(_aggregate(str(limits.MAX_COUNT))).records[0].count == 10**12
    assert parse_aggregate_xml(_aggregate(" 0 ")).records[0].count == 0
    assert limits.MAX_COUNT < 2**63 - 1


@pytest.mark.parametrize("stamp", ["1e20", "-1", "nan", "inf", "253402300800", "x" * 100])
def test_dmarc_dates_out_of_range_are_unreadable(stamp: str) -> None:
    report = parse_aggregate_xml(_aggregate("1", begin=stamp, end=stamp))
    assert report.begin is None and report.end is None


def _tls(successful: object, failed: object = 0, **detail: object) -> bytes:
    doc = {
        "organization-name": "x",
        "report-id": "r",
        "date-range": {
            "start-datetime": "0001-01-01T00:00:00Z",
            "end-datetime": "2026-03-01T00:00:00Z",
        },
        "policies": [
            {
                "policy": {"policy-type": "sts", "policy-domain": "example.com"},
                "summary": {
                    "total-successful-session-count": successful,
                    "total-failure-session-count": failed,
                },
                "failure-details": [{"result-type": "x", "failed-session-count": 1, **detail}],
            }
        ],
    }
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "value", [99999999999999999999, 10**12 + 1, -1, 1e23, "1e23", True, [1], 2.0]
)
def test_tls_count_out_of_range_is_refused(value: object) -> None:
    with pytest.raises(ParseError, match="session count"):
        tlsrpt.parse_tls_report_bytes(_tls(value))


def test_tls_numbers_json_cannot_store() -> None:
    for text in (b'{"policies": [], "x": NaN}', b'{"policies": [], "x": 1e400}'):
        with pytest.raises(ParseError, match="not JSON"):
            tlsrpt.parse_tls_report_bytes(text)
    with pytest.raises(ParseError, match="nested too deeply"):
        tlsrpt.parse_tls_report_bytes(b'{"policies": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(ParseError, match="failed-session-count"):
        tlsrpt.parse_tls_report_bytes(_tls(1, 1, **{"failed-session-count": 10**13}))


def test_tls_report_keeps_only_sane_values() -> None:
    report = tlsrpt.parse_tls_report_bytes(
        _tls(5, 1, nested={"a": [1, 2]}, huge=10**15, text="kept")
    )
    assert report.begin is None  # year 1
    assert report.end == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    (detail,) = report.policies[0].failure_details
    assert detail == {"result-type": "x", "failed-session-count": 1, "text": "kept"}


# -- the VERP pattern ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        r"^bounce-(?P<ip>(a+)+)$",
        r"(?P<ip>(\w*-)*)@",
        r"(?P<ip>(?:\d+\.){3}\d+)",
        r"(?P<ip>(a{1,3})+)x",
    ],
)
def test_catastrophic_verp_pattern_is_a_config_error(pattern: str) -> None:
    from monitor.config import parse_config

    with pytest.raises(ConfigError, match="feedback.verp_pattern: .*exponential"):
        parse_config({"feedback": {"verp_pattern": pattern}})
    with pytest.raises(ConfigError, match="feedback.verp_pattern"):
        SendingIpRules(_Inventory(), FeedbackConfig.model_construct(verp_pattern=pattern))


def test_verp_pattern_too_slow_on_the_probes_is_refused() -> None:
    # no nested repeat, but an alternation the engine backtracks through exponentially
    with pytest.raises(ValueError, match="catastrophic backtracking"):
        compile_verp(r"^(?P<ip>(?:a|a)+)$")


@pytest.mark.parametrize(
    "pattern",
    [
        r"^bounce-(?P<ipx>[0-9a-f]{8}|[0-9a-f]{32})-",
        r"^b-(?P<ip>[0-9-]+)-",
        r"^b-(?P<ip>(?:[0-9]{1,3}[.-]){3}[0-9]{1,3})-",
        r"^b-(?P<ip>[0-9a-f]+)(?:[a-z]+-)*+@",
    ],
)
def test_usual_verp_patterns_pass(pattern: str) -> None:
    assert compile_verp(pattern).groupindex


def test_verp_pattern_is_applied_to_addresses_of_bounded_length() -> None:
    long = "bounce-c000020c-" + "a" * MAX_ADDRESS_CHARS + "@bounces.example.net"
    assert list(verp_candidates(["a@b.example", long])) == ["a@b.example"]
    assert RULES.from_verp([long]) is None
    found = RULES.from_verp(["bounce-c000020c-x@bounces.example.net"])
    assert found is not None and found.sending_ip == "192.0.2.12"


# -- the extraction budget ---------------------------------------------------------------------


def _message(parts: list[tuple[str, bytes]]) -> bytes:
    out = [
        b"From: reports@example.net\nSubject: Report\n"
        b'Content-Type: multipart/mixed; boundary="z"\n\n'
    ]
    for ctype, packed in parts:
        out.append(f"--z\nContent-Type: {ctype}\nContent-Transfer-Encoding: base64\n\n".encode())
        out.append(base64.encodebytes(packed))
    out.append(b"--z--\n")
    return b"".join(out)


def test_many_gzip_parts_end_in_the_extraction_budget(
    parser_errors: list[logging.LogRecord],
) -> None:
    # the finding: 360 gzip parts cost 14-16 s of CPU; each is 4 MiB of zeros here
    member = gzip.compress(b"\x00" * (4 * 1024 * 1024))
    raw = _message([("application/gzip", member)] * 360)
    result: list[object] = []

    def run() -> None:
        with pytest.raises(ParseError, match="report extraction budget exceeded") as err:
            parse.parse_message(raw)
        result.append(err.value)

    assert _cpu(run) < 2.0
    assert "bytes" in str(result[0]) or "parts" in str(result[0])
    assert not parser_errors


def test_too_many_report_parts_end_in_the_extraction_budget() -> None:
    member = gzip.compress(b'{"organization-name": "x"}')  # JSON: skipped by the DMARC search
    raw = _message([("application/gzip", member)] * (limits.MAX_EXTRACT_PARTS + 1))
    with pytest.raises(ParseError, match=f"more than {limits.MAX_EXTRACT_PARTS} archive"):
        extract_aggregate(parse.read_message(raw))


def test_each_part_is_inflated_once() -> None:
    report = (
        json.dumps({"organization-name": "x", "report-id": "r", "policies": []}).encode()
        + b" " * 100_000
    )
    # application/gzip: both the DMARC and the TLS extractor examine it
    msg = parse.read_message(_message([("application/gzip", gzip.compress(report))]))
    budget = ExtractionBudget()
    assert extract_aggregate(msg, budget) is None  # JSON: not a DMARC report
    assert budget.used == len(report) and budget.parts == 1
    data = tlsrpt.extract_tls_report(msg, budget)
    assert data == report
    assert budget.used == len(report) and budget.parts == 1  # not inflated a second time
    assert parse.parse_message(msg.as_bytes()).kind == "tls-report"


def test_extraction_budget_counts_cpu_and_bytes() -> None:
    packed = gzip.compress(b"<feedback>" + b" " * (1024 * 1024))
    with pytest.raises(ParseError, match="s of CPU"):
        parse_aggregate_bytes(packed, budget=ExtractionBudget(max_seconds=0.0))
    with pytest.raises(ParseError, match="bytes decompressed"):
        parse_aggregate_bytes(packed, budget=ExtractionBudget(max_bytes=1000))


def test_concatenated_tiny_gzip_members_are_bounded() -> None:
    raw = gzip.compress(b"<") * 200_000  # ~4 MB of members, each inflating to one byte

    def run() -> None:
        with pytest.raises(ParseError):
            parse_aggregate_bytes(raw)

    assert _cpu(run) < 2.0 + limits.MAX_EXTRACT_SECONDS


def test_lying_zip_sizes_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("report.xml", b" " * 1000)
    data = bytearray(buffer.getvalue())
    central = data.rfind(b"PK\x01\x02")
    data[central + 42 : central + 46] = b"\xff\xff\xff\x7f"  # local header far past the end
    with pytest.raises(ParseError, match="corrupt zip archive"):
        parse_aggregate_bytes(bytes(data))


# -- message shape -----------------------------------------------------------------------------


def test_mime_nested_deeper_than_the_limit_is_refused() -> None:
    inner = b"Content-Type: text/plain\n\nhello\n"
    for level in range(limits.MAX_MIME_DEPTH + 5):
        inner = b'Content-Type: multipart/mixed; boundary="n%d"\n\n--n%d\n%s\n--n%d--\n' % (
            level,
            level,
            inner,
            level,
        )
    with pytest.raises(ParseError, match="nested more than"):
        parse.parse_message(b"From: a@b.example\n" + inner)
    attached = b"From: a@b.example\n\nhi\n"
    for _ in range(3000):
        attached = b"Content-Type: message/rfc822\n\n" + attached
    with pytest.raises(ParseError, match="nested"):
        parse.parse_message(attached)


def test_deep_nesting_is_refused_while_parsing() -> None:
    # the long run's finding: 2 MB of parts nested 200 deep took 2.3 s in the stdlib parser
    # (every line is checked against the boundary of every open level)
    inner = b"Content-Type: text/plain\n\n" + b"failed line\n" * 100_000
    for level in range(200):
        inner = b'Content-Type: multipart/mixed; boundary="n%d"\n\n--n%d\n%s\n--n%d--\n' % (
            level,
            level,
            inner,
            level,
        )
    raw = b"From: MAILER-DAEMON@example.net\nSubject: Undelivered\n" + inner

    def run() -> None:
        with pytest.raises(ParseError, match="nested more than 40 deep"):
            parse.parse_message(raw)

    assert _cpu(run) < 1.0


def test_more_parts_than_the_limit_are_refused_early() -> None:
    parts = b"".join(b"--z\nContent-Type: text/plain\n\nx\n" for _ in range(20_000))
    raw = b'From: a@b.example\nContent-Type: multipart/mixed; boundary="z"\n\n' + parts + b"--z--\n"
    result: list[BaseException] = []

    def run() -> None:
        try:
            parse.parse_message(raw)
        except ParseError as exc:
            result.append(exc)

    assert _cpu(run) < 2.0
    assert "more than 5000 MIME parts" in str(result[0])


def test_content_type_with_a_huge_parameter_list_is_cheap() -> None:
    raw = (
        b"From: MAILER-DAEMON@example.net\nSubject: Undelivered\n"
        b"Content-Type: multipart/mixed;" + b" a=b;" * 200_000 + b' boundary="z"\n\nx\n'
    )
    assert _cpu(lambda: parse.parse_message(raw)) < 2.0


@pytest.mark.parametrize(
    "body",
    [
        " ".join(f"user{i}@example.com" for i in range(30_000)),  # one line, many addresses
        "".join(f"user{i}@example.com\n\n" for i in range(30_000)),  # a paragraph each
        "\n" * 500_000,  # flufl.bounce reads each line ~100 times
        "<" * 500_000,  # HTML tags that never close
    ],
)
def test_large_hostile_bounces_parse_in_bounded_time(body: str) -> None:
    ctype = "text/html" if body.startswith("<") else "text/plain"
    raw = (
        "From: MAILER-DAEMON@example.net\nSubject: Undelivered Mail Returned to Sender\n"
        f"Content-Type: {ctype}\n\nThis message could not be delivered.\n{body}"
    ).encode()
    assert _cpu(lambda: parse.parse_message(raw)) < 2.0


def test_long_lines_stay_away_from_flufl_bounce() -> None:
    # the long run's finding: flufl's "\\S+@\\S+" is quadratic in a line's length (2.3 s)
    raw = (
        "From: Mail Delivery System <mailer-daemon@example.net>\n"
        "Subject: Warning: message 1a2b delayed 24 hours\n\n"
        "This message was created automatically by mail delivery software.\n"
        "A message that you sent has not yet been delivered to one or more of its\n"
        "recipients after more than 24 hours on the queue on mx.example.net.\n\n"
        "  user@example.com\n"
        "    Delay reason: SMTP error from remote mail server after"
        + "<x>" * 5000
        + "</x>" * 5000
        + " MAIL FROM:<sender@example.org> SIZE=1024:\n"
    ).encode()
    assert _cpu(lambda: parse.parse_message(raw)) < 1.0


def test_a_bounce_keeps_at_most_the_recipient_limit() -> None:
    blocks = "".join(
        f"Final-Recipient: rfc822; u{i}@example.com\nAction: failed\nStatus: 5.1.1\n\n"
        for i in range(limits.MAX_BOUNCE_RECIPIENTS + 50)
    )
    raw = (
        "From: MAILER-DAEMON@example.net\nSubject: Undelivered\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nfailed\n"
        "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
        f"{blocks}--b--\n"
    ).encode()
    report = parse.parse_message(raw)
    assert report.bounce is not None
    assert len(report.bounce.recipients) == limits.MAX_BOUNCE_RECIPIENTS


def test_subject_of_many_encoded_words_is_cheap() -> None:
    raw = (
        "From: MAILER-DAEMON@example.net\nSubject: "
        + "=?utf-8?B?w6k=?= " * 50_000
        + "\n\nDelivery failed for a@b.example\n"
    ).encode()
    assert _cpu(lambda: parse.parse_message(raw)) < 2.0


def test_encoded_words_with_charset_names_python_cannot_use() -> None:
    # email.errors.CharsetError and HeaderParseError are not ValueErrors
    for subject in ("=?\u00ff?Q?Undelivered?=", "=?x\x00?Q?a?=", "=?utf-8?B?w6k?= failed"):
        raw = (
            f"From: MAILER-DAEMON@example.net\nSubject: {subject}\n\n"
            "Delivery to a@b.example failed: 550 5.1.1 user unknown\n"
        ).encode()
        assert parse.parse_message(raw).kind == "bounce"


def test_charset_names_python_cannot_use() -> None:
    for charset in ("utf-8\x00", "idna", "x-unknown", "base64"):
        raw = (
            "From: MAILER-DAEMON@example.net\nSubject: Undelivered Mail\n"
            f'Content-Type: text/plain; charset="{charset}"\n'
            "Content-Transfer-Encoding: 8bit\n\n"
            "Delivery to caf\u00e9@example.com failed: 550 5.1.1 user unknown\n"
        ).encode()
        assert parse.parse_message(raw).kind in ("bounce", "other")


def test_rfc2231_file_name_in_a_charset_python_cannot_use() -> None:
    report = gzip.compress(_aggregate("7"))
    for charset in ("utf-8\x00", "idna"):
        raw = (
            b"From: reports@example.net\nSubject: Report\n"
            b'Content-Type: multipart/mixed; boundary="z"\n\n--z\n'
            b"Content-Type: application/octet-stream\n"
            b"Content-Disposition: attachment; filename*=" + charset.encode() + b"''r.xml.gz\n"
            b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(report) + b"--z--\n"
        )
        found = parse.parse_message(raw)
        assert found.dmarc is not None and found.dmarc.records[0].count == 7


def test_xml_in_an_encoding_expat_does_not_read() -> None:
    text = '<?xml version="1.0" encoding="shift_jis"?>' + _aggregate("3").decode().split("?>", 1)[
        1
    ].replace("<org_name>x", "<org_name>\u65e5\u672c")
    report = parse_aggregate_xml(text.encode("shift_jis"))
    assert report.org_name == "\u65e5\u672c" and report.records[0].count == 3
    with pytest.raises(ParseError, match="not well-formed"):
        parse_aggregate_xml(b'<?xml version="1.0" encoding="UTF-Infinity"?><feedback>')


# -- files: mbox lines, sizes ----------------------------------------------------------------


def test_mbox_with_an_enormous_line_is_read_in_bounded_memory(tmp_path: Path) -> None:
    # the finding: one 300 MB line took 716 MB of memory; here 24 MiB against a 1 MiB limit
    mbox = tmp_path / "big.mbox"
    with mbox.open("wb") as fh:
        fh.write(b"From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\n")
        chunk = b"x" * (1024 * 1024)
        for _ in range(24):
            fh.write(chunk)
        fh.write(b"\n\nFrom c@d Mon Jan  1 00:00:00 2024\nSubject: two\n\nbody\n")
    tracemalloc.start()
    try:
        saved = list(parse.read_saved(mbox, max_bytes=1024 * 1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [s.label for s in saved] == [f"{mbox}#1", f"{mbox}#2"]
    assert saved[0].error is not None and "limit" in str(saved[0].error)
    assert saved[1].error is None and saved[1].raw.endswith(b"body\n")
    assert peak < 4 * 1024 * 1024


def test_mbox_long_lines_under_the_limit_are_kept_whole(tmp_path: Path) -> None:
    long = b"y" * (parse.READ_CHUNK * 3 + 17) + b" From not a separator\n"
    mbox = tmp_path / "m.mbox"
    mbox.write_bytes(
        b"From a@b x\nSubject: one\n\n"
        + long
        + b"\nFrom "
        + b"z" * (parse.READ_CHUNK * 2)  # an over-long separator line
        + b"\nSubject: two\n\nbody\n"
    )
    first, second = parse.read_saved(mbox)
    assert first.raw == b"Subject: one\n\n" + long
    assert second.raw == b"Subject: two\n\nbody\n"


def test_saved_file_that_grows_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(b"Subject: x\n\n" + b"a" * 5000)
    (saved,) = parse.read_saved(path, max_bytes=1024)
    assert saved.error is not None


# -- attribution on hostile bounces ------------------------------------------------------------


def test_attribution_of_hostile_recipients() -> None:
    bounce = Bounce(
        recipients=[
            BouncedRecipient(address="(" * 5000 + "x@y.example", diagnostic="[192.0.2.1]"),
            BouncedRecipient(address="b" * 100_000 + "@y.example"),
        ]
    )
    found = RULES.for_bounce(bounce, [DEEP, "bounce-c000020c-x@b.example"])
    assert [a.sending_ip for a in found] == ["192.0.2.12", "192.0.2.12"]

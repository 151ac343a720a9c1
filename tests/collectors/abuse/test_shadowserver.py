"""CSV feeds: Shadowserver reports (bare, zipped, mailed), AbuseHUB, limits and speed."""

from __future__ import annotations

import gzip
import io
import random
import time
import tracemalloc
import zipfile

import pytest

from checks.errors import ParseError
from collectors.abuse import parse_abuse
from collectors.abuse.model import MAX_INCIDENTS
from collectors.abuse.shadowserver import MAX_ROWS, feed_name, parse_csv

HEADER = '"timestamp","ip","protocol","port","hostname","tag","asn","geo","region","city"\n'
ROWS = (
    '"2024-05-01 00:05:10","203.0.113.10","udp",53,,"openresolver",64500,"NL","X","Y"\n'
    '"2024-05-01 00:05:11","203.0.113.11","udp",53,"ns.example","openresolver",64500,"NL","X","Y"\n'
    '"2024-05-01 00:05:12","203.0.113.10","udp",53,,"openresolver",64500,"NL","X","Y"\n'
)


def csv_bytes(rows: str = ROWS) -> bytes:
    return (HEADER + rows).encode()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def test_feed_names() -> None:
    assert feed_name("2024-05-01-scan_dns-nl-asn.csv") == "scan_dns"
    assert feed_name("reports/2019-01-16-scan_afp-sample-ip.csv.zip") == "scan_afp"
    assert feed_name("open-resolvers.csv") == "open-resolvers"
    assert feed_name("") == ""


def test_one_report_one_incident_per_row() -> None:
    [report] = parse_abuse(csv_bytes(), "2024-05-01-scan_dns-nl-asn.csv")
    assert (report.category, report.format, report.reporter) == (
        "open-service", "shadowserver-csv", "Shadowserver")  # fmt: skip
    assert report.count == 3  # rows, not distinct addresses
    assert report.ips == ["203.0.113.10", "203.0.113.11"]
    assert len(report.incidents) == 3
    assert report.incidents[1] == {
        "ip": "203.0.113.11", "time": "2024-05-01 00:05:11", "port": "53",
        "protocol": "udp", "type": "openresolver"}  # fmt: skip
    assert (
        report.reported_at is not None
        and report.reported_at.isoformat() == "2024-05-01T00:05:10+00:00"
    )
    assert report.extra["shadowserver_feed"] == "scan_dns"
    assert report.excerpt.startswith("timestamp,ip,")


def test_the_report_type_comes_from_the_name_then_the_subject_then_the_columns() -> None:
    named = parse_csv(io.BytesIO(csv_bytes()), "2024-05-01-botnet_drone-nl-asn.csv")
    assert named.category == "botnet"
    subject = parse_csv(io.BytesIO(csv_bytes()), "data.csv", "Shadowserver Accessible SSL Report")
    assert subject.category in ("vulnerable-service", "open-service")
    columns = (
        b'"timestamp","ip","port","ipmi_version"\n"2024-05-01 00:00:00","203.0.113.1",623,"2.0"\n'
    )
    by_columns = parse_csv(io.BytesIO(columns), "report.csv")
    assert by_columns.category == "open-service" and by_columns.confidence == 0.7


def test_a_csv_of_unknown_kind_needs_review() -> None:
    data = b"when,who,what\n2024-05-01,203.0.113.1,something\n"
    [report] = parse_abuse(data, "export.csv")
    assert (report.format, report.category) == ("csv", "other")
    assert report.needs_review


def test_a_headerless_csv_counts_every_line() -> None:
    data = (
        b'"2024-05-01 10:00:00","iframe exploit","a.example","http://x.example/p","203.0.113.5"\n'
        * 4
    )
    [report] = parse_abuse(data, "sinkhole-http-referer.csv")
    assert report.count == 4
    assert report.category == "malware"
    assert report.ips == ["203.0.113.5"]


def test_urls_come_from_absolute_url_columns_else_the_host_column() -> None:
    data = (
        b'"timestamp","ip","url","http_host"\n'
        b'"2024-05-01 00:00:00","203.0.113.1","wp/x.php","hacked.example"\n'
        b'"2024-05-01 00:00:01","203.0.113.2","http://spam.example/buy","spam.example"\n'
    )
    report = parse_csv(io.BytesIO(data), "compromised_website.csv")
    assert report.urls == ["hacked.example", "http://spam.example/buy"]


def test_an_empty_csv_is_a_report_of_nothing() -> None:
    report = parse_csv(io.BytesIO(b""), "2015-01-01-scan_mongodb-sample-asn.csv").finish()
    assert (report.count, report.ips, report.category) == (0, [], "open-service")
    assert not report.needs_review  # nothing reported is not something unclear


def test_a_zipped_csv_in_a_mail() -> None:
    attachment = zipped("2024-05-01-scan_ntp-nl-asn.csv", csv_bytes())
    import base64

    body = base64.encodebytes(attachment).decode()
    raw = (
        "From: autoreports@shadowserver.org\nTo: abuse@provider.example\n"
        "Subject: [NL] Shadowserver NL Accessible NTP Report: 2024-05-01\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="B"\n\n--B\nContent-Type: text/plain\n\n'
        "The report is attached.\n--B\nContent-Type: application/zip\n"
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="2024-05-01-scan_ntp-nl-asn.csv.zip"\n\n'
        f"{body}\n--B--\n"
    ).encode()
    [report] = parse_abuse(raw)
    assert report.format == "shadowserver-csv-zip-email"
    assert (report.category, report.count, report.reporter) == ("open-service", 3, "Shadowserver")
    assert report.subject.startswith("[NL] Shadowserver")


def test_a_gzipped_csv_file() -> None:
    [report] = parse_abuse(gzip.compress(csv_bytes()), "2024-05-01-scan_dns-nl-asn.csv.gz")
    assert report.count == 3


def test_abusehub_csv_wins_over_the_shadowserver_copy_beside_it() -> None:
    hub = (
        "reliable_notifier,report_type,infection_type,event_date,event_time,src_ip,src_port\n"
        '"The Shadowserver Foundation","Shadowserver Botnet Drone",zeroaccess,2024-05-02,01:45:59,'
        "203.0.113.20,2005\n"
    )
    copy = (
        '"timestamp","ip","infection","cc"\n'
        '"2024-05-02 01:45:59","203.0.113.20","zeroaccess","198.51.100.3"\n'
    )
    raw = (
        "From: reports@reports.abusehub.nl\nTo: abuse@provider.example\n"
        "Subject: [Abusehub] [203.0.113.20] [Shadowserver Botnet Drone] Incident Report\n"
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nAttached is an AbuseHubCsv file.\n"
        f'--B\nContent-Type: text/csv\nContent-Disposition: attachment; filename="hub.csv"\n\n{hub}'
        f'--B\nContent-Type: text/csv\nContent-Disposition: attachment; filename="ss.csv"\n\n{copy}'
        "--B--\n"
    ).encode()
    [report] = parse_abuse(raw)
    assert report.format == "abusehub-csv-email"
    assert (report.category, report.count, report.ips) == ("botnet", 1, ["203.0.113.20"])
    assert (
        report.reported_at is not None
        and report.reported_at.isoformat() == "2024-05-02T01:45:59+00:00"
    )


def test_malformed_csv_is_a_parse_error() -> None:
    data = HEADER.encode() + b'"2024-05-01 00:00:00","' + b"x" * 200_000 + b"\n"
    with pytest.raises(ParseError, match="malformed CSV"):
        parse_abuse(data, "2024-05-01-scan_dns-nl-asn.csv")


def test_rows_beyond_the_limit_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("collectors.abuse.shadowserver.MAX_ROWS", 10)
    with pytest.raises(ParseError, match="more than 10 rows"):
        parse_abuse(csv_bytes(ROWS * 5), "2024-05-01-scan_dns-nl-asn.csv")
    assert MAX_ROWS == 1_000_000


@pytest.fixture(scope="module")
def fifty_thousand() -> bytes:
    """A zipped 50,000-row open-resolver report, 6 MB of CSV."""
    rng = random.Random(20240501)
    lines = [HEADER.rstrip("\n")]
    for i in range(50_000):
        ip = ".".join(str(rng.randrange(1, 224 if n == 0 else 255)) for n in range(4))
        lines.append(
            f'"2024-05-01 {i % 24:02d}:{i % 60:02d}:00","{ip}","udp",53,"h{i}.example",'
            f'"openresolver",{64500 + i % 90},"NL","X","Y"'
        )
    return zipped("2024-05-01-scan_dns-nl-asn.csv", ("\n".join(lines) + "\n").encode())


def test_fifty_thousand_rows_parse_fast(fifty_thousand: bytes) -> None:
    data = fifty_thousand
    started = time.perf_counter()
    [report] = parse_abuse(data, "2024-05-01-scan_dns-nl-asn.csv.zip")
    elapsed = time.perf_counter() - started
    assert report.count == 50_000
    assert len(report.incidents) == MAX_INCIDENTS and report.truncated
    assert len(report.ips) > 45_000
    assert elapsed < 1.5, f"{elapsed:.2f}s"  # about 0.4 s on a laptop


def test_fifty_thousand_rows_stream_in_bounded_memory(fifty_thousand: bytes) -> None:
    data = fifty_thousand
    tracemalloc.start()
    try:
        parse_abuse(data, "2024-05-01-scan_dns-nl-asn.csv.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the 6 MB CSV streams out of the archive: what stays is the address list (~4 MB)
    assert peak < 16_000_000, f"{peak / 1e6:.1f} MB"

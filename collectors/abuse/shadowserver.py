"""CSV abuse feeds: Shadowserver reports, AbuseHUB's CSV, and CSVs of that shape.

A CSV is one report with one incident per row: ``count`` is the number of data rows,
``ips`` the distinct addresses of the row's *reported* column (``ip``, else ``src_ip`` ...;
never ``dst_ip``, ``cc`` or ``src`` of a spam-URL row, which are other parties), and
``incidents`` the first :data:`MAX_INCIDENTS` rows as small dicts.

The report type comes from the file name (``2015-01-01-scan_ntpmonitor-x-y.csv``, or a
wiki name such as ``open-resolvers.csv``), else from the e-mail subject, else from the
columns. Rows are streamed: memory stays bounded by MAX_INCIDENTS and MAX_IPS, not by
the file; more than :data:`MAX_ROWS` rows is refused.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import collectors.abuse.classify as classify
from checks.errors import ParseError
from collectors.abuse.extract import normal_ip, parse_when, redact
from collectors.abuse.model import MAX_INCIDENTS, AbuseReport

__all__ = ["MAX_ROWS", "feed_name", "looks_like_csv", "parse_csv"]

MAX_ROWS = 1_000_000
#: longest line; Shadowserver's widest reports have lines of a few kilobytes
_MAX_LINE = 1024 * 1024
_EXCERPT_ROWS = 3

_IP_COLUMNS = ("ip", "src_ip", "source_ip", "ip_address", "ip address", "c&c", "cc_ip")
_TIME_COLUMNS = ("timestamp", "event_time", "first_seen", "time", "date")
_PORT_COLUMNS = ("port", "src_port", "source_port")
_TYPE_COLUMNS = ("tag", "infection", "type", "category", "infection_type", "report_type")
#: column signatures of reports whose file name says nothing (checked in order)
_SIGNATURES: list[tuple[frozenset[str], str]] = [
    (frozenset({"reliable_notifier", "report_type"}), "abusehub"),
    (frozenset({"min_amplification", "dns_version"}), "dns_openresolver"),
    (frozenset({"handshake", "cipher_suite"}), "ssl_scan"),
    (frozenset({"infection", "cc"}), "botnet_drone"),
    (frozenset({"http_host", "tag", "detected_since"}), "compromised_website"),
    (frozenset({"ipmi_version"}), "scan_ipmi"),
    (frozenset({"sysdesc"}), "scan_snmp"),
    (frozenset({"mac_address", "workgroup"}), "scan_netbios"),
    (frozenset({"refid", "stratum"}), "scan_ntp"),
    (frozenset({"packets", "size", "port"}), "scan_ntpmonitor"),
    (frozenset({"search_target", "unique_service_name"}), "scan_ssdp"),
    (frozenset({"md5hash", "url", "user_agent"}), "cwsandbox_url"),
    (frozenset({"md5hash", "smtp_inet"}), "sandbox_smtp"),
    (frozenset({"md5hash", "inet"}), "sandbox_connection"),
    (frozenset({"md5hash", "url"}), "honeypot_url"),
    (frozenset({"c&c"}), "botnet"),
    (frozenset({"channel"}), "cc_ip"),
    (frozenset({"http_agent", "dst_ip"}), "sinkhole_http_drone"),
]
#: Shadowserver's own column set: a CSV with these is one of theirs even without a name
_SHADOWSERVER_COLUMNS = frozenset({"timestamp", "ip", "asn", "geo"})


def looks_like_csv(text: str) -> bool:
    """Whether the start of ``text`` is comma-separated rows of one width."""
    lines = [line for line in text[:8192].splitlines()[:6] if line.strip()]
    if not lines or lines[0].lstrip().startswith(("<", "{", "[")):
        return False
    widths = [len(next(csv.reader([line]), [])) for line in lines[:-1] or lines]
    return widths[0] >= 3 and all(w == widths[0] for w in widths)


def feed_name(filename: str) -> str:
    """The report name in a file name: ``2015-01-01-scan_ntp-sample-asn.csv.zip`` gives
    ``scan_ntp``, ``open-resolvers.csv`` gives ``open-resolvers``; "" for none."""
    stem = filename.replace("\\", "/").rsplit("/", 1)[-1].lower()
    stem = re.sub(r"(\.(csv|zip|gz|txt|eml))+$", "", stem)
    dated = re.match(r"\d{4}-\d\d-\d\d-(.+)$", stem)
    if dated:
        return dated.group(1).split("-")[0]
    return stem if re.fullmatch(r"[a-z][a-z0-9_.-]{2,60}", stem) else ""


@dataclass(slots=True)
class _Columns:
    """Where the fields of interest are in a row (-1: absent)."""

    ip: int = -1
    time: int = -1
    day: int = -1
    port: int = -1
    kind: int = -1
    url: int = -1
    host: int = -1
    protocol: int = -1

    @classmethod
    def of(cls, header: list[str]) -> _Columns:
        index = {name: i for i, name in reversed(list(enumerate(header)))}

        def first(names: tuple[str, ...]) -> int:
            return next((index[n] for n in names if n in index), -1)

        cols = cls(ip=first(_IP_COLUMNS), port=first(_PORT_COLUMNS), kind=first(_TYPE_COLUMNS))
        cols.time = first(_TIME_COLUMNS)
        if "date" in index and "time" in index:  # wiki reports split them
            cols.day, cols.time = index["date"], index["time"]
        elif "event_date" in index and "event_time" in index:
            cols.day, cols.time = index["event_date"], index["event_time"]
        cols.url = index.get("url", -1)
        cols.host = first(("http_host", "host"))
        cols.protocol = index.get("protocol", -1)
        return cols


def parse_csv(stream: IO[bytes], name: str = "", hint: str = "") -> AbuseReport:
    """One report from a CSV read as a stream. ``name`` is the file name, ``hint`` the
    subject of the mail that carried it. Raises ParseError on unreadable CSV."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    reader = csv.reader(_lines(text))
    try:
        first = next(reader, None)
        header = [_column(c) for c in first] if first else []
        has_header = first is not None and not _is_data(first)
        report = _start(header if has_header else [], name, hint)
        cols = _Columns.of(header) if has_header else _guess_columns(first or [])
        if report.format == "abusehub-csv":
            cols.kind = header.index("report_type")
        rows = _rows(reader, first if not has_header else None)
        _consume(report, rows, cols, header if has_header else [])
    except csv.Error as exc:
        raise ParseError(f"{name or 'CSV'}: malformed CSV: {exc}") from None
    return report


def _lines(text: io.TextIOWrapper) -> Iterator[str]:
    """The lines of ``text``, each read with a length limit (a 200 MB line must not be
    held whole), NUL bytes dropped (the csv module refuses them), blank lines counted
    against the row limit (256 MB of newlines must not cost minutes)."""
    for number in range(1, 2 * MAX_ROWS + 2):
        line = text.readline(_MAX_LINE + 1)
        if not line:
            return
        if len(line) > _MAX_LINE:
            raise ParseError(f"CSV line {number} is longer than {_MAX_LINE} characters")
        yield line.replace("\0", "") if "\0" in line else line
    raise ParseError(f"CSV has more than {2 * MAX_ROWS} lines")


def _column(name: str) -> str:
    return name.strip().strip("\"'\ufeff").strip().lower()


def _is_data(row: list[str]) -> bool:
    """A first row holding an address or a date is data: the file has no header."""
    return any(normal_ip(v) or re.match(r"\d{4}-\d\d-\d\d", v.strip()) for v in row)


def _guess_columns(row: list[str]) -> _Columns:
    cols = _Columns()
    for i, value in enumerate(row):
        if cols.ip < 0 and normal_ip(value):
            cols.ip = i
        if cols.time < 0 and re.match(r"\d{4}-\d\d-\d\d", value.strip()):
            cols.time = i
        if cols.url < 0 and "://" in value:
            cols.url = i
    return cols


def _rows(reader: Iterator[list[str]], first: list[str] | None) -> Iterator[list[str]]:
    if first is not None:
        yield first
    yield from reader


def _start(header: list[str], name: str, hint: str) -> AbuseReport:
    """The empty report with its category decided from name, subject or columns."""
    columns = frozenset(header)
    if {"reliable_notifier", "report_type"} <= columns:
        return AbuseReport(
            "other", 0.4, "AbuseHUB CSV", "abusehub-csv", reporter="AbuseHUB", count=0
        )
    feed = feed_name(name)
    verdict = classify.from_shadowserver(feed) if feed else None
    if verdict is None and hint:
        verdict = _from_subject(hint)
    signature = next((key for need, key in _SIGNATURES if need <= columns), "")
    if verdict is None and signature:
        found = classify.from_shadowserver(signature)
        if found is not None:
            verdict = classify.Verdict(
                found.category, 0.7, f"CSV columns of a Shadowserver {signature} report"
            )
    shadowserver = (
        bool(feed and verdict)
        or "shadowserver" in hint.lower()
        or columns.issuperset(_SHADOWSERVER_COLUMNS)
    )
    verdict = verdict or classify.Verdict("other", 0.3, "CSV report of an unknown type")
    report = AbuseReport(
        category=verdict.category,
        confidence=verdict.confidence,
        reason=verdict.reason,
        format="shadowserver-csv" if shadowserver else "csv",
        reporter="Shadowserver" if shadowserver else "",
        count=0,
    )
    if feed:
        report.extra["shadowserver_feed" if shadowserver else "feed"] = feed
    return report


def _from_subject(subject: str) -> classify.Verdict | None:
    """``[SAMPLE] Shadowserver scan_ntp Report: 2015-01-01`` or ``Shadowserver
    Accessible Apple Filing Protocol Report: ...`` to a verdict."""
    found = re.search(r"shadowserver\s+(.+?)\s+report\b", subject, re.I)
    return classify.from_shadowserver(found.group(1)) if found else None


def _consume(
    report: AbuseReport, rows: Iterator[list[str]], cols: _Columns, header: list[str]
) -> None:
    """Counts every row; keeps addresses, URLs and type tallies of every row, but builds
    incident dicts, parses times and copies excerpt lines only for the first rows.
    (This loop is the cost of a 50,000-row report: it stays free of per-row extras.)"""
    kinds: dict[str, int] = {}
    shown: list[str] = [",".join(header)] if header else []
    count = 0
    for row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        count += 1
        if count > MAX_ROWS:
            raise ParseError(f"CSV has more than {MAX_ROWS} rows")
        ip = _row_ips(report, row, cols.ip)
        if cols.url >= 0 or cols.host >= 0:
            _row_url(report, row, cols)
        kind = _cell(row, cols.kind)
        if kind and (kind in kinds or len(kinds) < 50):
            kinds[kind] = kinds.get(kind, 0) + 1
        if count <= MAX_INCIDENTS or report.reported_at is None:
            when = _cell(row, cols.time)
            if cols.day >= 0:
                when = f"{_cell(row, cols.day)} {when}".strip()
            if report.reported_at is None and when:
                report.reported_at = parse_when(when)
            if count <= MAX_INCIDENTS:
                report.add_incident(_incident(row, cols, ip, when))
        if count <= _EXCERPT_ROWS:
            shown.append(",".join(row))
    report.count = count
    report.truncated = report.truncated or count > MAX_INCIDENTS
    report.excerpt = redact("\n".join(shown))
    if kinds:
        report.extra["types"] = ", ".join(sorted(kinds, key=lambda k: -kinds[k])[:5])
    if report.format == "abusehub-csv":
        _abusehub_verdict(report, header, kinds)


def _row_ips(report: AbuseReport, row: list[str], col: int) -> str:
    """Adds the row's reported address(es); some wiki reports put two in one cell."""
    value = _cell(row, col)
    if not value:
        return ""
    if report.has_ip(value):  # the common case in big reports: seen, already normal
        return value
    first = ""
    for part in value.split() if " " in value else (value,):
        ip = normal_ip(part)
        if ip:
            report.add_ip(ip)
            first = first or ip
    return first


def _row_url(report: AbuseReport, row: list[str], cols: _Columns) -> None:
    url = _cell(row, cols.url)
    if "://" in url:
        report.add_url(url)
        return
    host = _cell(row, cols.host).lower()
    if host and not normal_ip(host) and "." in host:
        report.add_url(host)


def _incident(row: list[str], cols: _Columns, ip: str, when: str) -> dict[str, str]:
    return {
        "ip": ip,
        "time": when,
        "port": _cell(row, cols.port),
        "protocol": _cell(row, cols.protocol),
        "type": _cell(row, cols.kind),
        "url": _cell(row, cols.url) or _cell(row, cols.host),
    }


def _cell(row: list[str], index: int) -> str:
    return row[index].strip() if 0 <= index < len(row) else ""


def _abusehub_verdict(report: AbuseReport, header: list[str], kinds: dict[str, int]) -> None:
    """AbuseHUB forwards other parties' reports; ``report_type`` names the original."""
    named = max(kinds, key=lambda k: kinds[k]) if kinds else ""
    verdict = classify.from_shadowserver(named) if named else None
    if verdict is not None:
        report.category, report.confidence = verdict.category, 0.85
        report.reason = f"AbuseHUB report_type: {named}"
        report.extra["report_type"] = named
    if "reliable_notifier" in header and report.incidents:
        report.reporter = "AbuseHUB"

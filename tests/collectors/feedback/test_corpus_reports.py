"""Conformance of the complaint, DMARC and TLS report parsers on the third-party corpus.

Each folder's ``expected.json`` holds labels transcribed from the source projects'
own tests; ``MANIFEST.json`` says which files are samples. Every test prints a
table of agreement per source and label, then fails when a label falls under
its floor (:data:`FLOORS`). Labels are compared after normalising representation
only: feedback types and enum values case- and punctuation-insensitively
("AuthFailure" = "auth-failure"), addresses without angle brackets, IPs in
canonical form, reporter (org) names case-insensitively.

Labels that are wrong in our judgement are listed, with the reason, in
:data:`EXCLUDED` — the only place where a sample is treated specially.
"""

from __future__ import annotations

import email
import ipaddress
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from checks.errors import ParseError
from collectors.feedback.arf import parse_arf
from collectors.feedback.dmarc_aggregate import (
    extract_aggregate,
    parse_aggregate_bytes,
    parse_aggregate_xml,
)
from collectors.feedback.dmarc_failure import parse_dmarc_failure
from collectors.feedback.model import Complaint, DmarcAggregate, TlsReport
from collectors.feedback.tlsrpt import extract_tls_report, parse_tls_report_bytes

#: (folder/file, label) -> why the label is not used. Empty: no label disagrees with
#: what the format says, once representation is normalised.
EXCLUDED: dict[tuple[str, str], str] = {}

#: minimum agreement per (folder, label); other labels are measured and printed only
FLOORS: dict[tuple[str, str], float] = {
    ("arf", "feedback_type"): 1.0,
    ("arf", "source_ip"): 1.0,
    ("dmarc-failure", "recognised"): 1.0,
    ("dmarc-failure", "feedback_type"): 1.0,
    ("dmarc-failure", "source_ip"): 1.0,
    ("dmarc-aggregate", "parses"): 1.0,
    ("dmarc-aggregate", "parse_error"): 1.0,
    ("dmarc-aggregate", "records"): 1.0,
    ("dmarc-aggregate", "source_ips"): 1.0,
    ("dmarc-aggregate", "message_count"): 1.0,
    ("dmarc-aggregate", "record_rows"): 1.0,
    ("tls-rpt", "parses"): 1.0,
    ("tls-rpt", "organization_name"): 1.0,
    ("tls-rpt", "report_id"): 1.0,
    ("tls-rpt", "total_successful_session_count"): 1.0,
    ("tls-rpt", "total_failure_session_count"): 1.0,
}


@dataclass
class Tally:
    """Agreement counts per (source, label), and what disagreed."""

    folder: str
    counts: dict[tuple[str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    misses: list[str] = field(default_factory=list)

    def check(self, name: str, source: str, label: str, expected: Any, got: Any) -> None:
        if (name, label) in EXCLUDED:
            return
        agree = expected == got
        cell = self.counts[(source, label)]
        cell[0] += int(agree)
        cell[1] += 1
        if not agree:
            self.misses.append(f"{name}: {label} expected {expected!r}, got {got!r}")

    def rate(self, label: str) -> tuple[int, int]:
        cells = [c for (_, lab), c in self.counts.items() if lab == label]
        return sum(c[0] for c in cells), sum(c[1] for c in cells)

    def table(self) -> str:
        labels = sorted({lab for _, lab in self.counts})
        sources = sorted({src for src, _ in self.counts})
        lines = [f"\n== {self.folder}: agreement per source and label"]
        width = max(len(lab) for lab in labels) + 2
        lines.append(" " * width + "".join(f"{s[:22]:>24}" for s in sources) + f"{'all':>12}")
        for lab in labels:
            row = f"{lab:<{width}}"
            for src in sources:
                agree, total = self.counts.get((src, lab), [0, 0])
                row += f"{f'{agree}/{total}' if total else '-':>24}"
            agree, total = self.rate(lab)
            row += f"{f'{agree}/{total} {100 * agree / total:.0f}%':>12}"
            lines.append(row)
        lines.extend(f"  miss: {m}" for m in self.misses)
        return "\n".join(lines)

    def enforce(self) -> None:
        under = []
        for (folder, label), floor in FLOORS.items():
            if folder != self.folder:
                continue
            agree, total = self.rate(label)
            if total and agree / total < floor:
                under.append(f"{label}: {agree}/{total} < {floor:.0%}")
        assert not under, "under the floor: " + "; ".join(under) + "\n" + "\n".join(self.misses)


def _samples(folder: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    expected = json.loads((folder / "expected.json").read_text())
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    # samples and byte-identical copies of samples kept under their source's name
    samples = [
        m["file"]
        for m in manifest
        if m.get("role") == "sample" or str(m.get("role", "")).startswith("duplicate-of")
    ]
    return expected, [s for s in samples if (folder / s).is_file()]


def _report(tally: Tally, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(tally.table())
    tally.enforce()


def _message(path: Path) -> Message:
    return email.message_from_bytes(path.read_bytes())


def _kind(value: Any) -> str:
    """A feedback type / enum value without case or punctuation: AuthFailure = auth-failure."""
    return re.sub(r"[^a-z0-9]", "", str(value).lower())


def _ip(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(value).strip().strip("[]")))
    except ValueError:
        return str(value)


def _addr(value: Any) -> str:
    return str(value).strip().strip("<>").strip().lower()


def _source(labels: dict[str, Any], name: str) -> str:
    return str(labels.get("source") or name.split("/", 1)[0])


# -- complaints and failure reports -------------------------------------------------------------


def _compare_complaint(
    tally: Tally, name: str, source: str, labels: dict[str, Any], got: Complaint | None
) -> None:
    if "feedback_type" in labels:
        tally.check(
            name,
            source,
            "feedback_type",
            _kind(labels["feedback_type"]),
            _kind(got.feedback_type) if got else None,
        )
    if got is None:
        return
    if labels.get("source_ip"):
        tally.check(name, source, "source_ip", _ip(labels["source_ip"]), got.source_ip)
    if labels.get("original_mail_from"):
        tally.check(
            name,
            source,
            "original_mail_from",
            _addr(labels["original_mail_from"]),
            got.original_mail_from.lower(),
        )
    if labels.get("original_rcpt_to"):
        want = labels["original_rcpt_to"]
        want = [want] if isinstance(want, str) else want
        tally.check(
            name,
            source,
            "original_rcpt_to",
            [_addr(a) for a in want],
            [a.lower() for a in got.original_rcpt_to],
        )
    if labels.get("reported_domain"):
        tally.check(
            name,
            source,
            "reported_domain",
            [d.lower() for d in labels["reported_domain"]],
            got.reported_domain,
        )
    if labels.get("user_agent"):
        tally.check(name, source, "user_agent", labels["user_agent"], got.user_agent)
    if labels.get("auth_failure") and _kind(labels["auth_failure"]) != "unspecified":
        tally.check(
            name, source, "auth_failure", _kind(labels["auth_failure"]), _kind(got.auth_failure)
        )
    if isinstance(labels.get("arrival_date"), int):
        tally.check(
            name,
            source,
            "arrival_date",
            labels["arrival_date"],
            int(got.arrival_date.timestamp()) if got.arrival_date else None,
        )


def test_arf_conformance(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = corpus / "arf"
    expected, samples = _samples(folder)
    tally = Tally("arf")
    for name in samples:
        labels = expected.get(name, {})
        source = _source(labels, name)
        got = parse_arf(_message(folder / name))
        labelled = labels.get("report_type") == "feedback-report" or "feedback_type" in labels
        if labelled:
            tally.check(name, source, "recognised", True, got is not None)
            _compare_complaint(tally, name, source, labels, got)
        else:
            # no label: measured, to show how many unlabelled feedback-loop samples are read
            tally.check(name, source, "unlabelled_recognised", True, got is not None)
    _report(tally, capsys)


def test_dmarc_failure_conformance(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = corpus / "dmarc-failure"
    expected, samples = _samples(folder)
    tally = Tally("dmarc-failure")
    for name in samples:
        labels = expected.get(name, {})
        source = _source(labels, name)
        got = parse_dmarc_failure(_message(folder / name))
        if labels.get("report_type") in ("failure", "feedback-report", "forensic"):
            tally.check(name, source, "recognised", True, got is not None)
        _compare_complaint(tally, name, source, labels, got)
    _report(tally, capsys)


# -- DMARC aggregate ----------------------------------------------------------------------------


def _read_aggregate(path: Path, labels: dict[str, Any]) -> DmarcAggregate:
    if labels.get("container") == "email" or path.suffix.lower() == ".eml":
        xml = extract_aggregate(_message(path))
        if xml is None:
            raise ParseError("no aggregate report found in the message")
        return parse_aggregate_xml(xml)
    return parse_aggregate_bytes(path.read_bytes(), path.name)


def _expected_rows(folder: Path, labels: dict[str, Any]) -> list[tuple[str, int]] | None:
    """(source_ip, count) per record from a source's expected-output JSON, when it has them."""
    name = labels.get("expected_output_file")
    if not name or not (folder / name).is_file():
        return None
    doc = json.loads((folder / name).read_text())
    records = doc.get("record") if isinstance(doc, dict) else None
    if not isinstance(records, list):
        return None
    rows = []
    for rec in records:
        row = rec.get("row", rec) if isinstance(rec, dict) else {}
        rows.append((_ip(row.get("source_ip")), int(row.get("count", -1))))
    return rows


def test_dmarc_aggregate_conformance(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = corpus / "dmarc-aggregate"
    expected, samples = _samples(folder)
    tally = Tally("dmarc-aggregate")
    for name in samples:
        labels = expected.get(name, {})
        source = _source(labels, name)
        try:
            report: DmarcAggregate | None = _read_aggregate(folder / name, labels)
            error = ""
        except ParseError as exc:
            report, error = None, str(exc)
        if labels.get("parse_error"):
            # a deliberately broken sample: a clear ParseError, never a report
            tally.check(name, source, "parse_error", True, report is None and bool(error))
            continue
        if labels.get("report_type") == "aggregate" or "records" in labels:
            tally.check(name, source, "parses", True, error or True)
        elif report is None:
            tally.check(name, source, "unlabelled_parses", True, error)
            continue
        if report is None:
            continue
        if "records" in labels:
            tally.check(name, source, "records", labels["records"], len(report.records))
        if "source_ips" in labels:
            tally.check(
                name,
                source,
                "source_ips",
                sorted({_ip(i) for i in labels["source_ips"]}),
                sorted({r.source_ip for r in report.records}),
            )
        if "message_count" in labels:
            tally.check(
                name,
                source,
                "message_count",
                labels["message_count"],
                sum(r.count for r in report.records),
            )
        rows = _expected_rows(folder, labels)
        if rows is not None:
            tally.check(
                name, source, "record_rows", rows, [(r.source_ip, r.count) for r in report.records]
            )
        if labels.get("org_name"):  # a display name: case is not part of it
            tally.check(
                name, source, "org_name", labels["org_name"].lower(), report.org_name.lower()
            )
        for label, value in (
            ("report_id", report.report_id),
            ("policy_domain", report.policy_domain),
            ("xml_namespace", report.xml_namespace),
        ):
            if labels.get(label):
                tally.check(name, source, label, labels[label], value)
        if labels.get("policy_p"):
            tally.check(
                name,
                source,
                "policy_p",
                _kind(labels["policy_p"]),
                _kind(report.policy.get("p", "")),
            )
        for key in ("np", "testing", "discovery_method"):
            if labels.get(key):
                tally.check(name, source, key, _kind(labels[key]), _kind(report.policy.get(key)))
        evaluated = labels.get("policy_evaluated")
        if isinstance(evaluated, dict) and report.records:
            first = report.records[0]
            got = {"disposition": first.disposition, "dkim": first.dkim, "spf": first.spf}
            tally.check(
                name,
                source,
                "policy_evaluated",
                {k: _kind(v) for k, v in evaluated.items()},
                {k: _kind(got.get(k, "")) for k in evaluated},
            )
    _report(tally, capsys)


# -- TLS reports --------------------------------------------------------------------------------


def _read_tls(path: Path, labels: dict[str, Any]) -> TlsReport:
    if labels.get("container") == "email" or path.suffix.lower() == ".eml":
        data = extract_tls_report(_message(path))
        if data is None:
            raise ParseError("no TLS report found in the message")
        return parse_tls_report_bytes(data)
    return parse_tls_report_bytes(path.read_bytes())


def _tls_labels(folder: Path, labels: dict[str, Any]) -> dict[str, Any]:
    """The labels, completed from an expected-output file that is itself a TLS report."""
    name = labels.get("expected_output_file")
    if not name or not (folder / name).is_file():
        return labels
    try:
        reference = parse_tls_report_bytes((folder / name).read_bytes())
    except ParseError:
        return labels
    return {
        "organization_name": reference.organization_name,
        "report_id": reference.report_id,
        "policies": len(reference.policies),
        "total_successful_session_count": reference.successful,
        "total_failure_session_count": reference.failed,
        **labels,
    }


def test_tls_report_conformance(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = corpus / "tls-rpt"
    expected, samples = _samples(folder)
    tally = Tally("tls-rpt")
    for name in samples:
        labels = _tls_labels(folder, expected.get(name, {}))
        source = _source(labels, name)
        try:
            report: TlsReport | None = _read_tls(folder / name, labels)
            error = ""
        except ParseError as exc:
            report, error = None, str(exc)
        if labels.get("parse_error"):
            tally.check(name, source, "parse_error", True, report is None and bool(error))
            continue
        tally.check(name, source, "parses", True, error or True)
        if report is None:
            continue
        for label, value in (
            ("organization_name", report.organization_name),
            ("report_id", report.report_id),
            ("policies", len(report.policies)),
            ("policy_types", [p.policy_type for p in report.policies]),
            ("total_successful_session_count", report.successful),
            ("total_failure_session_count", report.failed),
        ):
            if label in labels and labels[label] is not None:
                tally.check(name, source, label, labels[label], value)
    _report(tally, capsys)

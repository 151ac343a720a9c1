"""Printing for people and programs: an aligned table that wraps (never hides the evidence),
JSON, or CSV; problems first, by severity, then by address in numeric order."""

from __future__ import annotations

import argparse
import csv
import ipaddress
import json
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import Any, TextIO

from checks.result import SEVERITIES, CheckResult

_MARK = {"ok": "ok", "problem": "PROBLEM", "unknown": "unknown"}
_STATUS_ORDER = {"problem": 0, "unknown": 1, "ok": 2}
FORMATS = ("table", "json", "csv")
#: the columns of a check result in CSV
RESULT_COLUMNS = (
    "target",
    "check",
    "source",
    "status",
    "severity",
    "detail",
    "reason",
    "delist",
    "error",
)


def add_format_option(parser: argparse.ArgumentParser) -> None:
    """``--format table|json|csv``, and ``--json`` kept as its short form."""
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )


def print_json(data: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    json.dump(data, out, indent=2, default=str)
    out.write("\n")


def print_csv(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], out: TextIO | None = None
) -> None:
    writer = csv.DictWriter(out or sys.stdout, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def table(rows: Sequence[Sequence[str]], headers: Sequence[str], out: TextIO | None = None) -> None:
    """An aligned table. On a terminal the last column wraps under itself at the terminal's
    width; nothing is ever cut (the listing reason and delist link stay whole)."""
    out = out or sys.stdout
    if not rows:
        return
    cols = len(headers)
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(cols - 1)]
    indent = sum(widths) + 2 * (cols - 1)
    width = shutil.get_terminal_size((160, 24)).columns
    room = max(30, width - indent)
    wrap = out.isatty()
    for r in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(r, widths, strict=False)]
        tail = str(r[-1])
        lines = _wrap(tail, room) if wrap and len(tail) > room else [tail]
        out.write("  ".join([*cells, lines[0]]).rstrip() + "\n")
        for more in lines[1:]:
            out.write(" " * indent + more + "\n")


def _wrap(text: str, room: int) -> list[str]:
    # URLs are never broken inside: a line may run long rather than split a link
    return textwrap.wrap(text, room, break_long_words=False, break_on_hyphens=False) or [""]


def severity_rank(severity: str | None) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def address_key(target: str) -> tuple[int, int, str]:
    """IPs in numeric order (IPv4 before IPv6), then domains alphabetically."""
    try:
        ip = ipaddress.ip_address(target)
    except ValueError:
        return (2, 0, target)
    return (ip.version // 6, int(ip), "")


def result_order(r: CheckResult) -> tuple[int, int, tuple[int, int, str], str, str]:
    """Problems first, by severity, then unknowns, then ok; within each by address."""
    return (
        _STATUS_ORDER.get(r.status, 3),
        severity_rank(r.severity),
        address_key(r.target),
        r.check,
        r.source,
    )


def print_results(
    results: Sequence[CheckResult], out: TextIO | None = None, problems_only: bool = False
) -> None:
    out = out or sys.stdout
    shown = sorted(results, key=result_order)
    if problems_only:
        shown = [r for r in shown if r.status == "problem"]
    rows = []
    for r in shown:
        if r.status == "problem":
            text = r.detail
            if r.severity:
                text = f"[{r.severity}] {text}"
            extra = [r.fields.get("reason"), r.fields.get("delist")]
            text += "".join(f" | {x}" for x in extra if x)
        elif r.status == "unknown":
            text = f"{r.detail}: {r.error}" if r.detail else str(r.error)
        else:
            text = r.detail
        rows.append((r.target, r.check, r.source or "-", _MARK[r.status], text))
    table(rows, ("TARGET", "CHECK", "SOURCE", "STATUS", "DETAIL"), out)
    counts = {s: sum(1 for r in results if r.status == s) for s in ("ok", "problem", "unknown")}
    out.write(
        f"\n{len(results)} results: {counts['ok']} ok, {counts['problem']} problem, "
        f"{counts['unknown']} unknown\n"
    )


def result_row(r: CheckResult) -> dict[str, Any]:
    """A check result as one flat row (CSV)."""
    return {
        "target": r.target,
        "check": r.check,
        "source": r.source,
        "status": r.status,
        "severity": r.severity,
        "detail": r.detail,
        "reason": r.fields.get("reason"),
        "delist": r.fields.get("delist"),
        "error": r.error,
    }

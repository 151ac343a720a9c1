"""Printing check results: an aligned table for people, JSON for programs."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from checks.result import CheckResult

_MARK = {"ok": "ok", "problem": "PROBLEM", "unknown": "unknown"}


def print_json(data: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    json.dump(data, out, indent=2, default=str)
    out.write("\n")


def table(rows: Sequence[Sequence[str]], headers: Sequence[str], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    """A plain aligned table; the last column is cut to the terminal width."""
    out = out or sys.stdout
    if not rows:
        return
    cols = len(headers)
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(cols - 1)]
    width = shutil.get_terminal_size((160, 24)).columns
    last = max(20, width - sum(widths) - 2 * (cols - 1))
    for r in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(r, widths, strict=False)]
        tail = str(r[-1])
        if len(tail) > last and out.isatty():
            tail = tail[: last - 1] + "…"
        out.write("  ".join([*cells, tail]).rstrip() + "\n")


def print_results(results: Sequence[CheckResult], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    rows = []
    for r in results:
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

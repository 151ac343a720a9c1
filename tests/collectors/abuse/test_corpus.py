"""Conformance of :func:`parse_abuse` on the labelled third-party abuse corpus.

``abuse/expected.json`` labels every sample (LABELS.md says how each label was decided).
The test parses every labelled file, compares the first report with the labels and prints
a per-field agreement table; it fails when a file raises, or when a floored field falls
under its floor (:data:`FLOORS`). Other fields are measured and printed only.

Comparisons normalise representation only: addresses in canonical form as sets, times as
instants, formats by family (``xarf-0.1-email`` and ``xarf-0.1-report-part`` are both
X-ARF), reporters by a shared distinctive word.

Where we disagree with a label the reason is in :data:`EXCEPTIONS`, the only place where a
sample is treated specially; excepted pairs are left out of the agreement.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from collectors.abuse import AbuseReport, parse_abuse
from collectors.abuse.extract import parse_when

FLOORS = {"category": 0.95, "ips": 0.90, "count": 0.90}

#: (file, field) -> why the label is not compared
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("abuseio/notifier-samples/webiron/Webiron_Example_3.eml", "urls"): (
        "the label keeps the publisher's anonymised 'http://[Site Host Removed For Privacy]"
        "/wp-login.php': a host with spaces in brackets is not a URL, so none is extracted"
    ),
}

_NOT_DISTINCTIVE = {"fbl", "the", "foundation", "com", "net", "org", "via", "for", "example"}


def _ips(values: list[str]) -> set[str]:
    return {str(ipaddress.ip_address(v)) for v in values}


def _family(fmt: str) -> str:
    head = re.split(r"[-+]", fmt.lower())[0]
    return "xarf" if head in ("marf", "xarf") else head


def _words(name: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]{3,}", name.lower())) - _NOT_DISTINCTIVE


#: field -> (label key, does the report agree with the label)
COMPARE: dict[str, tuple[str, Callable[[AbuseReport, Any], bool]]] = {
    "category": ("category", lambda r, want: r.category == want),
    "ips": ("ips", lambda r, want: _ips(r.ips) == _ips(want)),
    "count": ("count", lambda r, want: r.count == want),
    "urls": ("domains_or_urls", lambda r, want: set(r.urls) == set(want)),
    "reported_at": ("reported_at", lambda r, want: r.reported_at == parse_when(want)),
    "format": ("format", lambda r, want: _family(r.format) == _family(want)),
    "reporter": ("reporter", lambda r, want: bool(_words(r.reporter) & _words(want))),
}


@dataclass
class Tally:
    agree: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    misses: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    several: list[str] = field(default_factory=list)

    def count(self, name: str, ok: bool, note: str) -> None:
        self.total[name] = self.total.get(name, 0) + 1
        self.agree[name] = self.agree.get(name, 0) + ok
        if not ok:
            self.misses.setdefault(name, []).append(note)

    def share(self, name: str) -> float:
        return self.agree.get(name, 0) / self.total[name] if self.total.get(name) else 1.0

    def table(self, files: int) -> str:
        lines = [f"\nabuse corpus: {files} labelled files, {len(self.failures)} failed to parse"]
        lines.append(f"{'field':<12} {'agree':>7} {'of':>5} {'share':>7}  floor")
        for name in COMPARE:
            floor = f"{FLOORS[name]:.0%}" if name in FLOORS else "-"
            lines.append(
                f"{name:<12} {self.agree.get(name, 0):>7} {self.total.get(name, 0):>5} "
                f"{self.share(name):>7.1%}  {floor}"
            )
        for name in FLOORS:
            lines += [f"  {name} differs: {note}" for note in self.misses.get(name, [])[:15]]
        lines += [f"  excepted {f} {k}: {why}" for (f, k), why in EXCEPTIONS.items()]
        if self.several:
            lines.append(f"  files giving several reports: {', '.join(self.several)}")
        return "\n".join(lines)


def test_abuse_corpus_conformance(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = corpus / "abuse"
    if not (root / "expected.json").is_file():
        pytest.skip(f"no abuse corpus at {root}")
    expected: dict[str, dict[str, Any]] = json.loads((root / "expected.json").read_text("utf-8"))
    tally = Tally()
    for name, labels in sorted(expected.items()):
        try:
            reports = parse_abuse((root / name).read_bytes(), Path(name).name)
        except Exception as exc:  # the test's point: any exception is a failure
            tally.failures.append(f"{name}: {exc.__class__.__name__}: {exc}")
            continue
        if len(reports) > 1:
            tally.several.append(name)
        report = reports[0]
        for field_name, (key, agrees) in COMPARE.items():
            if key not in labels or (name, field_name) in EXCEPTIONS:
                continue
            want = labels[key]
            got = getattr(report, field_name)
            tally.count(field_name, agrees(report, want), f"{name}: {got!r} != {want!r}")
    with capsys.disabled():
        print(tally.table(len(expected)))
    assert not tally.failures, "files that did not parse:\n" + "\n".join(tally.failures)
    low = {k: f"{tally.share(k):.1%}" for k, floor in FLOORS.items() if tally.share(k) < floor}
    assert not low, f"fields under their floor: {low}"

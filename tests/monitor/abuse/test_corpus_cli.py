"""The abuse corpus through the command line: ``repmon ingest --dry-run --json`` over
``shared/corpus/abuse`` meets the floors of the parser's own conformance test (category
95 %, ips 90 %, count 90 %) and never crashes; the JSON carries every field it promises.

``--abuse`` reads every file as an abuse report (the corpus also holds feedback-loop ARF
complaints, which without it go to the feedback intake); without it, content sniffing
must still send every non-ARF sample to the abuse intake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collectors.abuse.extract import parse_when
from monitor.cli import main
from tests.collectors.abuse.test_corpus import EXCEPTIONS, FLOORS, _family, _ips

FIELDS = ("file", "kind", "category", "confidence", "reporter", "format", "ips", "urls",
          "count", "reported_at")  # fmt: skip


def _agrees(field: str, got: dict[str, Any], want: Any) -> bool:
    if field == "ips":
        return _ips(got["ips"]) == _ips(want)
    if field == "reported_at":
        return (parse_when(got["reported_at"]) if got["reported_at"] else None) == parse_when(want)
    if field == "format":
        return _family(got["format"]) == _family(want)
    if field == "urls":
        return set(got["urls"]) == set(want)
    return bool(got[field] == want)


LABEL_KEYS = {
    "category": "category",
    "ips": "ips",
    "count": "count",
    "urls": "domains_or_urls",
    "reported_at": "reported_at",
    "format": "format",
}


def _run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> list[dict[str, Any]]:
    code = main(["ingest", "--dry-run", "--json", "--config", str(config), *args])
    items = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    return items


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "repmon.toml"
    path.write_text(
        '[[inventory.pools]]\nname = "p"\ncustomer = "acme"\ncidrs = ["192.0.2.0/28"]\n'
    )
    return path


def test_abuse_corpus_through_the_cli(
    corpus: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = corpus / "abuse"
    if not (root / "expected.json").is_file():
        pytest.skip(f"no abuse corpus at {root}")
    expected: dict[str, dict[str, Any]] = json.loads((root / "expected.json").read_text("utf-8"))
    items = _run(capsys, config, "--abuse", str(root))
    first: dict[str, dict[str, Any]] = {}
    for item in items:
        name = str(Path(item["file"]).relative_to(root))
        first.setdefault(name, item)
    errors = [f"{n}: {i['error']}" for n, i in first.items() if "error" in i and n in expected]
    assert not errors, errors
    agree: dict[str, int] = {}
    total: dict[str, int] = {}
    for name, labels in expected.items():
        got = first[name]
        for field in FIELDS:
            assert field in got, (name, field)
        assert got["kind"] in ("abuse-report", "complaint")
        for field, key in LABEL_KEYS.items():
            if key not in labels or (name, field) in EXCEPTIONS:
                continue
            total[field] = total.get(field, 0) + 1
            agree[field] = agree.get(field, 0) + _agrees(field, got, labels[key])
    share = {f: agree.get(f, 0) / total[f] for f in total}
    with capsys.disabled():
        print(f"\nabuse corpus through repmon ingest --abuse: {len(expected)} files")
        for f in LABEL_KEYS:
            if f in total:
                print(f"  {f:<12} {agree.get(f, 0):>4} / {total[f]:<4} {share[f]:.1%}")
    low = {f: share[f] for f, floor in FLOORS.items() if share[f] < floor}
    assert not low, low


def test_sniffing_sends_every_non_arf_sample_to_the_abuse_intake(
    corpus: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = corpus / "abuse"
    if not (root / "expected.json").is_file():
        pytest.skip(f"no abuse corpus at {root}")
    expected: dict[str, dict[str, Any]] = json.loads((root / "expected.json").read_text("utf-8"))
    items = _run(capsys, config, str(root))
    first: dict[str, dict[str, Any]] = {}
    for item in items:
        first.setdefault(str(Path(item["file"]).relative_to(root)), item)
    to_feedback = sorted(n for n in expected if first[n].get("intake") != "abuse")
    arf = [n for n in to_feedback if first[n].get("kind") == "complaint"]
    others = sorted(set(to_feedback) - set(arf))
    category = sum(
        1
        for n, labels in expected.items()
        if first[n].get("intake") == "abuse" and first[n]["category"] == labels.get("category")
    )
    with capsys.disabled():
        print(
            f"\nabuse corpus through repmon ingest (sniffing): {len(expected) - len(to_feedback)}"
            f" of {len(expected)} to the abuse intake ({category} with the labelled category); "
            f"{len(arf)} ARF feedback-loop complaints to the feedback intake; others: {others}"
        )
    # what goes to feedback is an ARF complaint (a feedback loop), never an abuse report
    assert all(expected[n].get("format", "").startswith("arf") for n in arf), arf
    assert len(others) <= len(expected) * 0.02, others

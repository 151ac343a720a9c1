"""Hostile and broken input: seeded mutations of real reports (truncated, bytes flipped,
parts duplicated or cut, files spliced together) give reports or ParseError, never another
exception, and each within a time bound.

The corpus samples are the seeds when the corpus is present; a few messages written here
are always used, so the test runs in a clone without it. ``REPMON_FUZZ_CASES`` sets the
number of inputs (default 2500) and ``REPMON_FUZZ_SEED`` the seed.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import time
import zipfile
from pathlib import Path

import pytest

from checks.errors import ParseError
from collectors.abuse import parse_abuse
from tests.conftest import CORPUS

CASES = int(os.environ.get("REPMON_FUZZ_CASES", "2500"))
SEED = int(os.environ.get("REPMON_FUZZ_SEED", "20240601"))
#: seconds one input may take; typical inputs take a few milliseconds
TIME_BOUND = 2.0

_CSV = b'"timestamp","ip","port","tag"\n"2024-06-01 00:00:00","203.0.113.1",53,"dns"\n' * 3
_XARF = (
    b"From: a@reporter.example\nSubject: abuse report about 203.0.113.7\nMIME-Version: 1.0\n"
    b'Content-Type: multipart/mixed; boundary="B"\n\n--B\nContent-Type: text/plain\n\n'
    b"Source IP: 203.0.113.7\n--B\nContent-Type: text/plain; name=report.txt\n\n---\n"
    b"Report-Type: login-attack\nSource-Type: ip-address\nSource: 203.0.113.7\n--B--\n"
)


def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


BUILT_IN = [
    ("2024-06-01-scan_dns-a-b.csv", _CSV),
    ("2024-06-01-scan_dns-a-b.csv.zip", _zip("2024-06-01-scan_dns-a-b.csv", _CSV)),
    ("feed.csv.gz", gzip.compress(_CSV)),
    ("report.eml", _XARF),
    ("v4.json", b'{"xarf_version":"4.0.0","category":"connection","type":"ddos",'
                b'"source_identifier":"203.0.113.9","timestamp":"2024-06-01T00:00:00Z"}'),
]  # fmt: skip


def seeds(corpus_root: Path | None) -> list[tuple[str, bytes]]:
    found = list(BUILT_IN)
    if corpus_root is not None and corpus_root.is_dir():
        for path in sorted(corpus_root.rglob("*")):
            if path.is_file() and path.suffix != ".md" and path.name != "expected.json":
                found.append((path.name, path.read_bytes()))
    return found


def mutate(data: bytes, rng: random.Random, pool: list[tuple[str, bytes]]) -> bytes:
    size = len(data)
    choice = rng.randrange(7)
    if choice == 0 and size:  # truncate
        return data[: rng.randrange(size)]
    if choice == 1 and size:  # flip bytes
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 24)):
            flipped[rng.randrange(size)] = rng.randrange(256)
        return bytes(flipped)
    if choice == 2 and size:  # duplicate a part
        i, j = sorted(rng.randrange(size) for _ in range(2))
        return data[:j] + data[i:j] * rng.randint(2, 6) + data[j:]
    if choice == 3 and size:  # cut a part out
        i, j = sorted(rng.randrange(size) for _ in range(2))
        return data[:i] + data[j:]
    if choice == 4:  # splice another file in
        other = rng.choice(pool)[1]
        at = rng.randrange(size + 1)
        return data[:at] + other[: rng.randrange(len(other) + 1)] + data[at:]
    if choice == 5:  # line endings and case, which parsers often assume
        return data.replace(b"\n", b"\r\n") if rng.random() < 0.5 else data.upper()
    return _zip("member.csv", data) if rng.random() < 0.5 else gzip.compress(data)


@pytest.mark.slow
def test_mutated_reports_give_results_or_parse_errors() -> None:
    pool = seeds(_corpus_root())
    rng = random.Random(SEED)
    outcomes = {"reports": 0, "parse errors": 0}
    crashes: list[str] = []
    slow: list[str] = []
    for case in range(CASES):
        name, data = rng.choice(pool)
        for _ in range(rng.randint(1, 3)):
            data = mutate(data, rng, pool)
        started = time.perf_counter()
        try:
            reports = parse_abuse(data, name)
            assert reports, "parse_abuse returned no report and raised nothing"
            outcomes["reports"] += 1
        except ParseError as exc:
            outcomes["parse errors"] += 1
            if str(exc).startswith("internal error"):  # a bug caught by the last guard
                crashes.append(f"case {case} from {name}: {exc}")
        except Exception as exc:  # the point of the test
            crashes.append(f"case {case} from {name}: {exc.__class__.__name__}: {exc}")
        elapsed = time.perf_counter() - started
        if elapsed > TIME_BOUND:
            slow.append(f"case {case} from {name}: {elapsed:.2f}s")
    assert not crashes, f"{len(crashes)} inputs raised:\n" + "\n".join(crashes[:20])
    assert not slow, "inputs over the time bound:\n" + "\n".join(slow[:20])
    assert outcomes["reports"] > CASES // 4, outcomes  # mutations do not all break the input


def _corpus_root() -> Path | None:
    """The corpus seeds when present: the fixture would skip the test without them."""
    root = CORPUS / "abuse"
    return root if root.is_dir() else None


@pytest.mark.parametrize(("name", "data"), BUILT_IN)
def test_the_built_in_seeds_parse(name: str, data: bytes) -> None:
    assert parse_abuse(data, name)

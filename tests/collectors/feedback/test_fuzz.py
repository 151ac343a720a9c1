"""Fuzzing in CI: thousands of hostile variants of the corpus through every feedback parser.

A seeded, structure-aware mutator (``fuzzing.py`` beside this file) over the corpus in
``../shared/corpus`` (skipped when absent). Every input goes through the sink's entry point,
``repmon ingest``'s (sniff, parse_saved; every 25th input also saved as an mbox and read with
``parse_file``), attribution, and each parser the entry points may not reach. The test fails
on any exception other than ParseError / InputError (a parser bug the dispatcher caught and
logged counts too), and on any parser call over :data:`fuzzing.TIME_BOUND` seconds of CPU.

``REPMON_FUZZ_INPUTS`` and ``REPMON_FUZZ_SEED`` change the run; ``scripts/fuzz.py`` runs for
longer and keeps the inputs that crash. The run stops taking new inputs after
:data:`DEADLINE` seconds of wall time, so a busy machine runs fewer, never longer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.collectors.feedback import fuzzing

INPUTS = int(os.environ.get("REPMON_FUZZ_INPUTS", "3000"))
SEED = int(os.environ.get("REPMON_FUZZ_SEED", "20261130"))
#: wall-clock seconds after which no new input is started
DEADLINE = 45.0
#: every this many inputs, one is also read as an mbox file
MBOX_EVERY = 25


@pytest.mark.slow
def test_fuzz_every_parser(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds = fuzzing.load_corpus(corpus)
    if not seeds:
        pytest.skip(f"no samples under {corpus} ({', '.join(fuzzing.FOLDERS)})")
    mutator = fuzzing.Mutator(seeds, SEED)
    crashes: list[tuple[str, fuzzing.Crash]] = []
    slow: list[tuple[str, tuple[float, str]]] = []
    slowest = (0.0, "", "")
    done = 0
    started = time.monotonic()
    for description, data in mutator.inputs(INPUTS):
        if time.monotonic() - started > DEADLINE:
            break
        outcome = fuzzing.run_input(data, tmp_path if done % MBOX_EVERY == 0 else None)
        done += 1
        crashes.extend((description, crash) for crash in outcome.crashes)
        if outcome.over_time:
            slow.append((description, outcome.slowest))
        if outcome.slowest[0] > slowest[0]:
            slowest = (outcome.slowest[0], outcome.slowest[1], description)
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nfuzz: {done} inputs from {len(seeds)} samples in {elapsed:.1f} s "
            f"({done / elapsed:.0f}/s), seed {SEED}: {len(crashes)} crashes, {len(slow)} over "
            f"{fuzzing.TIME_BOUND:g} s; slowest {slowest[0]:.2f} s ({slowest[1]}: {slowest[2]})"
        )
    assert done >= min(INPUTS, 500), f"only {done} inputs in {DEADLINE:g} s"
    assert not crashes, "\n\n".join(
        f"{description}\n{crash.target}: {crash.error}\n{crash.trace}"
        for description, crash in crashes[:5]
    )
    assert not slow, "\n".join(f"{d}: {t:.2f} s in {name}" for d, (t, name) in slow[:10])


def test_corpus_samples_pass_unchanged(corpus: Path) -> None:
    """The harness itself: every sample as it is, no crash (a baseline for the mutants)."""
    seeds = fuzzing.load_corpus(corpus)
    if not seeds:
        pytest.skip(f"no samples under {corpus}")
    crashes = [
        (seed.name, crash) for seed in seeds for crash in fuzzing.run_input(seed.data).crashes
    ]
    assert not crashes, [(name, c.target, c.error) for name, c in crashes[:5]]


def test_mutator_is_reproducible() -> None:
    seeds = [fuzzing.Seed("a", b"From: a@b.example\nSubject: x\n\nbody 123\n")]
    first = list(fuzzing.Mutator(seeds, 7).inputs(50))
    assert first == list(fuzzing.Mutator(seeds, 7).inputs(50))
    assert first != list(fuzzing.Mutator(seeds, 8).inputs(50))

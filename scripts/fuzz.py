#!/usr/bin/env python3
"""Fuzz the feedback parsers for longer than CI does, and keep every input that crashes.

    .venv/bin/python scripts/fuzz.py --seconds 600 [--seed N] [--corpus DIR] [--out DIR]
    .venv/bin/python scripts/fuzz.py --replay FILE...

The same mutator and harness as ``tests/collectors/feedback/test_fuzz.py``
(``tests/collectors/feedback/fuzzing.py``): hostile variants of the corpus samples through
the sink's and ``repmon ingest``'s entry points, attribution and every parser. Prints the
inputs per second every ten seconds, and for each crash (an exception other than ParseError
/ InputError, or a parser bug the dispatcher caught and logged) or input over the time bound,
the file it saved the input to (in a new temporary directory unless ``--out``), with a
``.txt`` beside it naming the sample, the mutations, the parser and the traceback.
``--replay`` runs saved inputs again. Exit status: 0 nothing found, 1 something found.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
#: as in tests/conftest.py: the labelled corpus beside the repository
CORPUS = Path(os.environ.get("REPMON_CORPUS", ROOT.parent / "shared" / "corpus"))

from tests.collectors.feedback import fuzzing  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.replay:
        return _replay(args.replay)
    seeds = fuzzing.load_corpus(args.corpus)
    if not seeds:
        print(f"no samples under {args.corpus} ({', '.join(fuzzing.FOLDERS)})", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else int(time.time())
    out = args.out or Path(tempfile.mkdtemp(prefix="repmon-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"fuzz: {len(seeds)} samples, seed {seed}, {args.seconds:g} s; findings go to {out}")
    mutator = fuzzing.Mutator(seeds, seed)
    found = done = 0
    slowest = (0.0, "", "")  # CPU seconds, parser, input
    started = last = time.monotonic()
    with fuzzing.scratch_dir() as scratch:
        while time.monotonic() - started < args.seconds:
            description, data = mutator.next()
            outcome = fuzzing.run_input(data, Path(scratch) if done % 25 == 0 else None)
            done += 1
            if outcome.slowest[0] > slowest[0]:
                slowest = (*outcome.slowest, description)
            if outcome.crashes or outcome.over_time:
                found += 1
                _save(out / f"finding-{found:04d}", description, data, outcome)
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                _progress(done, last - started, found, slowest)
    _progress(done, time.monotonic() - started, found, slowest, "done: ")
    return 1 if found else 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="how long to run (default 60)")
    p.add_argument("--seed", type=int, help="the mutator's seed (default: the time, printed)")
    p.add_argument("--corpus", type=Path, default=CORPUS, help=f"default {CORPUS}")
    p.add_argument("--out", type=Path, help="where findings are saved (default: a temp dir)")
    p.add_argument("--replay", type=Path, nargs="+", metavar="FILE", help="run saved inputs")
    return p.parse_args(argv)


def _progress(
    done: int, elapsed: float, found: int, slowest: tuple[float, str, str], label: str = ""
) -> None:
    rate = done / elapsed if elapsed else 0.0
    print(
        f"  {label}{done} inputs in {elapsed:.0f} s ({rate:.0f} inputs/s), {found} findings, "
        f"slowest parser call {slowest[0]:.2f} s of CPU ({slowest[1]}: {slowest[2]})",
        flush=True,
    )


def _save(base: Path, description: str, data: bytes, outcome: fuzzing.Outcome) -> None:
    data_path = base.with_suffix(".bin")
    data_path.write_bytes(data)
    lines = [f"input: {description}", f"slowest: {outcome.slowest[0]:.2f} s ({outcome.slowest[1]})"]
    for crash in outcome.crashes:
        lines += ["", f"{crash.target}: {crash.error}", crash.trace]
    base.with_suffix(".txt").write_text("\n".join(lines), encoding="utf-8")
    what = (
        f"{outcome.crashes[0].target}: {outcome.crashes[0].error}"
        if outcome.crashes
        else f"{outcome.slowest[1]} took {outcome.slowest[0]:.2f} s"
    )
    print(f"FOUND {what}\n  input saved to {data_path} ({description})", flush=True)


def _replay(paths: list[Path]) -> int:
    found = 0
    for path in paths:
        outcome = fuzzing.run_input(path.read_bytes())
        state = "crash" if outcome.crashes else "slow" if outcome.over_time else "ok"
        found += state != "ok"
        print(f"{path}: {state}, slowest {outcome.slowest[0]:.2f} s ({outcome.slowest[1]})")
        for crash in outcome.crashes:
            print(f"  {crash.target}: {crash.error}\n{crash.trace}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

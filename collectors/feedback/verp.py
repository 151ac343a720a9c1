"""The ``[feedback] verp_pattern``: checked at config load so that it cannot stall the intake.

Python's regular expressions backtrack: a pattern such as ``(a+)+$`` takes time exponential
in the length of the text it fails on, and nothing can interrupt a match once it runs. So
the pattern is bounded twice:

1. **At config load** (:func:`compile_verp`), a pattern is refused when

   - it nests repeats so that matching can blow up: an unbounded repeat inside any repeat
     of more than one (``(a+)+``, ``(\\w*-)*``, ``(?:\\d+\\.){3}``), or a repeat of varying
     length inside an unbounded one (``(a{1,3})+``). Rewrite it with bounded inner repeats
     (``(?:[0-9]{1,3}[.-]){3}``), or make the outer repeat possessive (``(?:[a-z]+-)*+``)
     or atomic (``(?>…)``), which never backtrack into what they matched;
   - or it takes longer than :data:`PROBE_SECONDS` on worst-case probes: for the pattern's
     own literal characters and a few usual ones, a run of :data:`MAX_ADDRESS_CHARS` of the
     character followed by one that breaks the match. The probes run in a child process
     that is killed at the time limit (a match cannot be stopped in-process).

2. **At run time** (:func:`verp_candidates`) the pattern is applied only to addresses of
   at most :data:`MAX_ADDRESS_CHARS` characters (RFC 5321's limit for a path): a longer
   value is not an address our MTA wrote, and the probes measured exactly that length.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["MAX_ADDRESS_CHARS", "PROBE_SECONDS", "compile_verp", "verp_candidates"]

#: the longest value the pattern is ever applied to (RFC 5321: 256 octets a path, <> included)
MAX_ADDRESS_CHARS = 254
#: the time the worst-case probes may take together, in the child process
PROBE_SECONDS = 1.0
#: starting a Python child on a busy machine, not counted in the probes' time
_START_SECONDS = 5.0
#: characters every probe set has besides the pattern's own literals
_USUAL = "a0f-.=_@+:x "

_PROBE_SCRIPT = """
import json, re, sys, time
pattern, chars, length = json.loads(sys.stdin.read())
compiled = re.compile(pattern, re.IGNORECASE)
print("ready", flush=True)
for c in chars:
    for tail in ("\\x00", "!", "@", ""):
        compiled.search(c * length + tail)
        compiled.search("bounce-" + c * (length - 8) + tail)
print("done", flush=True)
"""


def compile_verp(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled case-insensitively, once checked it cannot stall the intake.

    Raises ValueError saying why: not a regular expression, no named group ``ip`` or
    ``ipx``, a nested repeat that can backtrack exponentially, or worst-case probes over
    :data:`PROBE_SECONDS`. Checked once per pattern and process (the answer is kept).
    """
    return _checked(pattern)


@functools.lru_cache(maxsize=32)
def _checked(pattern: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    if not {"ip", "ipx"} & set(compiled.groupindex):
        raise ValueError("needs a named group (?P<ip>...) or (?P<ipx>...)")
    nested = _nested_repeat(pattern)
    if nested:
        raise ValueError(
            f"{nested} can take exponential time on a hostile address; rewrite it with "
            "bounded inner repeats, or make the outer repeat possessive ('*+', '++') or "
            "atomic ('(?>...)')"
        )
    _probe(pattern)
    return compiled


def verp_candidates(addresses: Iterable[str]) -> Iterator[str]:
    """The values the VERP pattern may be applied to: at most :data:`MAX_ADDRESS_CHARS`."""
    return (a for a in addresses if len(a) <= MAX_ADDRESS_CHARS)


# -- the static check --------------------------------------------------------------------------


def _nested_repeat(pattern: str) -> str:
    """The first backtracking repeat nested in another so that matching can blow up: an
    unbounded repeat inside any repeat of more than one, or a repeat of varying length
    inside an unbounded one. "" when there is none (or the parser is not available)."""
    try:  # private modules: looked up at run time, so that their absence is no failure
        c: Any = importlib.import_module("re._constants")
        _parser: Any = importlib.import_module("re._parser")
    except ImportError:  # a future Python without the private parser: the probe remains
        return ""
    try:
        tree = _parser.parse(pattern, re.IGNORECASE)
    except Exception:
        return ""
    backtracking = {c.MAX_REPEAT, c.MIN_REPEAT}
    # (items, inside a repeat of more than one, inside an unbounded repeat)
    stack: list[tuple[Any, bool, bool]] = [(tree, False, False)]
    while stack:
        items, in_many, in_unbounded = stack.pop()
        for op, av in items:
            if op in backtracking:
                low, high, body = av
                unbounded = high == c.MAXREPEAT
                if (unbounded and in_many) or (high != low and in_unbounded):
                    shown = "{%d,%s}" % (low, "" if unbounded else high)  # noqa: UP031
                    return f"a repeat {shown} inside another repeat"
                stack.append((body, in_many or high > 1, in_unbounded or unbounded))
            elif op == c.POSSESSIVE_REPEAT:
                stack.append((av[2], False, False))  # never backtracks into what it matched
            elif op == c.ATOMIC_GROUP:
                stack.append((av, False, False))
            elif op == c.SUBPATTERN:
                stack.append((av[3], in_many, in_unbounded))
            elif op == c.BRANCH:
                stack.extend((branch, in_many, in_unbounded) for branch in av[1])
            elif op in (c.ASSERT, c.ASSERT_NOT):
                stack.append((av[1], in_many, in_unbounded))
            elif op == c.GROUPREF_EXISTS:
                stack.extend((part, in_many, in_unbounded) for part in av[1:] if part)
    return ""


# -- the probe ------------------------------------------------------------------------------


def _literals(pattern: str) -> str:
    """The characters the pattern names literally (up to 16), then the usual ones."""
    special = "\\()[]{}?*+|^$"
    own = dict.fromkeys(ch.lower() for ch in pattern if ch.isprintable() and ch not in special)
    chars = list(own)[:16]
    return "".join(chars) + "".join(ch for ch in _USUAL if ch not in chars)


def _probe(pattern: str) -> None:
    """Run the worst-case probes in a child; ValueError when they take too long. Skipped
    when no child can be started (the static check and the length bound still hold)."""
    if not sys.executable:
        return
    request = json.dumps([pattern, _literals(pattern), MAX_ADDRESS_CHARS]).encode()
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _PROBE_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(request)
        child.stdin.close()
        out = bytearray()
        fd = child.stdout.fileno()
        # "ready": started and compiled (a busy machine may be slow to start a child)
        if not _read_until(fd, out, b"ready", _START_SECONDS):
            return
        if _read_until(fd, out, b"done", PROBE_SECONDS) is False:
            raise ValueError(
                f"takes more than {PROBE_SECONDS:g} s on a {MAX_ADDRESS_CHARS}-character "
                "address (catastrophic backtracking); simplify the pattern"
            )
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def _read_until(fd: int, out: bytearray, word: bytes, seconds: float) -> bool | None:
    """Read the child's output into ``out`` until it holds ``word``: True; False when
    ``seconds`` pass first; None when the child ends first."""
    deadline = time.monotonic() + seconds
    while word not in out:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return False
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        out += chunk
    return True

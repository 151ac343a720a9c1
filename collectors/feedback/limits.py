"""The limits that keep hostile input from crashing or stalling the feedback parsers.

Every number a parser hands on is range-checked here, every date is kept to years the store
and the rules can use, address headers are read without the standard library's recursion,
and the work of unpacking the reports attached to one message is held to one budget.
docs/reports.md ("Limits against hostile input") lists every limit with its default.

- :func:`count`: a message or session count as an ``int`` in ``0 ..`` :data:`MAX_COUNT`;
  anything else (``"1e23"``, ``99999999999999999999``, ``-1``, ``true``) is a
  :class:`ParseError` before it can reach the store.
- :func:`bounded_date`: a datetime from year :data:`MIN_YEAR` to :data:`MAX_YEAR`, else None
  (the parsers' documented "unreadable date").
- :func:`bare_address` / :func:`bare_addresses`: ``email.utils.parseaddr`` /
  ``getaddresses`` without their recursion into nested comments (a header of ten thousand
  ``(`` raised ``RecursionError``).
- :class:`ExtractionBudget`: what one message may cost to search for reports: decompressed
  bytes, archive parts unpacked, CPU seconds. Unpacked parts are remembered, so that the
  DMARC and the TLS report extractors inflate each part once.
- The bounce parsers' work is bounded by the size of what they read, not only by the size
  of the message: :data:`MAX_REPORT_TEXT_CHARS`, :data:`MAX_BOUNCE_RECIPIENTS`,
  :data:`MAX_DIAGNOSTIC_CHARS`, :data:`MAX_FLUFL_LINES`, :data:`MAX_FLUFL_CHARS`,
  :data:`MAX_PARAM_HEADER_CHARS`, :data:`MAX_MIME_PARTS`, :data:`MAX_MIME_DEPTH`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import time
from collections.abc import Callable, Iterable

from checks.errors import ParseError

__all__ = [
    "MAX_ADDRESS_HEADER_CHARS",
    "MAX_BOUNCE_RECIPIENTS",
    "MAX_COUNT",
    "MAX_DIAGNOSTIC_CHARS",
    "MAX_EXTRACT_BYTES",
    "MAX_EXTRACT_PARTS",
    "MAX_EXTRACT_SECONDS",
    "MAX_FLUFL_CHARS",
    "MAX_FLUFL_LINE_COST",
    "MAX_FLUFL_LINES",
    "MAX_MIME_DEPTH",
    "MAX_MIME_PARTS",
    "MAX_PARAM_HEADER_CHARS",
    "MAX_REPORT_TEXT_CHARS",
    "MAX_SUBJECT_CHARS",
    "MAX_YEAR",
    "MIN_YEAR",
    "ExtractionBudget",
    "bare_address",
    "bare_addresses",
    "bounded_date",
    "count",
    "epoch_date",
]

#: the largest count one record or policy may report: far above any real day's mail from
#: one IP, far below what a signed 64-bit column holds (so sums over many rows still fit)
MAX_COUNT = 10**12
#: dates outside these years are read as "unreadable" (None)
MIN_YEAR = 1970
MAX_YEAR = 9999
#: MIME parts (multipart or attached messages) nested deeper than this are not feedback
MAX_MIME_DEPTH = 40
#: a message of more MIME parts than this is not feedback (the corpus's largest has 17)
MAX_MIME_PARTS = 5000
#: parameters of a Content-Type or Content-Disposition are read from this many characters
MAX_PARAM_HEADER_CHARS = 16 * 1024
#: an address header longer than this is read only up to here (attribution is best effort)
MAX_ADDRESS_HEADER_CHARS = 64 * 1024
#: a Subject is decoded (RFC 2047) from this many characters: the standard library's decoder
#: takes quadratic time in the number of encoded words
MAX_SUBJECT_CHARS = 8 * 1024

#: decompressed bytes all the parts of one message may yield while reports are looked for
MAX_EXTRACT_BYTES = 48 * 1024 * 1024
#: archive or report parts (gzip, zip, XML, JSON) one message may have unpacked
MAX_EXTRACT_PARTS = 16
#: CPU seconds (of the thread doing it) the search for reports in one message may take
MAX_EXTRACT_SECONDS = 2.0

#: the human-readable report of a non-standard bounce is read up to here (real ones are a
#: few kilobytes; what follows is the returned message)
MAX_REPORT_TEXT_CHARS = 256 * 1024
#: recipients kept of one bounce (the first ones; a bounce lists one or a few)
MAX_BOUNCE_RECIPIENTS = 1000
#: a recipient's diagnostic is kept (and classified) up to here
MAX_DIAGNOSTIC_CHARS = 1000
#: flufl.bounce reads every line of a message ~100 times over, and some of its patterns
#: (``\S+@\S+``) take time quadratic in a line's length: a message of more lines, more
#: characters, or a larger sum over its lines of (line length)² than these is read by
#: repmon's own text parser alone (the corpus's largest bounce: 1.4e7)
MAX_FLUFL_LINES = 20_000
MAX_FLUFL_CHARS = 1024 * 1024
MAX_FLUFL_LINE_COST = 20_000_000

_DIGITS = re.compile(r"[0-9]{1,20}")


def count(value: object, what: str) -> int:
    """``value`` as a count from 0 to :data:`MAX_COUNT`; ParseError naming ``what`` otherwise.

    Accepts an ``int`` (not a ``bool``) or a string of ASCII digits (surrounding white space
    allowed). Refused: signs, exponents, fractions, ``_`` separators, non-ASCII digits, and
    numbers over the limit. ``what`` names the field in the message ("record 3: count").
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ParseError(f"{what} {_shown(value)} is not an integer")
    if isinstance(value, str):
        text = value.strip()
        if not _DIGITS.fullmatch(text):
            if text[:1] == "-" and _DIGITS.fullmatch(text[1:]):
                raise ParseError(f"{what} is negative: {_shown(value)}")
            raise ParseError(f"{what} {_shown(value)} is not an integer")
        number = int(text)
    else:
        number = value
    if number < 0:
        raise ParseError(f"{what} is negative: {_shown(value)}")
    if number > MAX_COUNT:
        raise ParseError(f"{what} {_shown(value)} is out of range (at most {MAX_COUNT})")
    return number


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def bounded_date(when: dt.datetime | None) -> dt.datetime | None:
    """``when`` when its year is :data:`MIN_YEAR` .. :data:`MAX_YEAR` in UTC, else None."""
    if when is None:
        return None
    try:
        year = when.astimezone(dt.UTC).year if when.tzinfo is not None else when.year
    except (OverflowError, ValueError):  # an offset that pushes it past year 1 or 9999
        return None
    return when if MIN_YEAR <= year <= MAX_YEAR else None


#: epoch seconds of the first and the last instant :func:`bounded_date` keeps
_FIRST_EPOCH = dt.datetime(MIN_YEAR, 1, 1, tzinfo=dt.UTC).timestamp()
_LAST_EPOCH = dt.datetime(MAX_YEAR, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp()


def epoch_date(text: str) -> dt.datetime | None:
    """An aware UTC datetime from epoch seconds written as text; None when absent, not a
    number (``nan``, ``inf``) or outside the years :data:`MIN_YEAR` .. :data:`MAX_YEAR`."""
    if not text or len(text) > 40:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return None
    if not _FIRST_EPOCH <= seconds <= _LAST_EPOCH:  # also False for nan
        return None
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


# -- addresses ---------------------------------------------------------------------------------


def bare_address(value: str) -> str:
    """``email.utils.parseaddr(value)[1]``, safe on hostile headers ("" when none)."""
    return email.utils.parseaddr(_uncommented(value))[1]


def bare_addresses(values: Iterable[str]) -> list[str]:
    """The addresses of ``email.utils.getaddresses(values)``, safe on hostile headers."""
    return [addr for _, addr in email.utils.getaddresses([_uncommented(v) for v in values])]


def _uncommented(value: str) -> str:
    """``value`` cut to :data:`MAX_ADDRESS_HEADER_CHARS` with its (nested) comments removed.

    The standard library reads a comment inside a comment by calling itself, so deeply
    nested parentheses raise ``RecursionError``. Comments never carry the address, so they
    are dropped here, in one pass and without recursion, quoted strings kept as they are.
    """
    value = value[:MAX_ADDRESS_HEADER_CHARS]
    if "(" not in value:
        return value
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for ch in value:
        if escaped:
            escaped = False
            if not depth:
                out.append(ch)
        elif ch == "\\":
            escaped = True
            if not depth:
                out.append(ch)
        elif quoted:
            out.append(ch)
            quoted = ch != '"'
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if not depth:
                out.append(" ")
        elif not depth:
            out.append(ch)
            quoted = ch == '"'
    return "".join(out)


# -- the extraction budget -----------------------------------------------------------------


class ExtractionBudget:
    """What searching one message for reports may cost; a :class:`ParseError` past it.

    ``charge(n)`` is called for every step of decompression and counts its bytes against
    ``max_bytes`` (all parts together) and the thread's CPU time since the budget was made
    against ``max_seconds``; ``unpacked(key, unpack)`` counts a part against ``max_parts``
    and remembers its content (or its error), so that a second extractor asking for the
    same part gets it without inflating it again. One budget serves one message.
    """

    __slots__ = ("_cpu_start", "_done", "max_bytes", "max_parts", "max_seconds", "parts", "used")

    def __init__(
        self,
        max_bytes: int = MAX_EXTRACT_BYTES,
        max_parts: int = MAX_EXTRACT_PARTS,
        max_seconds: float = MAX_EXTRACT_SECONDS,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_parts = max_parts
        self.max_seconds = max_seconds
        self.used = 0
        self.parts = 0
        self._cpu_start = time.thread_time()
        #: id of a part -> (the part, kept alive so its id is not reused; what it gave)
        self._done: dict[int, tuple[object, bytes | ParseError]] = {}

    def charge(self, size: int) -> None:
        """Count ``size`` more decompressed bytes; ParseError past the bytes or CPU limit."""
        self.used += size
        if self.used > self.max_bytes:
            raise ParseError(
                f"report extraction budget exceeded: more than {self.max_bytes} bytes "
                f"decompressed from one message"
            )
        spent = time.thread_time() - self._cpu_start
        if spent > self.max_seconds:
            raise ParseError(
                f"report extraction budget exceeded: more than {self.max_seconds:g} s of CPU "
                f"for one message"
            )

    def unpacked(self, key: object, unpack: Callable[[], bytes]) -> bytes:
        """``unpack()``, done once per ``key`` (a MIME part): later calls get the same bytes,
        or the same ParseError. Raises ParseError when more than ``max_parts`` parts would
        be unpacked."""
        done: bytes | ParseError
        slot = id(key)
        if slot in self._done:
            done = self._done[slot][1]
        else:
            self.parts += 1
            if self.parts > self.max_parts:
                raise ParseError(
                    f"report extraction budget exceeded: more than {self.max_parts} "
                    f"archive or report parts in one message"
                )
            try:
                done = unpack()
            except ParseError as exc:
                done = exc
            self._done[slot] = (key, done)
            self.charge(0)  # the CPU limit, also for parts that decompress nothing
        if isinstance(done, ParseError):
            raise done
        return done

"""A seeded, structure-aware fuzzer for the feedback parsers (no dependency beyond the stdlib).

:class:`Mutator` turns the samples of the third-party corpus (bounces, ARF, DMARC aggregate and
failure reports, TLS reports) into hostile variants: truncated, bytes flipped, inserted and
deleted; MIME parts duplicated, nested and their boundaries swapped; gzip and zip members
corrupted, re-packed with lying sizes or replaced by bombs; numbers made huge; comments,
quotes, XML, JSON and MIME nested deeply; charsets and transfer encodings made odd; dates
pushed past year 9999; lines made very long. The same seed gives the same inputs.

:func:`run_input` hands one input to every parser and to the two entry points (the sink's
``parse_message`` and ``repmon ingest``'s ``sniff`` + ``parse_saved``), with the results fed
on to attribution. Allowed outcomes: a result, or :class:`ParseError` / :class:`InputError`.
Anything else is a crash, and so is a parser bug that the dispatcher caught and logged (its
``ParseError`` says "(parser error)"). Each call's CPU time is measured against a bound.

Used by ``tests/collectors/feedback/test_fuzz.py`` (a fixed number of inputs in CI) and by
``scripts/fuzz.py`` (a longer run that saves every crashing input).
"""

from __future__ import annotations

import base64
import functools
import gzip
import io
import itertools
import logging
import random
import re
import tempfile
import time
import traceback
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

from checks.errors import InputError
from collectors.feedback import bounce_text, dmarc_aggregate, dsn, parse, tlsrpt
from collectors.feedback.attribution import SendingIpRules
from collectors.feedback.config import FeedbackConfig
from collectors.feedback.model import Report
from collectors.targets import Owner

#: the corpus folders fuzzed (abuse reports are not feedback)
FOLDERS = ("bounces", "arf", "dmarc-aggregate", "dmarc-failure", "tls-rpt")
#: CPU seconds one parser call may take on one input
TIME_BOUND = 2.0
#: mutants are kept under this size, so that a run measures parsers, not copying
MAX_INPUT_BYTES = 2 * 1024 * 1024


# -- the corpus ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seed:
    name: str
    data: bytes


def load_corpus(root: Path) -> list[Seed]:
    """Every sample file under the fuzzed folders, in name order (labels and manifests out)."""
    seeds = []
    for folder in FOLDERS:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if not path.is_file() or path.name.lower() in ("expected.json", "manifest.json"):
                continue
            if path.suffix.lower() == ".md" or path.name.startswith("reference-"):
                continue
            data = path.read_bytes()
            if data and len(data) <= MAX_INPUT_BYTES:
                seeds.append(Seed(str(path.relative_to(root)), data))
    return seeds


# -- the mutator -----------------------------------------------------------------------------

_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^";\r\n]+)"?', re.I)
_CHARSET = re.compile(rb'charset\s*=\s*"?([^";\s]+)"?', re.I)
_CTE = re.compile(rb"(Content-Transfer-Encoding:[ \t]*)(\S+)", re.I)
_DIGITS = re.compile(rb"\d+")
_BASE64_BLOCK = re.compile(rb"(?:^[A-Za-z0-9+/]{16,}={0,2}\r?\n){2,}", re.M)
_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:", re.M)

HUGE_NUMBERS = (
    b"99999999999999999999",
    b"1e23",
    b"-1",
    b"NaN",
    b"Infinity",
    b"1e400",
    b"0x10",
    b"1_000",
    "\u0663".encode(),
    b"9" * 5000,
    b"-0",
    b"1.5",
    b"18446744073709551616",
    b"9223372036854775808",
    b"1000000000001",
)
CHARSETS = (
    b"utf-7",
    b"x-unknown",
    b"utf-16",
    b"utf-32",
    b"iso-2022-jp",
    b"cp1252",
    b"",
    b"unicode-1-1-utf-7",
    b"base64",
    b"utf-8\x00",
    b"latin-1",
    b"x" * 300,
)
ENCODINGS = (b"base64", b"quoted-printable", b"x-uuencode", b"uuencode", b"8bit", b"garbage", b"")
DATES = (
    b"Date: Feb  3 2014 02999999999999999999999999999999:13:35 +0100",
    b"Date: Tue, 3 Feb 99999999999 12:13:35 +0100",
    b"Date: Tue, 3 Feb 10000 12:13:35 +9999",
    b"Date: Tue, 3 Feb 0001 00:00:00 -2359",
    b"Arrival-Date: Mon, 31 Dec 9999 23:59:59 -2359",
    b"Date: 1e400",
)


class Mutator:
    """Hostile variants of the corpus samples, reproducible from ``seed``."""

    def __init__(self, seeds: list[Seed], seed: int) -> None:
        if not seeds:
            raise ValueError("no corpus samples to mutate")
        self.seeds = seeds
        self.rng = random.Random(seed)
        # weights: the costly ones (a bomb inflates 20 MiB for every parser) rarely
        self.mutations: list[tuple[str, Callable[[bytes], bytes], int]] = [
            ("truncate", self.truncate, 6),
            ("flip", self.flip, 8),
            ("insert", self.insert, 6),
            ("delete", self.delete, 4),
            ("duplicate-part", self.duplicate_part, 6),
            ("nest-mime", self.nest_mime, 4),
            ("swap-boundary", self.swap_boundary, 4),
            ("archive", self.archive, 10),
            ("bomb", self.bomb, 1),
            ("many-archives", self.many_archives, 1),
            ("huge-number", self.huge_number, 8),
            ("deep-nesting", self.deep_nesting, 6),
            ("charset", self.charset, 6),
            ("date", self.date, 4),
            ("long-line", self.long_line, 2),
            ("splice", self.splice, 4),
            ("line-endings", self.line_endings, 2),
        ]
        self._weights = [w for _, _, w in self.mutations]

    def inputs(self, count: int) -> Iterator[tuple[str, bytes]]:
        """``count`` inputs: (a description naming the sample and mutations, the bytes)."""
        for _ in range(count):
            yield self.next()

    def next(self) -> tuple[str, bytes]:
        seed = self.rng.choice(self.seeds)
        data = seed.data
        names = []
        for _ in range(self.rng.choice((1, 1, 1, 2, 2, 3))):
            name, mutate, _ = self.rng.choices(self.mutations, self._weights)[0]
            data = mutate(data)[:MAX_INPUT_BYTES]
            names.append(name)
        return f"{seed.name} [{', '.join(names)}]", data

    # -- bytes -----------------------------------------------------------------------

    def _at(self, data: bytes) -> int:
        return self.rng.randrange(len(data) + 1)

    def truncate(self, data: bytes) -> bytes:
        return data[: self._at(data)]

    def flip(self, data: bytes) -> bytes:
        if not data:
            return b"\x00"
        out = bytearray(data)
        for _ in range(self.rng.randint(1, 8)):
            i = self.rng.randrange(len(out))
            out[i] ^= 1 << self.rng.randrange(8)
        return bytes(out)

    def insert(self, data: bytes) -> bytes:
        choices = (
            bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 16))),
            b"\r\n\r\n",
            b"\x00" * 64,
            b"=?x-bad?B?" + base64.b64encode(b"\xff\xfe") + b"?=",
            b"=?utf-8?Q?=FF=FE?=",
            b"\n--\n",
            b"<feedback>",
            b'{"policies": [',
            b"\xef\xbb\xbf",
            b"\x1f\x8b\x08\x00",
            b"PK\x03\x04",
        )
        at = self._at(data)
        return data[:at] + self.rng.choice(choices) + data[at:]

    def delete(self, data: bytes) -> bytes:
        at = self._at(data)
        return data[:at] + data[at + self.rng.randint(1, 256) :]

    def splice(self, data: bytes) -> bytes:
        other = self.rng.choice(self.seeds).data
        return data[: self._at(data)] + other[self._at(other) :]

    def line_endings(self, data: bytes) -> bytes:
        return self.rng.choice(
            (
                data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"),
                data.replace(b"\r\n", b"\n").replace(b"\n", b"\r"),
                data.replace(b"\r\n", b"\n"),
            )
        )

    # -- MIME structure ------------------------------------------------------------------

    def _boundaries(self, data: bytes) -> list[bytes]:
        return [b.strip() for b in _BOUNDARY.findall(data) if b.strip()]

    def duplicate_part(self, data: bytes) -> bytes:
        boundaries = self._boundaries(data)
        if not boundaries:
            return self.flip(data)
        marker = b"--" + self.rng.choice(boundaries)
        starts = [m.start() for m in re.finditer(re.escape(marker), data)]
        if len(starts) < 2:
            return self.insert(data)
        i = self.rng.randrange(len(starts) - 1)
        part = data[starts[i] : starts[i + 1]]
        times = self.rng.choice((1, 2, 10, 100))
        return data[: starts[i + 1]] + part * times + data[starts[i + 1] :]

    def nest_mime(self, data: bytes) -> bytes:
        depth = self.rng.choice((2, 10, 45, 200))
        rfc822 = self.rng.random() < 0.5
        head, sep, body = data.partition(b"\n\n")
        inner = data if sep else b"\n" + data
        for level in range(depth):
            if rfc822:
                inner = b"Content-Type: message/rfc822\n\n" + inner
            else:
                b = b"nest%d" % level
                inner = (
                    b'Content-Type: multipart/mixed; boundary="'
                    + b
                    + b'"\n\n--'
                    + b
                    + b"\n"
                    + inner
                    + b"\n--"
                    + b
                    + b"--\n"
                )
        return b"From: MAILER-DAEMON@example.net\nSubject: Undelivered Mail\n" + inner

    def swap_boundary(self, data: bytes) -> bytes:
        boundaries = self._boundaries(data)
        if not boundaries:
            return self.truncate(data)
        old = self.rng.choice(boundaries)
        new = self.rng.choice((b"x", old[:-1], old + b"x", b"", b"-" * 70, old * 3))
        if self.rng.random() < 0.5:  # in the body only: the header no longer matches
            head, sep, body = data.partition(b"\n\n")
            return head + sep + body.replace(old, new)
        return data.replace(old, new, 1)

    # -- archives ------------------------------------------------------------------------

    def _payloads(self, data: bytes) -> list[tuple[int, int]]:
        return [m.span() for m in _BASE64_BLOCK.finditer(data)]

    def archive(self, data: bytes) -> bytes:
        """Damage or re-pack an archive: the file itself, or a base64 part of a message."""
        if data[:2] == b"\x1f\x8b" or data[:2] == b"PK":
            return self._mutate_archive(data)
        spans = self._payloads(data)
        if not spans:
            return self.huge_number(data)
        start, end = self.rng.choice(spans)
        try:
            raw = base64.b64decode(re.sub(rb"\s+", b"", data[start:end]), validate=False)
        except ValueError:
            return self.flip(data)
        packed = self._mutate_archive(raw)
        return data[:start] + _base64_lines(packed) + data[end:]

    def _mutate_archive(self, raw: bytes) -> bytes:
        content = _unpacked(raw)
        choice = self.rng.randrange(6)
        if choice == 0:  # damaged compressed bytes
            return self.flip(raw[:12] + self.flip(raw[12:])) if len(raw) > 12 else self.flip(raw)
        if choice == 1:
            return raw[: self._at(raw)]
        if choice == 2:  # the content mutated, packed again
            return _pack(self.huge_number(self.deep_nesting(content)), self.rng)
        if choice == 3:  # a zip whose central directory lies about sizes and offsets
            return _lying_zip(content, self.rng)
        if choice == 4:  # concatenated gzip members, then padding
            member = _gzip(content[: self.rng.randint(0, 4096)])
            return member * self.rng.choice((2, 50)) + b"\x00" * self.rng.choice((0, 10))
        return _gzip(_gzip(content))  # gzip in gzip

    def bomb(self, data: bytes) -> bytes:
        """A small archive that inflates to more than the caps allow."""
        packed = _bombs()[self.rng.randrange(2)]
        if self.rng.random() < 0.5:
            return packed
        return _message_with([("application/gzip", "report.xml.gz", packed)])

    def many_archives(self, data: bytes) -> bytes:
        """One message of many compressed parts (the 360-part finding)."""
        member = _gzip(b"\x00" * (self.rng.choice((64, 1024, 4096)) * 1024))
        count = self.rng.choice((20, 100, 360))
        ctype = self.rng.choice(("application/gzip", "application/tlsrpt+gzip"))
        return _message_with([(ctype, f"r{i}.xml.gz", member) for i in range(count)])

    # -- values ------------------------------------------------------------------------------

    def huge_number(self, data: bytes) -> bytes:
        runs = list(_DIGITS.finditer(data))
        if not runs:
            return self.insert(data)
        out = data
        for m in self.rng.sample(runs, min(len(runs), self.rng.choice((1, 3, 20)))):
            out = out.replace(m.group(0), self.rng.choice(HUGE_NUMBERS), 1)
        return out

    def deep_nesting(self, data: bytes) -> bytes:
        depth = self.rng.choice((50, 500, 5000, 20000))
        kind = self.rng.randrange(6)
        if kind == 0:  # comments in an address header (the stdlib parser recurses)
            header = self.rng.choice((b"From", b"To", b"Return-Path", b"Original-Mail-From"))
            value = b"(" * depth + b"a@b.example" + b")" * (depth // 2)
            return header + b": " + value + b"\n" + data
        if kind == 1:
            return b'To: "' + b'\\"' * depth + b'" <a@b.example>\n' + data
        if kind == 2:  # XML
            at = data.find(b"<record>")
            at = at if at >= 0 else self._at(data)
            return data[:at] + b"<x>" * depth + b"</x>" * depth + data[at:]
        if kind == 3:  # JSON
            at = data.find(b"{")
            at = at if at >= 0 else self._at(data)
            return data[:at] + b'{"policies": ' + b"[" * depth + b"]" * depth + b"}" + data[at:]
        if kind == 4:
            return b"Subject: " + b"=?utf-8?B?w6k=?= " * depth + b"\n" + data
        return self.nest_mime(data)

    def charset(self, data: bytes) -> bytes:
        if self.rng.random() < 0.2:  # an RFC 2231 parameter in an odd charset
            value = b"filename*=" + self.rng.choice(CHARSETS) + b"''report%00.xml.gz"
            return re.sub(rb'(?i)\b(?:file)?name="?[^";\r\n]*"?', value, data, count=2)
        if self.rng.random() < 0.5 and _CHARSET.search(data):
            return _CHARSET.sub(b"charset=" + self.rng.choice(CHARSETS), data, count=3)
        if _CTE.search(data):
            return _CTE.sub(lambda m: m.group(1) + self.rng.choice(ENCODINGS), data, count=3)
        return b"Content-Type: text/plain; charset=" + self.rng.choice(CHARSETS) + b"\n" + data

    def date(self, data: bytes) -> bytes:
        return self.rng.choice(DATES) + b"\n" + data

    def long_line(self, data: bytes) -> bytes:
        size = self.rng.choice((1000, 20_000, 300_000))
        line = self.rng.choice((b"a", b"(", b"<", b"-", b"a@b.example ", b";x=y"))
        at = self._at(data)
        return data[:at] + line * (size // len(line)) + data[at:]


@functools.cache
def _bombs() -> tuple[bytes, bytes]:
    """A gzip and a zip of just over the 20 MiB report cap (made once: that takes a while)."""
    size = 21 * 1024 * 1024
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        _write_member(zf, "report.xml", b" " * size)
    return _gzip(b"<feedback>" + b"\x00" * size, compresslevel=9), buffer.getvalue()


def _base64_lines(raw: bytes) -> bytes:
    text = base64.b64encode(raw)
    return b"".join(text[i : i + 76] + b"\n" for i in range(0, len(text), 76))


def _unpacked(raw: bytes) -> bytes:
    try:
        if raw[:2] == b"\x1f\x8b":
            return zlib.decompressobj(wbits=47).decompress(raw, 1 << 20)
        if raw[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(raw)) as zf, zf.open(zf.infolist()[0]) as fh:
                return fh.read(1 << 20)
    except Exception:
        return raw
    return raw


def _gzip(data: bytes, compresslevel: int = 9) -> bytes:
    """gzip without the wall-clock time in its header: the same seed, the same bytes."""
    return gzip.compress(data, compresslevel=compresslevel, mtime=0)


def _write_member(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    """A zip member with a fixed timestamp (``writestr`` with a name stamps the current time)."""
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _pack(content: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return _gzip(content)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        _write_member(zf, rng.choice(("report.xml", "report.json", "a.csv", "../x")), content)
    return buffer.getvalue()


def _lying_zip(content: bytes, rng: random.Random) -> bytes:
    """A zip of ``content`` whose central directory lies: a size or the local header's offset
    (the "negative seek" finding)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        _write_member(zf, "report.xml", content)
    data = bytearray(buffer.getvalue())
    central = data.rfind(b"PK\x01\x02")
    # the compressed and uncompressed sizes (20, 24) and the local header offset (42)
    at = central + rng.choice((20, 24, 42))
    data[at : at + 4] = rng.choice(
        (b"\xff\xff\xff\x7f", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x10\x00\x00\x00")
    )
    return bytes(data)


def _message_with(parts: list[tuple[str, str, bytes]]) -> bytes:
    out = [
        b"From: reports@example.net\nSubject: Report Domain: example.com\n"
        b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="fz"\n\n'
    ]
    for ctype, name, packed in parts:
        out.append(
            f'--fz\nContent-Type: {ctype}; name="{name}"\n'
            "Content-Transfer-Encoding: base64\n\n".encode()
        )
        out.append(_base64_lines(packed))
    out.append(b"--fz--\n")
    return b"".join(out)


# -- the harness -----------------------------------------------------------------------------


@dataclass(slots=True)
class Crash:
    target: str
    error: str
    trace: str


@dataclass(slots=True)
class Outcome:
    """What one input did: its crashes and its slowest parser call."""

    crashes: list[Crash] = field(default_factory=list)
    slowest: tuple[float, str] = (0.0, "")

    @property
    def over_time(self) -> bool:
        return self.slowest[0] > TIME_BOUND


class _Inventory:
    """A Targets with two IPs, enough for attribution to take its paths."""

    _OURS = {"192.0.2.1", "192.0.2.12", "2001:db8::1"}

    def ips(self) -> Iterator[str]:
        return iter(sorted(self._OURS))

    def domains(self) -> list[str]:
        return ["example.com"]

    def owner_of_ip(self, ip: str) -> Owner | None:
        return Owner("pool", "customer") if ip in self._OURS else None

    def owner_of_domain(self, domain: str) -> Owner | None:
        return None

    def domains_of_ip(self, ip: str) -> list[str]:
        return []

    def dkim_selectors(self, domain: str) -> list[str]:
        return []


RULES = SendingIpRules(
    _Inventory(), FeedbackConfig(verp_pattern=r"^bounce-(?P<ipx>[0-9a-f]{8}|[0-9a-f]{32})-")
)


class _Logged(logging.Handler):
    """Catches the tracebacks the dispatcher logs when a parser raised something unplanned."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


_LOGGED = _Logged()
logging.getLogger("repmon.feedback").addHandler(_LOGGED)


def _attribute(report: Report, msg: Message | None) -> object:
    if report.bounce is not None:
        return RULES.for_bounce(report.bounce, ["bounce-c000020c-x@bounces.example.net"])
    if report.complaint is not None:
        return RULES.for_complaint(report.complaint)
    if report.dmarc is not None:
        return [RULES.for_record(r.source_ip) for r in report.dmarc.records]
    return None


def _targets(data: bytes) -> Iterator[tuple[str, Callable[[], object]]]:
    """(name, call) for the entry points, then for the parsers they may not have reached.

    Taken lazily: which parsers follow depends on what the sink's path made of the input.
    The dispatcher runs the ARF and DMARC failure parsers and the classifier on every
    message and logs what any parser raises besides ParseError (a crash here), so those need
    no call of their own. ``detect_bounce`` takes some errors for "not a bounce": when the
    message came out as anything but a bounce, the two bounce parsers are called directly.
    The report extractors are called when the dispatcher did not get to them.
    """
    form = parse.sniff(data)
    seen: dict[str, object] = {}

    def sink() -> object:  # what the sink does with a spooled message
        msg = seen["msg"] = parse.read_message(data)
        report = parse.parse_email(msg)
        seen["kind"] = report.kind
        return _attribute(report, msg)

    def ingest() -> object:  # what repmon ingest does with a saved report file
        report, msg = parse.parse_saved(parse.SavedMessage("fuzz", data, form))
        return _attribute(report, msg)

    yield "parse_message+attribution", sink
    if form != "message":  # for a message, ingest is the sink's path after sniff()
        yield "sniff+parse_saved+attribution", ingest
    yield "parse_aggregate_bytes", lambda: dmarc_aggregate.parse_aggregate_bytes(data, "fuzz")
    yield "parse_tls_report_bytes", lambda: tlsrpt.parse_tls_report_bytes(data)
    msg = seen.get("msg")
    if not isinstance(msg, Message):
        try:
            msg = parse.read_message(data)
        except InputError:
            return
    kind = seen.get("kind")
    if kind not in ("bounce", "delay"):
        yield "parse_dsn", lambda: dsn.parse_dsn(msg)
        yield "parse_text_bounce", lambda: bounce_text.parse_text_bounce(msg)
    if kind not in ("dmarc-aggregate", "tls-report"):
        yield "extract_aggregate", lambda: dmarc_aggregate.extract_aggregate(msg)
        yield "extract_tls_report", lambda: tlsrpt.extract_tls_report(msg)


def run_input(data: bytes, mbox_dir: Path | None = None) -> Outcome:
    """Every parser on ``data``; with ``mbox_dir``, also ``parse_file`` on it saved as an
    mbox of two messages there (the ingest path that reads files)."""
    outcome = Outcome()
    calls: Iterator[tuple[str, Callable[[], object]]] = _targets(data)
    if mbox_dir is not None:
        path = mbox_dir / "fuzz.mbox"
        path.write_bytes(b"From a@b Mon Jan 1 00:00:00 2024\n" + data + b"\n\nFrom x\n" + data)
        mbox = ("parse_file(mbox)", lambda: parse.parse_file(path, 4 * 1024 * 1024))
        calls = itertools.chain(calls, [mbox])
    for name, call in calls:
        _LOGGED.records.clear()
        started = time.thread_time()
        try:
            call()
        except InputError:
            pass
        except Exception as exc:
            trace = "".join(traceback.format_exception(exc, limit=-6))
            outcome.crashes.append(Crash(name, f"{exc.__class__.__name__}: {exc}"[:300], trace))
        spent = time.thread_time() - started
        for record in _LOGGED.records:
            assert record.exc_info is not None
            exc_type, exc_value = record.exc_info[0], record.exc_info[1]
            trace = "".join(traceback.format_exception(*record.exc_info, limit=-6))
            error = f"{getattr(exc_type, '__name__', '?')}: {exc_value} (caught and logged)"
            outcome.crashes.append(Crash(name, error[:300], trace))
        if spent > outcome.slowest[0]:
            outcome.slowest = (spent, name)
    return outcome


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="repmon-fuzz-")

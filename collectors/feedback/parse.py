"""What a feedback message is: the dispatcher over the parsers, and the reader of saved files.

:func:`parse_message` tries the parsers in a fixed order, first match wins:

1. ARF with ``Feedback-Type: auth-failure`` → ``dmarc-failure``
2. any other ARF (or a provider's variant) → ``complaint``
3. a DMARC aggregate report attached or inline → ``dmarc-aggregate``
4. a TLS report (RFC 8460) → ``tls-report``
5. a bounce, DSN or non-standard → ``bounce``; ``delay`` when every recipient is ``delayed``
6. anything else → ``other``

Two exceptions keep returned attachments from posing as reports: a message that declares
itself a DSN (``multipart/report; report-type=delivery-status``) is tried as a bounce before
steps 3-4, and a report-like attachment that fails to parse inside a message that is a
bounce gives the bounce, not the error.

:func:`parse_file` reads what ``repmon ingest`` is given: a single message, an mbox, a
Maildir, a raw DMARC aggregate (``.xml``, ``.gz``, ``.zip``), a raw TLS report (``.json`` or
gzip), or a directory of any of these, recursively.

Hostile input ends in a :class:`ParseError`, never in another exception or a long stall:
MIME parts nested more than :data:`~collectors.feedback.limits.MAX_MIME_DEPTH` deep are
refused, the search for reports in one message shares one
:class:`~collectors.feedback.limits.ExtractionBudget`, and files are read in bounded memory
(an mbox line by line in pieces of at most :data:`READ_CHUNK` bytes).
"""

from __future__ import annotations

import gzip
import io
import logging
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Literal, TypeVar

from checks.errors import ParseError
from collectors.feedback import arf, bounces, dmarc_aggregate, dmarc_failure, tlsrpt
from collectors.feedback.limits import (
    MAX_MIME_DEPTH,
    MAX_MIME_PARTS,
    MAX_SUBJECT_CHARS,
    ExtractionBudget,
)
from collectors.feedback.mime import read_structure
from collectors.feedback.model import Report

log = logging.getLogger("repmon.feedback")

#: a saved message larger than this is refused when no other limit is given (sink default)
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: an mbox is read in pieces of at most this many bytes, however long its lines are
READ_CHUNK = 64 * 1024

Form = Literal["message", "dmarc-file", "tls-file"]
T = TypeVar("T")


def read_message(raw: bytes) -> Message:
    """The message structure; compat32 because real bounces carry broken headers.

    Raises ParseError when the parser gives up, when the message has more than
    :data:`~collectors.feedback.limits.MAX_MIME_PARTS` MIME parts, or when parts (multiparts
    and attached messages) are nested more than
    :data:`~collectors.feedback.limits.MAX_MIME_DEPTH` deep: the parsers walk that tree, and
    no feedback message is shaped like that.
    """
    try:
        msg = read_structure(raw, MAX_MIME_PARTS, MAX_MIME_DEPTH)
    except ParseError:
        raise
    except RecursionError:
        raise ParseError(
            f"not a readable email message: nested too deeply (limit {MAX_MIME_DEPTH})"
        ) from None
    except Exception as exc:  # the parser is lenient; anything it still raises is bad input
        raise ParseError(f"not a readable email message: {exc.__class__.__name__}: {exc}") from None
    _check_depth(msg)
    return msg


def _check_depth(msg: Message) -> None:
    """The depth limit again, on the parsed tree: the parser enforces it through a private
    hook (``FeedParser._new_message``) that a future Python may not call."""
    stack = [(msg, 1)]
    while stack:
        part, depth = stack.pop()
        if depth > MAX_MIME_DEPTH:
            raise ParseError(f"MIME parts nested more than {MAX_MIME_DEPTH} deep")
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((sub, depth + 1) for sub in payload if isinstance(sub, Message))


def parse_message(raw: bytes) -> Report:
    """The meaning of one message. Raises ParseError when it claims a format but is broken."""
    return parse_email(read_message(raw))


def parse_email(msg: Message) -> Report:
    """As :func:`parse_message`, for a message already parsed."""

    subject = decoded_header(msg, "Subject")
    failure = _guarded(dmarc_failure.parse_dmarc_failure, msg)
    if failure is not None:
        return Report("dmarc-failure", complaint=failure, subject=subject)
    complaint = _guarded(arf.parse_arf, msg)
    if complaint is not None:
        if complaint.feedback_type == "auth-failure":
            return Report("dmarc-failure", complaint=complaint, subject=subject)
        return Report("complaint", complaint=complaint, subject=subject)
    # A DSN returns the bounced message, attachments included: a .zip or .xml in it is the
    # customer's, not a DMARC report, so a declared DSN is read as a bounce first.
    if _declared_dsn(msg):
        return _bounce(msg, subject) or _report(msg, subject) or Report("other", subject=subject)
    try:
        found = _report(msg, subject)
    except ParseError:
        # a broken report-like attachment inside a non-standard bounce: still the bounce
        bounced = _bounce(msg, subject)
        if bounced is None:
            raise
        return bounced
    return found or _bounce(msg, subject) or Report("other", subject=subject)


def _declared_dsn(msg: Message) -> bool:
    report_type = msg.get_param("report-type")
    return (
        msg.get_content_type() == "multipart/report"
        and isinstance(report_type, str)
        and report_type.strip().lower() == "delivery-status"
    )


def _report(msg: Message, subject: str) -> Report | None:
    """A DMARC aggregate or TLS report carried by the message; None when it has neither.

    Both extractors share one budget: a part is inflated once, and the whole search is held
    to the budget's bytes, parts and CPU time (ParseError "report extraction budget
    exceeded: …" past it).
    """
    budget = ExtractionBudget()
    xml = _guarded(dmarc_aggregate.extract_aggregate, msg, budget)
    # an archive that unpacks to something other than XML (malware in a .zip) is no report
    if xml is not None and xml.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<":
        aggregate = _guarded(dmarc_aggregate.parse_aggregate_bytes, xml, "", budget)
        return Report("dmarc-aggregate", dmarc=aggregate, subject=subject)
    tls_data = _guarded(tlsrpt.extract_tls_report, msg, budget)
    if tls_data is not None:
        tls = _guarded(tlsrpt.parse_tls_report_bytes, tls_data, budget)
        return Report("tls-report", tls=tls, subject=subject)
    return None


def _bounce(msg: Message, subject: str) -> Report | None:

    bounce = _guarded(bounces.detect_bounce, msg)
    if bounce is None:
        return None
    delay = bool(bounce.recipients) and all(r.action == "delayed" for r in bounce.recipients)
    return Report("delay" if delay else "bounce", bounce=bounce, subject=subject)


def parse_report_file(data: bytes, form: Form) -> Report:
    """A raw DMARC aggregate (xml/gz/zip) or TLS report (json/gz) file, not wrapped in mail."""

    if form == "tls-file":
        return Report("tls-report", tls=_guarded(tlsrpt.parse_tls_report_bytes, data))
    aggregate = _guarded(dmarc_aggregate.parse_aggregate_bytes, data)
    return Report("dmarc-aggregate", dmarc=aggregate)


def _guarded(parser: Callable[..., T], *args: object) -> T:
    """Run a parser; a bug it hits on hostile input becomes a ParseError (quarantine, not crash)."""
    try:
        return parser(*args)
    except ParseError:
        raise
    except RecursionError:
        raise ParseError(f"{parser.__name__}: message nested too deeply") from None
    except Exception as exc:
        log.exception("feedback parser %s failed", parser.__name__)
        raise ParseError(
            f"{parser.__name__} failed: {exc.__class__.__name__}: {exc} (parser error)"
        ) from None


def decoded_header(msg: Message, name: str) -> str:
    """A header as text, RFC 2047 words decoded (from its first
    :data:`~collectors.feedback.limits.MAX_SUBJECT_CHARS` characters); "" when absent."""
    value = msg.get(name)
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value)[:MAX_SUBJECT_CHARS]))).strip()
    except Exception:  # broken encoded words: keep the raw text
        return str(value).strip()


# --- saved files ---------------------------------------------------------------------------


@dataclass(slots=True)
class SavedMessage:
    """One message read from a file: its label (``path`` or ``path#N``) and raw bytes."""

    label: str
    raw: bytes
    form: Form = "message"
    #: set when the file could not be read; ``raw`` is then empty
    error: ParseError | None = None
    mtime: float = 0.0


def parse_saved(saved: SavedMessage) -> tuple[Report, Message | None]:
    """The report of a saved message and its parsed structure (None for raw report files)."""
    if saved.error is not None:
        raise saved.error
    if saved.form == "message":
        msg = read_message(saved.raw)
        return parse_email(msg), msg
    return parse_report_file(saved.raw, saved.form), None


def parse_file(
    path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[tuple[str, Report | ParseError]]:
    """Every message in ``path`` with its report, or the ParseError that stopped it."""
    out: list[tuple[str, Report | ParseError]] = []
    for saved in read_saved(path, max_bytes):
        try:
            out.append((saved.label, parse_saved(saved)[0]))
        except ParseError as exc:
            out.append((saved.label, exc))
    return out


def read_saved(
    path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES, _seen: set[tuple[int, int]] | None = None
) -> Iterator[SavedMessage]:
    """The messages of a file or directory (recursively, in name order).

    A Maildir's ``tmp/`` is skipped (messages still being written there). An unreadable or
    oversized file, or a directory that cannot be listed, comes back as a SavedMessage with
    ``error`` set, never as an exception; a directory reached again through a symbolic link
    (a loop) is read once.
    """
    p = Path(path)
    if p.is_dir():
        seen = set() if _seen is None else _seen
        try:
            st = p.stat()
            children = sorted(p.iterdir())
        except OSError as exc:
            yield SavedMessage(str(p), b"", error=ParseError(f"cannot read: {exc.strerror}"))
            return
        if (st.st_dev, st.st_ino) in seen:
            return  # a symbolic link back to a directory already read
        seen.add((st.st_dev, st.st_ino))
        maildir = (p / "cur").is_dir() and (p / "new").is_dir()
        for child in children:
            if maildir and child.name == "tmp":
                continue
            if child.is_file() and child.name.startswith("."):
                continue  # editor and OS droppings (.DS_Store), not messages
            yield from read_saved(child, max_bytes, seen)
        return
    if not p.is_file():  # a FIFO or device would block or never end
        yield SavedMessage(str(p), b"", error=ParseError("not a regular file"))
        return
    try:
        stat = p.stat()
        with p.open("rb") as fh:
            head = fh.read(5)
    except OSError as exc:
        yield SavedMessage(str(p), b"", error=ParseError(f"cannot read: {exc.strerror}"))
        return
    if head == b"From ":
        messages = _read_mbox(p, max_bytes, stat.st_mtime)
        first, second = next(messages, None), next(messages, None)
        if first is not None and second is None:
            first.label = str(p)  # a saved .eml with a Unix "From " line: one message, no #1
        yield from (m for m in (first, second) if m is not None)
        yield from messages
        return
    if stat.st_size > max_bytes:
        error = ParseError(f"{stat.st_size} bytes, more than the limit of {max_bytes}")
        yield SavedMessage(str(p), b"", error=error)
        return
    try:
        with p.open("rb") as fh:
            raw = fh.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError as exc:
        yield SavedMessage(str(p), b"", error=ParseError(f"cannot read: {exc.strerror}"))
        return
    if len(raw) > max_bytes:
        error = ParseError(f"more than the limit of {max_bytes} bytes")
        yield SavedMessage(str(p), b"", error=error)
        return
    yield SavedMessage(str(p), raw, sniff(raw), mtime=stat.st_mtime)


def sniff(raw: bytes) -> Form:
    """Whether bytes are an email, a raw DMARC aggregate or a raw TLS report, by content."""
    if raw[:2] == b"\x1f\x8b":
        return "tls-file" if _gzip_head(raw).lstrip()[:1] == b"{" else "dmarc-file"
    if raw[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                names = zf.namelist()
        except Exception:  # any damage: let the DMARC parser name the problem
            return "dmarc-file"
        return "tls-file" if any(n.lower().endswith(".json") for n in names) else "dmarc-file"
    text = raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if text == b"<":
        return "dmarc-file"
    if text == b"{":
        return "tls-file"
    return "message"


def _gzip_head(raw: bytes, size: int = 512) -> bytes:
    """The first bytes of a gzip stream, decompressing no more than that (bomb-safe);
    b"" when the stream is damaged (the report parser then names the problem)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, size)
    except zlib.error:
        pass
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
            return gz.read(size)
    except (OSError, EOFError, zlib.error):  # zlib.error: "invalid distance too far back"
        return b""


def _read_mbox(path: Path, max_bytes: int, mtime: float) -> Iterator[SavedMessage]:
    """Split an mbox on ``From `` lines that start the file or follow an empty line.

    Read line by line, and a line in pieces of at most :data:`READ_CHUNK` bytes, so that
    neither a large mailbox nor one enormous line ever sits in memory; each message on its
    own is held to ``max_bytes`` (a larger one is an error for that message alone). The
    ``From `` separator line is not part of the message.
    """
    number = 0
    lines: list[bytes] = []
    size = 0
    oversized = False
    previous_blank = True

    def flush() -> SavedMessage | None:
        if number == 0:
            return None
        label = f"{path}#{number}"
        if oversized:
            error = ParseError(f"message {number} is more than the limit of {max_bytes} bytes")
            return SavedMessage(label, b"", error=error)
        body = b"".join(lines)
        # the empty line before the next separator belongs to the mbox, not to the message
        if body.endswith(b"\r\n\r\n"):
            body = body[:-2]
        elif body.endswith(b"\n\n"):
            body = body[:-1]
        return SavedMessage(label, body, "message", mtime=mtime)

    try:
        with path.open("rb") as fh:
            line_start = True  # the next piece starts a line
            in_separator = False  # the pieces of an over-long "From " line
            for piece in iter(lambda: fh.readline(READ_CHUNK), b""):
                starts_line, line_start = line_start, piece.endswith(b"\n")
                if starts_line:
                    in_separator = False
                    if piece.startswith(b"From ") and previous_blank:
                        done = flush()
                        if done is not None:
                            yield done
                        number += 1
                        lines, size, oversized = [], 0, False
                        previous_blank = False
                        in_separator = not line_start
                        continue
                    previous_blank = piece in (b"\n", b"\r\n")
                elif in_separator:
                    continue
                size += len(piece)
                if size > max_bytes:
                    oversized = True
                    lines = []
                elif not oversized:
                    lines.append(piece)
    except OSError as exc:
        yield SavedMessage(f"{path}#{number}", b"", error=ParseError(f"cannot read: {exc}"))
        return
    done = flush()
    if done is not None:
        yield done

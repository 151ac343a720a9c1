"""One pass over an abuse mail: the texts a human would read, the attachments a machine
would, the messages it forwards, and the relays it came through.

The MIME walk is bounded (parts, depth) because a hostile message can nest multiparts
thousands deep. Attached messages (``message/rfc822``) are kept whole but not walked into:
a forwarded spam's text is evidence, not the report.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message

from checks.errors import ParseError
from collectors.abuse.extract import find_ips, parse_when
from collectors.feedback.mime import read_structure

__all__ = ["Attachment", "MailView", "read_mail"]

MAX_PARTS = 200
MAX_DEPTH = 12


@dataclass(slots=True)
class Attachment:
    """A leaf part that a parser may read as data: named, or not plain/html text."""

    name: str
    content_type: str
    data: bytes

    def text(self) -> str:
        return decode_bytes(self.data)


@dataclass(slots=True)
class MailView:
    msg: Message
    subject: str = ""
    sender: str = ""
    sender_name: str = ""
    date: dt.datetime | None = None
    #: the human-readable parts, in order: text/plain, or text/html made plain when a part
    #: has no plain alternative
    texts: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    #: messages (or header blocks) the report forwards: the spam complained about
    embedded: list[Message] = field(default_factory=list)
    #: addresses in the outer Received headers: the reporter's and our own relays
    relay_ips: set[str] = field(default_factory=set)

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2].lower()

    @property
    def body(self) -> str:
        return "\n\n".join(self.texts)


def read_mail(raw: bytes) -> MailView:
    """The view of one message. Raises ParseError when the bytes are not a message."""
    try:
        msg = read_structure(raw)
    except RecursionError:
        raise ParseError("message nests MIME parts too deeply") from None
    except Exception as exc:  # the compat32 parser is lenient; what it still raises is bad input
        raise ParseError(f"not a readable e-mail message: {exc.__class__.__name__}") from None
    view = MailView(msg=msg)
    view.subject = header_text(msg, "Subject")
    name, address = email.utils.parseaddr(header_text(msg, "From"))
    view.sender, view.sender_name = address.lower(), name.strip()
    view.date = parse_when(header_text(msg, "Date"))
    for value in msg.get_all("Received") or []:
        view.relay_ips.update(f.ip for f in find_ips(str(value)) if f.ip)
    _walk(msg, view, depth=0, seen=[0])
    return view


def _walk(part: Message, view: MailView, depth: int, seen: list[int]) -> None:
    seen[0] += 1
    if seen[0] > MAX_PARTS or depth > MAX_DEPTH:
        return
    ctype = part.get_content_type()
    payload = part.get_payload()
    if ctype in ("message/rfc822", "message/global") and isinstance(payload, list):
        view.embedded.extend(m for m in payload[:1] if isinstance(m, Message))
        return
    if part.is_multipart() and isinstance(payload, list):
        alternatives = part.get_content_subtype() == "alternative"
        has_plain = alternatives and any(
            isinstance(p, Message) and p.get_content_type() == "text/plain" for p in payload
        )
        for sub in payload:
            if not isinstance(sub, Message):
                continue
            if has_plain and sub.get_content_type() == "text/html":
                continue  # the plain alternative says the same
            _walk(sub, view, depth + 1, seen)
        return
    _leaf(part, ctype, view)


def _leaf(part: Message, ctype: str, view: MailView) -> None:
    name = _filename(part)
    data = _decoded(part)
    if ctype == "application/pgp-signature":
        return
    if ctype in ("text/rfc822-headers", "text/rfc822-header"):
        view.embedded.append(_header_block(decode_bytes(data, part.get_content_charset())))
        return
    if ctype.startswith("multipart/"):  # its boundary is missing: the parts are one text
        ctype = "text/plain"
    if ctype in ("text/plain", "text/html") and not _is_attachment(part, name):
        text = decode_bytes(data, part.get_content_charset())
        view.texts.append(html_to_text(text) if ctype == "text/html" else text)
        return
    view.attachments.append(Attachment(name, ctype, data))


def _is_attachment(part: Message, name: str) -> bool:
    disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
    return disposition == "attachment" or bool(name)


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or part.get_param("name") or ""
    except Exception:  # a malformed RFC 2231 parameter: treat as unnamed
        return ""
    return str(name).strip() if not isinstance(name, tuple) else str(name[2]).strip()


def _decoded(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # broken base64/quoted-printable: keep what is there, as text
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    return payload.encode("utf-8", "replace") if isinstance(payload, str) else b""


def _header_block(text: str) -> Message:
    from email.parser import HeaderParser

    return HeaderParser().parsestr(text.lstrip("\r\n"), headersonly=True)


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Bytes as text: the declared charset, else UTF-8, else Latin-1 (never fails)."""
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def header_text(msg: Message, name: str) -> str:
    """A header decoded from RFC 2047 words, whitespace folded; "" when absent or broken."""
    try:
        value = msg.get(name)
    except Exception:
        return ""
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(str(value))))
    except Exception:  # undecodable encoded-words: the raw value is still informative
        text = str(value)
    return " ".join(text.split())


_DROPPED = ("script", "style", "head")
_BREAK = re.compile(r"<\s*(?:br|/p|/div|/tr|/li|/h\d|/table|hr)\b[^>]*>", re.I)
_CELL = re.compile(r"<\s*/t[dh]\s*>", re.I)
_TAG = re.compile(r"<[^>]{0,2000}>")


def html_to_text(markup: str) -> str:
    """Readable text of an HTML part: line breaks kept, tags dropped, entities decoded."""
    text = _drop_blocks(markup)
    text = _BREAK.sub("\n", text)
    text = _CELL.sub("\t", text)
    text = _TAG.sub("", text)
    return html.unescape(text)


def _drop_blocks(markup: str) -> str:
    """``markup`` without script/style/head elements. A loop of ``find`` rather than one
    lazy ``.*?`` pattern, each tag's next position remembered: unclosed or repeated tags in
    hostile HTML must not cost quadratic time."""
    lower = markup.lower()
    kept: list[str] = []
    pos = 0
    next_at = {tag: lower.find("<" + tag) for tag in _DROPPED}
    while True:
        for tag, at in next_at.items():
            if 0 <= at < pos:
                next_at[tag] = lower.find("<" + tag, pos)
        pending = [(at, tag) for tag, at in next_at.items() if at >= 0]
        if not pending:
            kept.append(markup[pos:])
            return "".join(kept)
        at, tag = min(pending)
        kept.append(markup[pos:at])
        end = lower.find("</" + tag, at)
        if end < 0:
            return "".join(kept)
        close = lower.find(">", end)
        pos = len(markup) if close < 0 else close + 1

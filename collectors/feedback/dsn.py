"""RFC 3464 delivery status notifications, including the deviations real MTAs send.

Tolerated: a missing or wrong ``report-type``; the ``message/delivery-status`` part nested in a
``multipart/mixed`` or forwarded inside another message; a ``text/plain`` part that carries the
fields (named "delivery-status", or simply starting with the fields); ``X-Postfix-*`` and other
``X-`` fields; ``Original-Recipient`` or ``X-Actual-Recipient`` when ``Final-Recipient`` is
missing or carries no address; ``rfc822;`` / ``dns;`` / ``smtp;`` type prefixes; folded
``Diagnostic-Code`` lines.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from email.message import Message
from email.parser import HeaderParser

from checks.errors import ParseError
from collectors.feedback.limits import (
    MAX_BOUNCE_RECIPIENTS,
    MAX_DIAGNOSTIC_CHARS,
    MAX_MIME_DEPTH,
    MAX_MIME_PARTS,
    bounded_date,
)
from collectors.feedback.mime import header_block, read_text_structure
from collectors.feedback.model import Bounce, BouncedRecipient

# Lookarounds keep "10.5.1.1" (an IP address) from reading as status 5.1.1.
STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
REPLY_CODE = re.compile(r"^\s*([245]\d\d)(?:[\s-]|$)")
_FIELD_LINE = re.compile(r"^(?:final|original)-recipient\s*:", re.I | re.M)
_ACTION_OR_STATUS = re.compile(r"^(?:action|status)\s*:", re.I | re.M)
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient", "x-actual-recipient")
_ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")


def part_text(part: Message) -> str:
    """The decoded text of a non-multipart part; "" when it has none."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding must not end the parse
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except (LookupError, ValueError):  # an unknown or unusable charset name ("idna", NUL)
        return payload.decode("latin-1")


def strip_type(value: str) -> str:
    """``rfc822; <a@b>`` → ``<a@b>``, ``dns; mx.example`` → ``mx.example``."""
    value = " ".join(value.split())
    head, sep, tail = value.partition(";")
    if sep and re.fullmatch(r"[A-Za-z0-9-]{1,20}", head.strip()):
        return tail.strip()
    return value.strip()


def clean_address(value: str) -> str:
    """A recipient address lower-cased, without type prefix, angle brackets or trailing dot."""
    value = strip_type(value)
    m = re.search(r"<([^<>]*@[^<>]*)>", value)
    if m:
        value = m.group(1)
    value = value.strip().strip("<>").strip().rstrip(".")
    # A source route "@relay1,@relay2:user@host" names the mailbox after the colon.
    if value.startswith("@") and ":" in value:
        value = value.rpartition(":")[2]
    return value.lower()


def normalise_status(value: str) -> str:
    """The first RFC 3463 code in ``value`` as ``x.y.z`` without leading zeros; "" if none."""
    m = STATUS.search(value or "")
    if not m:
        return ""
    return ".".join(str(int(g)) for g in m.groups())


def _blocks(text: str) -> list[Message]:
    """Split delivery-status text into field blocks (blank-line separated, folding kept)."""
    text = text.replace("\r\n", "\n").lstrip("\n")
    chunks = re.split(r"\n[ \t]*\n", text)
    parser = HeaderParser()
    return [parser.parsestr(chunk.strip("\n") + "\n\n") for chunk in chunks if chunk.strip()]


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list) and all(isinstance(p, Message) for p in payload):
        # The email package parsed message/delivery-status into one Message per block; it
        # sometimes merges blocks when the blank line carries spaces, which _blocks handles.
        text = "\n\n".join(
            "\n".join(f"{k}: {v}" for k, v in block.items())
            for block in payload
            if isinstance(block, Message)
        )
        return _blocks(text)
    return _blocks(part_text(part))


def _looks_like_fields(text: str) -> bool:
    return bool(_FIELD_LINE.search(text) and _ACTION_OR_STATUS.search(text))


def repair_multipart(msg: Message, lost_header: bool = False) -> Message:
    """``msg`` itself, or a re-parse when its multipart boundary was unreadable.

    Some MTAs fold other headers into the Content-Type line, so the declared boundary never
    occurs; the first ``--boundary`` line of the body is then the real one.
    """
    if msg.is_multipart():
        return msg
    body = msg.get_payload()
    if not isinstance(body, str):
        return msg
    if msg.get_content_maintype() == "multipart":
        m = re.search(r"^--([^\s]{1,200})[ \t\r]*$", body, re.M)
        ctype = msg.get_content_type()
    elif lost_header:
        # A MIME body whose multipart Content-Type header was lost: boundary lines followed
        # by part headers.
        m = re.search(r"^--([^\s]{1,200})[ \t\r]*\n(?:[ \t\r]*\n)?Content-Type:", body, re.M | re.I)
        ctype = "multipart/mixed"
    else:
        return msg
    if not m:
        return msg
    try:
        repaired = read_text_structure(
            f'Content-Type: {ctype}; boundary="{m.group(1)}"\n\n{body}',
            MAX_MIME_PARTS,
            MAX_MIME_DEPTH,
        )
    except (ParseError, RecursionError):  # too many parts: the message as it came
        return msg
    if not repaired.is_multipart():
        return msg
    for name, value in msg.items():
        if name.lower() != "content-type":
            repaired[name] = value
    return repaired


def find_status_part(msg: Message) -> Message | None:
    """The part that carries the delivery-status fields, at any depth; None when there is none.

    Preference: a real ``message/delivery-status`` part; then a text part named or described as
    delivery-status; then any text part whose content is a field block.
    """
    named = loose = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            return part
        if part.is_multipart() or not ctype.startswith("text/"):
            continue
        label = " ".join(
            str(x or "") for x in (part.get("Content-Description"), part.get_filename(), ctype)
        ).lower()
        if named is None and ("delivery-status" in label or "delivery status" in label):
            if _looks_like_fields(part_text(part)):
                named = part
        elif loose is None and ctype == "text/plain" and msg.get_content_type() != "text/plain":
            text = part_text(part).lstrip()
            if re.match(
                r"^(?:reporting-mta|final-recipient|original-recipient|arrival-date|"
                r"received-from-mta|x-postfix)",
                text,
                re.I,
            ) and _looks_like_fields(text):
                loose = part
    return named or loose


def find_original(msg: Message) -> Message | None:
    """The returned message or its headers (``message/rfc822`` or ``text/rfc822-headers``)."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers"):
            return header_block(part_text(part).lstrip())
    return None


def _date(value: str | None) -> dt.datetime | None:
    """The Arrival-Date; None when unreadable or outside the years 1970-9999."""
    if not value:
        return None
    try:
        return bounded_date(email.utils.parsedate_to_datetime(" ".join(str(value).split())))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _recipient(block: Message) -> BouncedRecipient | None:
    valid = [
        candidate
        for candidate in (clean_address(str(block.get(name, ""))) for name in _RECIPIENT_FIELDS)
        if re.fullmatch(r"[^@\s]+@[^@\s]+", candidate)
    ]
    # Final-Recipient first, unless it names an internal host ("user@ims_daemon") and another
    # field has the address as sent.
    qualified = [a for a in valid if "." in a.rpartition("@")[2]]
    address = (qualified or valid or [""])[0]
    if not address:
        return None
    diagnostic = strip_type(str(block.get("Diagnostic-Code", "")))[:MAX_DIAGNOSTIC_CHARS]
    action = str(block.get("Action", "")).strip().lower().split(" ")[0]
    status = normalise_status(str(block.get("Status", "")))
    diag_status = normalise_status(diagnostic)
    # The code the remote server gave beats the reporting MTA's summary in Status (which is
    # often a generic x.0.0, or 4.4.7 "expired" over the real cause), within the same class.
    if diag_status and (not status or diag_status[0] == status[0]):
        status = diag_status
    m = REPLY_CODE.match(diagnostic)
    reply_code = m.group(1) if m else ""
    if action not in _ACTIONS:
        action = {"4": "delayed", "2": "delivered"}.get(status[:1], "failed")
    return BouncedRecipient(
        address=address,
        action=action,
        status=status,
        diagnostic=diagnostic,
        remote_mta=strip_type(str(block.get("Remote-MTA", ""))).strip("[]"),
        reply_code=reply_code,
    )


def parse_dsn(msg: Message) -> Bounce | None:
    """Read an RFC 3464 delivery status notification.

    Returns a :class:`Bounce` with one recipient per recipient block (category and hard left at
    their defaults: ``bounces.detect_bounce`` classifies), or None when the message carries no
    delivery-status fields or no recipient could be read from them.
    """
    msg = repair_multipart(msg)
    part = find_status_part(msg)
    if part is None and not msg.is_multipart():
        msg = repair_multipart(msg, lost_header=True)
        part = find_status_part(msg)
    if part is None:
        return None
    blocks = _status_blocks(part)
    recipients: list[BouncedRecipient] = []
    seen: set[str] = set()
    reporting_mta = ""
    arrival: dt.datetime | None = None
    for block in blocks:
        if not any(block.get(name) for name in _RECIPIENT_FIELDS):
            reporting_mta = reporting_mta or strip_type(str(block.get("Reporting-MTA", "")))
            arrival = arrival or _date(block.get("Arrival-Date"))
            continue
        if len(recipients) >= MAX_BOUNCE_RECIPIENTS:
            break  # the first ones are kept: each costs a classification and an event
        recipient = _recipient(block)
        if recipient is not None and recipient.address not in seen:
            seen.add(recipient.address)
            recipients.append(recipient)
    if not recipients:
        return None
    return Bounce(
        recipients=recipients,
        reporting_mta=reporting_mta,
        arrival_date=arrival,
        original=find_original(msg),
        format="dsn",
    )

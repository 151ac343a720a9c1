"""Feedback-loop complaints: ARF (RFC 5965) and the variants providers really send.

Accepted shapes, tried in this order:

1. RFC 5965: ``multipart/report; report-type=feedback-report`` with a
   ``message/feedback-report`` part, then the reported message
   (``message/rfc822`` or ``text/rfc822-headers``). The report-type parameter may be
   missing, and the feedback part may be sent as ``text/plain``: any part whose
   text opens with a header block holding ``Feedback-Type`` is read as the report.
2. Microsoft JMRP / Outlook.com and Amazon SES complaint notices: no feedback
   part, the reported message attached as ``message/rfc822``, recognised by the
   ``X-HmXmrOriginalRecipient`` header in it or by a ``complaint about message
   from <ip>`` subject. Feedback type ``abuse`` (they carry no type; a complaint
   loop only reports "this is spam").
3. Apple Mail's one-click unsubscribe (``X-Apple-Unsubscribe: true``): feedback
   type ``opt-out``.

Where the report has no ``Source-IP`` (or an unusable one), the sending IP is
taken, in order, from what the reporter states in words (a ``complaint about
message from <ip>`` subject, or "received from IP <ip>" in the human-readable
part), then from the reported message's ``Received`` headers (see
:func:`connecting_ip`).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import re
from collections.abc import Iterator
from email.message import Message
from email.parser import HeaderParser

from checks.errors import ParseError
from collectors.feedback.limits import (
    MAX_MIME_DEPTH,
    MAX_MIME_PARTS,
    bare_address,
    bounded_date,
)
from collectors.feedback.mime import header_block, read_structure, remembered
from collectors.feedback.model import Complaint

__all__ = [
    "connecting_ip",
    "feedback_fields",
    "parse_arf",
    "parse_date",
    "parts_of",
    "valid_ip",
]

#: feedback type of provider variants that carry none (a complaint loop reports spam)
DEFAULT_FEEDBACK_TYPE = "abuse"

_REPORTED_TYPES = ("message/rfc822", "text/rfc822-headers", "text/rfc822-header")
_SUBJECT_IP = re.compile(r"complaint about message from\s+\[?([0-9A-Fa-f:.]+)", re.I)
_TEXT_IP = re.compile(r"received\s+from\s+IP(?:\s+address)?\s+\[?([0-9A-Fa-f:.]+[0-9A-Fa-f])", re.I)
_FIELD_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:")
_FEEDBACK_TYPE_LINE = re.compile(r"^Feedback-Type:[ \t]*\S", re.I | re.M)
_OTHER_ARF_FIELDS = {
    "user-agent",
    "version",
    "source-ip",
    "original-mail-from",
    "original-rcpt-to",
    "arrival-date",
    "received-date",
    "reported-domain",
    "auth-failure",
}


def parse_arf(msg: Message) -> Complaint | None:
    """The complaint in ``msg``, or None when the message is not a feedback report.

    Never raises on malformed content: fields that cannot be read are left
    empty (``source_ip`` "" when no valid IP was found, ``arrival_date`` None
    when the date is missing or unparseable).
    """
    fields = feedback_fields(msg)
    reported = _reported_message(msg)
    if fields is not None:
        complaint = _from_fields(fields)
    elif reported is not None and _is_microsoft_style(msg, reported):
        complaint = Complaint(feedback_type=DEFAULT_FEEDBACK_TYPE)
        rcpt = _header(reported, "X-HmXmrOriginalRecipient")
        if rcpt:
            complaint.original_rcpt_to = [_address(rcpt)]
        complaint.original_mail_from = _address(_header(reported, "Return-Path"))
    elif _header(msg, "X-Apple-Unsubscribe").lower() == "true":
        sender = _address(_header(msg, "From"))
        return Complaint(
            feedback_type="opt-out",
            original_rcpt_to=[sender] if sender else [],
            arrival_date=parse_date(_header(msg, "Date")),
            user_agent="Apple Mail",
            original=msg,
        )
    else:
        return None

    complaint.original = reported
    if not complaint.source_ip:
        complaint.source_ip = _stated_ip(msg) or (
            connecting_ip(reported) if reported is not None else ""
        )
    return complaint


def feedback_fields(msg: Message) -> Message | None:
    """The machine-readable report fields as a header block, or None when absent.

    Looks for a ``message/feedback-report`` part, else for a block of
    ``Name: value`` lines in a ``text/plain`` part (or a single-part body) that
    holds ``Feedback-Type`` plus at least one other ARF field, so that prose
    mentioning "Feedback-Type" is not mistaken for a report. Worked out once per
    message (the DMARC failure parser asks first): treat the answer as read-only.
    """
    return remembered(msg, "feedback-fields", _find_feedback_fields)


def _find_feedback_fields(msg: Message) -> Message | None:
    parts = list(parts_of(msg))
    for part in parts:
        if part.get_content_type() == "message/feedback-report":
            return _as_headers(part)
    for part in parts:
        if part.get_content_type() != "text/plain":
            continue
        fields = _field_block(_text(part))
        if fields is not None:
            return fields
    return None


def _field_block(text: str) -> Message | None:
    found = _FEEDBACK_TYPE_LINE.search(text)
    if not found:
        return None
    lines = text[: found.start()].split("\n")
    # walk back to the first line of the contiguous block of fields
    start = found.start()
    for line in reversed(lines[:-1]):
        if not (_FIELD_LINE.match(line) or line[:1] in (" ", "\t")) or not line.strip():
            break
        start -= len(line) + 1
    fields = HeaderParser().parsestr(text[start:], headersonly=True)
    present = {k.lower() for k in fields}
    if "feedback-type" in present and present & _OTHER_ARF_FIELDS:
        return fields
    return None


def parts_of(msg: Message) -> Iterator[Message]:
    """The leaf parts of a multipart message, in order, not descending into
    attached messages (``message/*`` parts are yielded whole)."""
    stack = [msg]  # no recursion: the depth of a hostile message is not ours to choose
    while stack:
        part = stack.pop()
        payload = part.get_payload()
        if not part.is_multipart() or part.get_content_maintype() == "message":
            yield part
        elif isinstance(payload, list):
            stack.extend(sub for sub in reversed(payload) if isinstance(sub, Message))


def _from_fields(fields: Message) -> Complaint:
    kind = _header(fields, "Feedback-Type").lower().split()
    complaint = Complaint(feedback_type=kind[0] if kind else DEFAULT_FEEDBACK_TYPE)
    complaint.source_ip = valid_ip(_header(fields, "Source-IP"))
    complaint.original_mail_from = _address(_header(fields, "Original-Mail-From"))
    complaint.original_rcpt_to = [
        a for a in (_address(v) for v in _all(fields, "Original-Rcpt-To")) if a
    ]
    complaint.reported_domain = [
        d.strip().lower().rstrip(".")
        for v in _all(fields, "Reported-Domain")
        for d in v.split(",")
        if d.strip()
    ]
    complaint.arrival_date = parse_date(
        _header(fields, "Arrival-Date") or _header(fields, "Received-Date")
    )
    complaint.user_agent = _header(fields, "User-Agent")
    complaint.auth_failure = _header(fields, "Auth-Failure").lower()
    return complaint


def _is_microsoft_style(msg: Message, reported: Message) -> bool:
    if _header(reported, "X-HmXmrOriginalRecipient"):
        return True
    return bool(_SUBJECT_IP.search(_header(msg, "Subject")))


def _reported_message(msg: Message) -> Message | None:
    """The reported message (or its headers) attached to the report."""
    if not msg.is_multipart():
        return None
    for part in parts_of(msg):
        if part.get_content_type() not in _REPORTED_TYPES:
            continue
        return _as_headers(part) if part.get_content_maintype() == "text" else _as_message(part)
    return None


def _as_message(part: Message) -> Message | None:
    """The message inside a ``message/*`` part, decoding a (non-standard) transfer encoding."""
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    payload = part.get_payload()
    if cte in ("base64", "quoted-printable"):
        raw = part.get_payload(decode=True)
        if isinstance(raw, bytes):
            try:
                return read_structure(raw, MAX_MIME_PARTS, MAX_MIME_DEPTH)
            except (ParseError, RecursionError):  # more parts than a message may have
                return None
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):
        return HeaderParser().parsestr(payload.lstrip("\r\n"))
    return None


def _as_headers(part: Message) -> Message | None:
    if part.get_content_maintype() == "message":
        return _as_message(part)
    return header_block(_text(part).lstrip("\r\n"))


def _text(part: Message) -> str:
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, errors="replace")
    except (LookupError, ValueError):  # an unknown name, "idna", a NUL in the name
        return raw.decode("utf-8", errors="replace")


def _stated_ip(msg: Message) -> str:
    """The sending IP the reporter states in words: subject, then the human-readable part."""
    found = _SUBJECT_IP.search(_header(msg, "Subject"))
    if found and valid_ip(found.group(1)):
        return valid_ip(found.group(1))
    if msg.is_multipart():
        for part in parts_of(msg):
            if part.get_content_type() in _REPORTED_TYPES:
                break  # the reported message's own text says nothing about its sender
            if part.get_content_type() == "text/plain":
                found = _TEXT_IP.search(_text(part))
                if found and valid_ip(found.group(1)):
                    return valid_ip(found.group(1))
                break
    return ""


# -- Received headers --------------------------------------------------------------------------

#: the "from" clause of a Received header, up to "by"
_FROM_CLAUSE = re.compile(r"^\s*from\s+(.*?)(?:\s+by\s+|;|$)", re.I | re.S)
_BRACKETED = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
_PARENTHESISED = re.compile(r"\(\s*(?:[^()\s]+\s+)?([0-9]{1,3}(?:\.[0-9]{1,3}){3})\s*\)")
#: networks that are a provider's own relays, never the sender on the internet
_INTERNAL = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "::/128",
    )
]


def connecting_ip(reported: Message) -> str:
    """The IP that connected to the receiving provider, read from ``Received`` headers.

    Heuristic: the receiving provider adds the top-most ``Received`` headers; the
    first one (top-down) whose ``from`` clause names an IP that is not an
    internal address (RFC 1918, loopback, link-local, CGNAT, IPv6 ULA) is the
    hop where our message entered the provider, and that IP is the sender. The
    IP is read from ``from host ([1.2.3.4])``, ``[IPv6:2001:db8::1]`` or
    qmail's ``(1.2.3.4)``. When every hop is internal, the first IP found is
    returned; "" when no Received header names an IP.
    """
    fallback = ""
    for value in _all(reported, "Received"):
        clause = _FROM_CLAUSE.match(" ".join(value.split()))
        if not clause:
            continue
        text = clause.group(1)
        for candidate in _BRACKETED.findall(text) + _PARENTHESISED.findall(text):
            ip = valid_ip(candidate)
            if not ip:
                continue
            if not any(ipaddress.ip_address(ip) in net for net in _INTERNAL):
                return ip
            fallback = fallback or ip
    return fallback


def valid_ip(value: str) -> str:
    """``value`` as a normalised IP address (brackets, ``IPv6:`` prefix and an
    IPv4-mapped IPv6 form removed), or "" when it is not one."""
    text = value.strip().strip("[]<>").strip()
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def parse_date(value: str) -> dt.datetime | None:
    """An aware datetime from an RFC 5322 date (UTC when it names no zone); None if
    unreadable or outside the years 1970-9999 (a huge year or hour is not an error)."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    return bounded_date(parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC))


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a malformed header under a strict policy: treat as absent
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _all(msg: Message, name: str) -> list[str]:
    try:
        values = msg.get_all(name) or []
    except Exception:
        return []
    return [" ".join(str(v).split()) for v in values]


def _address(value: str) -> str:
    """The bare address in ``<a@b>`` / ``Name <a@b>`` / ``a@b``; "" for an empty one."""
    value = value.strip()
    if not value or value == "<>":
        return ""
    return bare_address(value) or value.strip("<>").strip()

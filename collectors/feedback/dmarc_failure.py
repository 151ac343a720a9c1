"""DMARC failure (forensic, ruf) reports: RFC 6591 and DMARCbis (RFC 9991).

A failure report is an ARF report with ``Feedback-Type: auth-failure``; it is
read by :func:`collectors.feedback.arf.parse_arf`, which keeps ``Auth-Failure``,
``Reported-Domain``, ``Source-IP``, ``Original-Mail-From`` / ``-Rcpt-To`` and
the arrival date. The other RFC 6591 fields (``Identity-Alignment``,
``Delivery-Result``, ``DKIM-Domain`` / ``-Selector``, ``SPF-DNS``,
``Authentication-Results``) go to :attr:`Complaint.report_fields`.

Some MTAs (Exim's DMARC module among them) send a plain-text notice instead:
"A message claiming to be from you has failed the published DMARC policy",
``Sender Domain:`` / ``Sender IP Address:`` lines, then a copy of the
headers. Those are read too, as an ``auth-failure`` complaint with
``auth_failure="dmarc"``.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser

from collectors.feedback.arf import (
    connecting_ip,
    feedback_fields,
    parse_arf,
    parse_date,
    parts_of,
    valid_ip,
)
from collectors.feedback.model import Complaint

__all__ = ["FAILURE_FIELDS", "parse_dmarc_failure"]

#: RFC 6591 section 3.1 fields kept on the complaint (the rest are ARF's own)
FAILURE_FIELDS = (
    "delivery-result",
    "identity-alignment",
    "dkim-domain",
    "dkim-identity",
    "dkim-selector",
    "dkim-canonicalized-header",
    "spf-dns",
    "authentication-results",
)

_SUBJECT = re.compile(r"\bDMARC\b.*\b(failure|forensic)\b", re.I)
#: how failure notices say it; a bounce quoting "DMARC=fail" in a diagnostic is not one
_BODY = re.compile(
    r"\bfailed\s+(?:the\s+)?(?:published\s+)?DMARC\s+polic"
    r"|\bdid\s+not\s+(?:meet|pass)\s+the\s+(?:sending\s+domain'?s\s+)?DMARC\s+polic"
    r"|\bDMARC\s+(?:failure|forensic)\s+report\b",
    re.I,
)
_SENDER_IP = re.compile(
    r"^\s*(?:Sender\s+IP(?:\s+Address)?|Source[\s-]IP)\s*:\s*(\S+)", re.I | re.M
)
_SUBJECT_IP = re.compile(r"\b(?:from\s+IP|ip)\s*[:=]?\s*\[?([0-9A-Fa-f:.]+[0-9A-Fa-f])", re.I)
_SENDER_DOMAIN = re.compile(r"^\s*(?:Sender|Reported|From)\s+Domain\s*:\s*(\S+)", re.I | re.M)
_RECEIVED_DATE = re.compile(r"^\s*(?:Received|Arrival)[\s-]Date\s*:\s*(.+)$", re.I | re.M)
#: the first line of the copied headers in a plain-text report
_HEADERS_START = re.compile(r"^(?:Received|Return-Path|From|Date|Message-ID):", re.I | re.M)


def parse_dmarc_failure(msg: Message) -> Complaint | None:
    """The failure report in ``msg`` as a :class:`Complaint`, or None.

    None when the message is not a DMARC failure report (including an ARF
    report of another feedback type, which :func:`parse_arf` handles as a
    complaint). ``feedback_type`` is always ``auth-failure``.
    """
    fields = feedback_fields(msg)
    if fields is not None:
        complaint = parse_arf(msg)
        if complaint is None:
            return None
        if complaint.feedback_type != "auth-failure" and not complaint.auth_failure:
            return None
        complaint.feedback_type = "auth-failure"
        complaint.report_fields = {
            name: " ".join(str(fields.get(name, "")).split())
            for name in FAILURE_FIELDS
            if fields.get(name)
        }
        return complaint
    return _plain_text_report(msg)


def _plain_text_report(msg: Message) -> Complaint | None:
    if any(p.get_content_type() == "message/delivery-status" for p in parts_of(msg)):
        return None  # a bounce, whatever its text says about DMARC
    subject = " ".join(str(msg.get("Subject", "")).split())
    text = _first_text(msg)
    if not (_SUBJECT.search(subject) or _BODY.search(text[:2000])):
        return None
    if not text:
        return None
    complaint = Complaint(feedback_type="auth-failure", auth_failure="dmarc")
    stated = _SENDER_IP.search(text)
    if stated:
        complaint.source_ip = valid_ip(stated.group(1))
    if not complaint.source_ip:
        in_subject = _SUBJECT_IP.search(subject)
        complaint.source_ip = valid_ip(in_subject.group(1)) if in_subject else ""
    domain = _SENDER_DOMAIN.search(text)
    if domain:
        complaint.reported_domain = [domain.group(1).lower().rstrip(".")]
    date = _RECEIVED_DATE.search(text)
    if date:
        complaint.arrival_date = parse_date(date.group(1))
    complaint.original = _copied_headers(msg, text)
    if not complaint.source_ip and complaint.original is not None:
        complaint.source_ip = connecting_ip(complaint.original)
    return complaint


def _first_text(msg: Message) -> str:
    for part in parts_of(msg):
        if part.get_content_type() == "text/plain":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                try:
                    return raw.decode(part.get_content_charset() or "utf-8", errors="replace")
                except (LookupError, ValueError):  # an unknown or unusable charset name
                    return raw.decode("utf-8", errors="replace")
    return ""


def _copied_headers(msg: Message, text: str) -> Message | None:
    """The reported message's headers: an attached part, else those pasted in the text."""
    for part in parts_of(msg):
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if part.get_content_type() in ("text/rfc822-headers", "text/rfc822-header"):
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                return HeaderParser().parsestr(raw.decode("utf-8", errors="replace"))
    start = _HEADERS_START.search(text)
    if not start:
        return None
    return HeaderParser().parsestr(text[start.start() :], headersonly=True)

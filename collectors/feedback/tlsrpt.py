"""SMTP TLS reports (TLSRPT, RFC 8460): JSON, usually gzip-compressed, attached to an email.

:func:`extract_tls_report` finds the report in a message; :func:`parse_tls_report_bytes`
reads it. The same limits as DMARC reports apply: at most
:data:`~collectors.feedback.dmarc_aggregate.MAX_REPORT_BYTES` after decompression,
read incrementally, within the message's
:class:`~collectors.feedback.limits.ExtractionBudget`; session counts within
:func:`~collectors.feedback.limits.count`; JSON without ``NaN`` / ``Infinity``.
Errors raise :class:`ParseError` with the reason.
"""

from __future__ import annotations

import datetime as dt
import json
from email.message import Message
from typing import Any

from checks.errors import ParseError
from collectors.feedback.dmarc_aggregate import (
    MAX_REPORT_BYTES,
    report_parts,
    sniff,
    unpack,
    unpack_part,
)
from collectors.feedback.limits import MAX_COUNT, ExtractionBudget, bounded_date, count
from collectors.feedback.model import TlsPolicyResult, TlsReport

__all__ = ["MAX_REPORT_BYTES", "extract_tls_report", "parse_tls_report_bytes"]

_GENERIC_TYPES = (
    "application/gzip",
    "application/x-gzip",
    "application/json",
    "application/octet-stream",
    "text/json",
    "text/plain",
)


def extract_tls_report(msg: Message, budget: ExtractionBudget | None = None) -> bytes | None:
    """The decompressed JSON of the TLS report a message carries, or None.

    A part qualifies when its type is ``application/tlsrpt+gzip`` /
    ``application/tlsrpt+json`` (or any ``application/tlsrpt*``), or when a
    gzip / JSON / octet-stream / plain-text part holds, by its magic bytes,
    gzip or a JSON object naming ``organization-name`` or ``policies``. Raises
    :class:`ParseError` when a qualifying part cannot be unpacked or the
    message's ``budget`` is spent (the DMARC extractor's, so that a part it
    inflated already is not inflated again).
    """
    budget = budget or ExtractionBudget()
    for part in report_parts(msg):
        ctype = part.get_content_type()
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        if ctype.startswith("application/tlsrpt"):
            return unpack_part(part, payload, budget)
        if ctype not in _GENERIC_TYPES:
            continue
        kind = sniff(payload)
        if kind == "raw":
            if _looks_like_report(payload[:4096]):
                return unpack(payload)
            continue
        if kind == "gzip" or ctype != "text/plain":
            data = unpack_part(part, payload, budget)
            if _looks_like_report(data[:4096]):
                return data
    return None


def _looks_like_report(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"{") and (b"organization-name" in head or b"policies" in head)


def parse_tls_report_bytes(data: bytes, budget: ExtractionBudget | None = None) -> TlsReport:
    """The report in ``data`` (JSON, or gzip / zip of it).

    Raises :class:`ParseError` when the data is over the size cap or the
    ``budget``, is not JSON (``NaN``, ``Infinity`` and numbers past the float
    range included) or nested too deeply, is not a TLS report (no ``policies``
    list), or has a session count that is not an integer from 0 to
    :data:`~collectors.feedback.limits.MAX_COUNT`. Missing optional members
    (``contact-info``, ``sending-mta-ip`` ...) are tolerated; dates that are not
    RFC 3339, or not in the years 1970-9999, become None. A failure detail keeps
    its members that are strings, numbers, booleans or null (RFC 8460 defines no
    other); nested objects and lists in it are dropped.
    """
    text = unpack(data, budget)
    try:
        doc = json.loads(text.decode("utf-8-sig"), parse_constant=_no_constant, parse_float=_finite)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ParseError(f"TLS report is not JSON: {exc}") from exc
    except RecursionError:
        raise ParseError("TLS report is not JSON: nested too deeply") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("policies"), list):
        raise ParseError("not a TLS report: no 'policies' list")
    date_range = doc.get("date-range")
    if not isinstance(date_range, dict):
        date_range = {}
    return TlsReport(
        organization_name=_str(doc.get("organization-name")),
        report_id=_str(doc.get("report-id")),
        begin=_rfc3339(date_range.get("start-datetime")),
        end=_rfc3339(date_range.get("end-datetime")),
        policies=[_policy(p, n) for n, p in enumerate(doc["policies"], start=1)],
    )


def _policy(item: Any, n: int) -> TlsPolicyResult:
    if not isinstance(item, dict):
        raise ParseError(f"policy {n} is not an object")
    policy = _object(item.get("policy"))
    summary = _object(item.get("summary"))
    details = item.get("failure-details")
    return TlsPolicyResult(
        policy_type=_str(policy.get("policy-type")).lower(),
        policy_domain=_str(policy.get("policy-domain")).lower().rstrip("."),
        successful=_count(summary.get("total-successful-session-count"), n, "successful"),
        failed=_count(summary.get("total-failure-session-count"), n, "failure"),
        failure_details=[
            _detail(d, n)
            for d in (details if isinstance(details, list) else [])
            if isinstance(d, dict)
        ],
    )


def _detail(item: dict[str, Any], n: int) -> dict[str, object]:
    """A failure detail's scalar members (a number only within ±MAX_COUNT);
    ``failed-session-count`` checked as a count."""
    out: dict[str, object] = {
        str(k): v
        for k, v in item.items()
        if v is None
        or isinstance(v, str)
        or (isinstance(v, int | float) and -MAX_COUNT <= v <= MAX_COUNT)
        or k == "failed-session-count"
    }
    if "failed-session-count" in out:
        out["failed-session-count"] = count(
            out["failed-session-count"], f"policy {n}: failed-session-count"
        )
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any, n: int, what: str) -> int:
    if value is None:
        return 0
    return count(value, f"policy {n}: total {what} session count")


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _rfc3339(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return bounded_date(parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC))

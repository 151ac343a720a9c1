"""One message or file in, its abuse reports out: :func:`parse_abuse`.

What the bytes are is sniffed, not taken from the name: gzip and zip (opened, bounded,
and each member sniffed in turn), JSON (X-ARF, threat indicators), XML (ACNS, Safe
Browsing), a bare X-ARF 0.x report part, an e-mail, a CSV, or plain text. In an e-mail
the readers are tried from the most to the least structured, and the first that finds
something gives the report:

1. X-ARF JSON attachments, 2. X-ARF 0.x report parts, 3. ACNS notices, 4. CSV
attachments (zipped or not; AbuseHUB's own CSV wins over the Shadowserver copy beside
it), 5. ARF feedback reports (``kind: complaint``), 6. threat-indicator JSON,
7. the templates of big reporters (reporters.py), 8. free text (freetext.py).

Unreadable input raises :class:`ParseError` naming the reason; a readable e-mail always
gives a report, flagged ``needs_review`` when nothing in it could be classified.
"""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import collectors.abuse.acns as acns
import collectors.abuse.classify as classify
import collectors.abuse.freetext as freetext
import collectors.abuse.reporters as reporters
import collectors.abuse.senders as senders
import collectors.abuse.shadowserver as shadowserver
import collectors.abuse.xarf as xarf
from checks.errors import ParseError
from collectors.abuse.archive import Bounded, gunzip, is_gzip, is_zip, zip_members
from collectors.abuse.extract import redact
from collectors.abuse.mail import Attachment, MailView, decode_bytes, read_mail
from collectors.abuse.model import REVIEW_THRESHOLD, AbuseReport
from collectors.feedback.arf import connecting_ip, parse_arf

__all__ = ["MAX_INPUT_BYTES", "parse_abuse"]

log = logging.getLogger("repmon.abuse")

#: a message or file larger than this is refused (the sink's own limit is lower)
MAX_INPUT_BYTES = 64 * 1024 * 1024
#: archives inside archives (a .csv.zip inside a mail is depth 1)
_MAX_DEPTH = 3
#: JSON or text attachments larger than this are not parsed as reports
_MAX_DOCUMENT = 8 * 1024 * 1024
_PEEK = 64 * 1024
_MAIL_HEADERS = {
    b"from", b"to", b"subject", b"date", b"received", b"return-path", b"message-id",
    b"mime-version", b"content-type", b"delivered-to", b"reply-to", b"sender",
    b"x-original-to", b"x-account-key", b"x-uidl", b"dkim-signature", b"resent-to",
}  # fmt: skip
_HEADER = re.compile(rb"^([A-Za-z][A-Za-z0-9_-]{0,76})[ \t]*:")


def parse_abuse(raw: bytes, filename: str | None = None) -> list[AbuseReport]:
    """The abuse reports in one message or file (usually one report).

    ``filename`` helps where the name carries meaning (a Shadowserver CSV's report type)
    but never decides the format. Raises ParseError for empty, oversized, binary or
    otherwise unreadable input, with the reason.
    """
    if not raw or not raw.strip():
        raise ParseError("empty input")
    if len(raw) > MAX_INPUT_BYTES:
        raise ParseError(f"input of {len(raw)} bytes exceeds {MAX_INPUT_BYTES} bytes")
    try:
        reports = _blob(raw, filename or "", depth=0)
    except ParseError:
        raise
    except RecursionError:
        raise ParseError("input nests too deeply to read") from None
    except Exception as exc:  # a parser bug must quarantine the input, not stop the caller
        log.exception("unexpected error reading %s", filename or "an abuse report")
        raise ParseError(f"internal error reading the input: {exc.__class__.__name__}") from None
    return [report.finish() for report in reports]


def _blob(raw: bytes, name: str, depth: int, hint: str = "") -> list[AbuseReport]:
    """The reports in ``raw``; ``hint`` is the subject of the mail that carried it."""
    if depth > _MAX_DEPTH:
        raise ParseError(f"{name or 'input'}: archives nested more than {_MAX_DEPTH} deep")
    if is_gzip(raw):
        return _stream(gunzip(raw, name or "gzip"), re.sub(r"\.gz$", "", name), depth + 1, hint)
    if is_zip(raw):
        found = [
            r
            for member, stream in zip_members(raw, name or "zip")
            for r in _stream(stream, member, depth + 1, hint)
        ]
        if not found:
            raise ParseError(f"{name or 'zip'}: the archive holds no report")
        return found
    head = raw[:_PEEK].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in (b"{", b"["):
        return _json_file(raw, name)
    if head[:1] == b"<":
        return _xml_file(decode_bytes(raw), name)
    if _binary(head):
        raise ParseError(f"{name or 'input'}: binary data, not an abuse report")
    text = decode_bytes(raw)
    part = xarf.read_xarf0(text) if not _looks_like_mail(head, strict=True) else None
    if part is not None:
        return [xarf.report_from_xarf0([part])]
    if _looks_like_mail(head):
        return [_mail(raw, depth)]
    if name.lower().endswith(".csv") or shadowserver.looks_like_csv(text):
        return [shadowserver.parse_csv(io.BytesIO(raw), name, hint)]
    return [_plain_text(text, name)]


def _stream(stream: Bounded, name: str, depth: int, hint: str = "") -> list[AbuseReport]:
    """An archive member: CSVs are parsed as they stream, anything else is read (bounded)."""
    buffered = io.BufferedReader(stream, buffer_size=_PEEK)
    head = buffered.peek(_PEEK)[:_PEEK]
    if name.lower().endswith(".csv") or (
        not is_gzip(head)
        and not is_zip(head)
        and not _binary(head)
        and shadowserver.looks_like_csv(decode_bytes(head))
    ):
        return [shadowserver.parse_csv(buffered, name, hint)]
    data = buffered.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise ParseError(f"{name}: archive member larger than {MAX_INPUT_BYTES} bytes")
    if not data.strip():
        raise ParseError(f"{name}: empty archive member")
    return _blob(data, name, depth, hint)


def _binary(head: bytes) -> bool:
    sample = head[:4096]
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
        return False
    except UnicodeDecodeError as exc:
        if exc.start > len(sample) - 4:  # a character cut by the sample's end
            return False
    controls = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return controls > len(sample) // 20


def _looks_like_mail(head: bytes, strict: bool = False) -> bool:
    """A header block at the start: two or more fields, one of them a mail header (strict:
    one that only mails have, so that a bare X-ARF part with a Date is not a mail)."""
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    if lines[0].startswith(b"From "):  # an mbox envelope line
        return True
    names: list[bytes] = []
    for line in lines[:60]:
        if not line.strip():
            break
        found = _HEADER.match(line)
        if found:
            names.append(found.group(1).lower())
        elif line[:1] not in (b" ", b"\t"):
            break  # a broken header line ends the block; what came before still counts
    known = set(names) & (_MAIL_HEADERS - ({b"date"} if strict else set()))
    return len(names) >= 2 and bool(known)


# -- bare files --------------------------------------------------------------------------------


def _json_file(raw: bytes, name: str) -> list[AbuseReport]:
    doc = _load_json(raw, name)
    items = doc if isinstance(doc, list) else [doc]
    found = [r for item in items[:1000] if (r := _json_report(item)) is not None]
    if not found:
        raise ParseError(f"{name or 'JSON'}: neither an X-ARF report nor a threat indicator")
    return found


def _load_json(raw: bytes, name: str) -> Any:
    try:
        return json.loads(decode_bytes(raw))
    except RecursionError:
        raise ParseError(f"{name or 'JSON'}: nested too deeply") from None
    except ValueError as exc:
        raise ParseError(f"{name or 'JSON'}: not valid JSON: {exc}") from None


def _json_report(doc: Any) -> AbuseReport | None:
    if xarf.is_xarf_json(doc):
        return xarf.report_from_json(doc)
    return reporters.threat_indicator(doc)


def _xml_file(text: str, name: str) -> list[AbuseReport]:
    notices = acns.find_notices(text)
    if notices:
        report = acns.report_from_notices(notices)
        _name_reporter(report)
        return [report]
    browsing = reporters.safe_browsing(text)
    if browsing is not None:
        return [browsing]
    raise ParseError(f"{name or 'XML'}: neither an ACNS notice nor a Safe Browsing report")


def _plain_text(text: str, name: str) -> AbuseReport:
    found = freetext.examine(freetext.TextInput(body=text))
    verdict = classify.from_keywords("", text)
    if not found.ips and not found.urls and verdict is classify.UNKNOWN:
        raise ParseError(f"{name or 'text'}: no abuse report found (no address, URL or category)")
    return _from_findings(found, verdict, "free-text")


# -- e-mail --------------------------------------------------------------------------------------


def _mail(raw: bytes, depth: int) -> AbuseReport:
    view = read_mail(raw)
    known = senders.identify(view)
    report = (
        _structured(view, depth)
        or _complaint(view)
        or _indicator(view)
        or reporters.from_layout(view)
        or _free_text(view, known)
    )
    if report.confidence < REVIEW_THRESHOLD and view.embedded and depth < _MAX_DEPTH:
        report = _forwarded(view, depth) or report
    report.subject = report.subject or view.subject
    report.reported_at = report.reported_at or view.date
    if known is not None and (not report.reporter or "." in report.reporter):
        report.reporter = known.name
    agent = report.extra.get("user_agent", "")
    report.reporter = report.reporter or senders.reporter_label(view, known, agent)
    return report


def _structured(view: MailView, depth: int) -> AbuseReport | None:
    for attachment in view.attachments:
        doc = _attached_json(attachment)
        if doc is not None and xarf.is_xarf_json(doc):
            return _in_mail(xarf.report_from_json(doc))
    parts = [f for text in _texts(view) if (f := xarf.read_xarf0(text)) is not None]
    if parts:
        # the letter around the report names the address of a reported URL
        stated = freetext.stated_ips(view.subject, view.texts, view.relay_ips)
        report = xarf.report_from_xarf0(parts, stated, _evidence(view))
        _name_reporter(report)
        return _in_mail(report)
    notices = [n for text in _texts(view, xml=True) for n in acns.find_notices(text)]
    if notices:
        report = acns.report_from_notices(notices)
        _name_reporter(report)
        return _in_mail(report)
    return _csv_report(view, depth)


def _texts(view: MailView, xml: bool = False) -> list[str]:
    """The body texts, then the attachments that are text (X-ARF parts are often sent as
    application/octet-stream), each up to _MAX_DOCUMENT."""
    kinds = ("text/", "application/octet-stream") + (("application/xml",) if xml else ())
    extra = [
        a.text()
        for a in view.attachments
        if a.content_type.startswith(kinds)
        and len(a.data) <= _MAX_DOCUMENT
        and not _binary(a.data[:4096])
    ]
    return view.texts + extra


def _attached_json(attachment: Attachment) -> Any:
    """The JSON document in a ``.json``/``.json.gz`` attachment, or None."""
    name = attachment.name.lower()
    data = attachment.data
    if is_gzip(data) and (name.endswith(".json.gz") or "json" in attachment.content_type):
        data = gunzip(data, attachment.name).read_all(_MAX_DOCUMENT)
    elif not (name.endswith(".json") or "json" in attachment.content_type):
        return None
    if len(data) > _MAX_DOCUMENT:
        return None
    try:
        return _load_json(data, attachment.name)
    except ParseError:
        return None


def _csv_report(view: MailView, depth: int) -> AbuseReport | None:
    found: list[AbuseReport] = []
    for attachment in view.attachments:
        name = attachment.name.lower()
        if is_zip(attachment.data) or is_gzip(attachment.data):
            if ".csv" not in name and "csv" not in attachment.content_type:
                continue
            for report in _blob(attachment.data, attachment.name, depth + 1, view.subject):
                report.format += "-zip" if is_zip(attachment.data) else "-gz"
                found.append(report)
        elif name.endswith(".csv") or attachment.content_type in ("text/csv", "application/csv"):
            found.append(
                shadowserver.parse_csv(io.BytesIO(attachment.data), attachment.name, view.subject)
            )
    if not found:
        return None
    hub = [r for r in found if r.format.startswith("abusehub")]
    return _in_mail((hub or found)[0])


def _complaint(view: MailView) -> AbuseReport | None:
    try:
        complaint = parse_arf(view.msg)
    except Exception:  # the feedback parser's own failure must not lose the mail
        return None
    if complaint is None:
        return None
    verdict = classify.from_arf(complaint.feedback_type)
    report = AbuseReport(
        verdict.category, verdict.confidence, verdict.reason, "arf", kind="complaint"
    )
    if complaint.source_ip:
        report.add_ip(complaint.source_ip)
    for domain in complaint.reported_domain:
        report.add_url(domain)
    report.reported_at = complaint.arrival_date
    original = complaint.original
    if original is not None:
        shown = [
            f"{h}: {original.get(h, '')}" for h in ("From", "Subject", "Date") if original.get(h)
        ]
        report.excerpt = redact("\n".join(shown))
    labels = {"feedback_type": complaint.feedback_type, "user_agent": complaint.user_agent}
    report.extra = {k: v for k, v in labels.items() if v}
    when = complaint.arrival_date.isoformat() if complaint.arrival_date else ""
    report.add_incident({"ip": complaint.source_ip, "type": complaint.feedback_type, "time": when})
    return report


def _indicator(view: MailView) -> AbuseReport | None:
    for attachment in view.attachments:
        doc = _attached_json(attachment)
        report = reporters.threat_indicator(doc) if doc is not None else None
        if report is not None:
            report.format = "json-gz-email" if is_gzip(attachment.data) else "json-email"
            return report
    return None


def _free_text(view: MailView, known: senders.Reporter | None) -> AbuseReport:
    source = freetext.TextInput(
        subject=view.subject,
        body=view.body,
        attachments=[t for t in _texts(view)[len(view.texts) :] if len(t) <= 65536],
        relay_ips=view.relay_ips,
        sender_domain=view.sender_domain,
        date=view.date,
    )
    found = freetext.examine(source)
    verdict = classify.from_keywords(view.subject, view.body, known.prior if known else None)
    if not found.ips and view.embedded:
        # a forwarded message: the complaint is about whoever sent it to the reporter
        sender = connecting_ip(view.embedded[0])
        if sender:
            found.ips.append(sender)
            if verdict.category == "other":
                verdict = classify.Verdict(
                    "spam", 0.55, "forwards a message and names no other category"
                )
    return _from_findings(
        found, verdict, "free-text-table" if found.how == "table" else "free-text"
    )


def _from_findings(found: freetext.Findings, verdict: classify.Verdict, fmt: str) -> AbuseReport:
    report = AbuseReport(verdict.category, verdict.confidence, verdict.reason, fmt)
    for ip in found.ips:
        report.add_ip(ip)
    for url in found.urls:
        report.add_url(url)
    report.count = found.count
    report.reported_at = found.reported_at
    report.excerpt = found.excerpt
    for row in found.rows:
        report.add_incident(row)
    return report


def _forwarded(view: MailView, depth: int) -> AbuseReport | None:
    """A report forwarded as an attachment (a colleague's "fyi"): the inner one, if it is
    more certain than what the outer text says."""
    try:
        inner = _mail(view.embedded[0].as_bytes(), depth + 1)
    except Exception:  # an attached message that cannot be re-serialised: keep the outer
        return None
    return inner if inner.confidence >= REVIEW_THRESHOLD else None


def _evidence(view: MailView) -> str:
    """Log lines attached beside an X-ARF report (``logfile.log`` and alike)."""
    for attachment in view.attachments:
        if "log" in attachment.name.lower() and not _binary(attachment.data[:4096]):
            return attachment.text()[:1500]
    return ""


def _name_reporter(report: AbuseReport) -> None:
    known = senders.by_domain(report.reporter)
    if known is not None:
        report.reporter = known.name


def _in_mail(report: AbuseReport) -> AbuseReport:
    report.format += "-email"
    return report

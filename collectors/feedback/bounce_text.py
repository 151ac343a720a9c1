"""Non-standard bounces: the failure is written for humans and must be read from the text.

qmail, old Exchange and Lotus Notes, Yahoo, Exim / Postfix / Sendmail without a DSN part, and
many others. The failed recipients come from ``flufl.bounce`` (which knows many formats) and from
our own reading of the report text (the part before the returned message); the status, reply code
and diagnostic come from the lines around each address.

A message counts as a bounce only when it comes from a mail system (MAILER-DAEMON, postmaster,
an empty envelope sender) or carries a bounce subject, *and* its body says that delivery failed.
Auto-replies (RFC 3834 ``Auto-Submitted: auto-replied`` from a person, vacation and out-of-office
subjects) are not bounces even when they quote a failure-like phrase.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from typing import Any

from flufl.bounce import all_failures

from collectors.feedback.dsn import (
    find_original,
    normalise_status,
    part_text,
    repair_multipart,
)
from collectors.feedback.limits import (
    MAX_BOUNCE_RECIPIENTS,
    MAX_DIAGNOSTIC_CHARS,
    MAX_FLUFL_CHARS,
    MAX_FLUFL_LINE_COST,
    MAX_FLUFL_LINES,
    MAX_REPORT_TEXT_CHARS,
    MAX_SUBJECT_CHARS,
)
from collectors.feedback.model import Bounce, BouncedRecipient

ADDRESS = re.compile(
    r"(?:\"[^\"\s@]{1,64}\"|[A-Za-z0-9!#$%&'*+/=?^_`{|}~-][A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{0,63})"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*"
)
REPLY = re.compile(r"(?<![\d.:#/-])([45][0-5]\d)(?=[ -]|$)", re.M)

_DAEMON = re.compile(
    r"mailer-daemon|mailerdaemon|mail[ _-]?delivery|postmaster|post_master|mail ?administrator|"
    r"mailadmin|mail ?system|\bmta\b|daemon",
    re.I,
)
_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status notification|failure|failed|problem|report|"
    r"notification|has failed|error)|failure notice|returned mail|mail delivery failed|"
    r"could not be delivered|non-?delivery|nondeliverable|not delivered|delivery fail|"
    r"failed delivery|returned to sender|mail system error|rejected|warning: could not|"
    r"delivery notification|message delayed|delayed mail|mail failure|bounce|"
    r"unable to deliver|delivery unsuccessful|error sending|permanent error|"
    r"message you sent|mail not delivered|delivery_failure|mail could not|failed mail|"
    r"mail failed|processing error|returned message",
    re.I,
)
_BODY = re.compile(
    r"could not be delivered|couldn't be delivered|was not delivered|undeliver|"
    r"permanent(?:ly)? (?:error|fatal|failure|failed)|delivery (?:to the following|has failed|"
    r"failed|failure|problem|status)|failed (?:to deliver|recipient|permanently|address)|"
    r"unable to deliver|wasn't able to deliver|not able to deliver|delivery attempts? |"
    r"user unknown|unknown user|no such user|does not exist|mailbox (?:unavailable|full|"
    r"not found)|(?:host|domain) (?:not found|unknown)|rejected|550[ -]|554[ -]|553[ -]|"
    r"transcript of session|this is the mail system|qmail-send|following address|"
    r"following recipient|returned to sender|message delayed|not yet been delivered|"
    r"retry|giving up|over quota|quota exceeded|deliver(?:y|ed) .{0,40}fail|"
    r"could not deliver|bounced|delivery to .{0,80} failed|non-?delivery|"
    r"error (?:delivering|occurred while)|did not reach|not reach|smtp error|"
    r"been returned|\b[45]\.\d{1,3}\.\d{1,3}\b",
    re.I,
)
_AUTO_REPLY_SUBJECT = re.compile(
    r"out of (?:the )?office|auto(?:matic)?[ -]?(?:reply|response|antwort|respon)|"
    r"^\s*auto:|vacation|abwesen|absence|away from|on leave|autoreply|"
    r"automatyczna|r[eé]ponse automatique|risposta automatica|respuesta autom",
    re.I,
)
_DELAY = re.compile(
    r"will (?:be )?(?:retr|continue|keep tr)|still (?:be )?trying|not yet been delivered|"
    r"has been delayed|delivery (?:is )?delayed|warning: message|will try again|"
    r"no action is required",
    re.I,
)
_GIVEN_UP = re.compile(
    r"gave up|giving up|permanent|failed permanently|expired|"
    r"could not be delivered",
    re.I,
)
# Where the report ends and the returned message begins.
_ORIGINAL_MARKER = re.compile(
    r"^[ \t>|]*[-=_*]*[ \t]*(?:original message|unsent message|returned message|"
    r"(?:this is )?a copy of (?:the|your) (?:original )?message|below (?:this line )?is a copy|"
    r"message headers follow|headers of the original|(?:the )?original message (?:headers?|"
    r"follows)|undelivered message|the header of the original|your message reads|"
    r"text of your message|content of the original|original-message|returned mail follows|"
    r"the message (?:you sent )?(?:follows|begins)|--- ?message text)",
    re.I | re.M,
)
_HEADER_START = re.compile(
    r"^(?:Received|Return-Path|From|Message-ID|Date|Subject|"
    r"DKIM-Signature|Delivered-To|MIME-Version):",
    re.M | re.I,
)
# Lines whose addresses are never the failed recipient.
_NOISE_LINE = re.compile(
    r"^\s*(?:from|sender|reply-to|return-path|message-id|in-reply-to|references|errors-to|"
    r"received|x-[\w-]+|date|subject|dkim-signature|list-[\w-]+|content-[\w-]+)\s*:|"
    r"envelope-from|\bid <|message-id|assistance|please contact|questions|inquir",
    re.I,
)
_URL = re.compile(r"(?:https?://|mailto:)\S*", re.I)
# Message-IDs that lost their angle brackets: a long run of hex digits and dots.
_MESSAGE_ID = re.compile(r"^[0-9a-f.$_-]{20,}@", re.I)
_NOT_RECIPIENT = re.compile(
    r"^(?:mailer-daemon|postmaster|root|abuse|noreply|no-reply|"
    r"double-bounce|bounce[s]?)@",
    re.I,
)
_FORMATS = (
    ("qmail", re.compile(r"qmail-send|qmail\b", re.I)),
    ("exim", re.compile(r"mail delivery software|exim", re.I)),
    ("postfix", re.compile(r"this is the mail system at|postfix", re.I)),
    ("sendmail", re.compile(r"transcript of session|sendmail", re.I)),
    (
        "exchange",
        re.compile(
            r"microsoft exchange|did not reach (?:some|the following)|"
            r"delivery has failed to these|outlook",
            re.I,
        ),
    ),
    ("lotus", re.compile(r"lotus|domino|notes", re.I)),
    ("yahoo", re.compile(r"yahoo", re.I)),
    ("google", re.compile(r"google|gmail", re.I)),
)


def body_text(msg: Message) -> str:
    """The human-readable text of a message, without the parts of a returned message."""
    texts: list[str] = []
    html: list[str] = []

    def visit(part: Message) -> None:
        ctype = part.get_content_type()
        if ctype.startswith("message/") or ctype in ("text/rfc822-headers",):
            return
        if part.is_multipart():
            payload = part.get_payload()
            for sub in payload if isinstance(payload, list) else []:
                if isinstance(sub, Message):
                    visit(sub)
        elif ctype == "text/plain" or part.get_content_maintype() == "" or ctype == "text/text":
            texts.append(part_text(part))
        elif ctype == "text/html":
            # "<" excluded inside a tag: a run of "<" must not cost 2000 steps each
            html.append(re.sub(r"<[^<>]{0,2000}>", " ", part_text(part)))

    visit(msg)
    return "\n".join(texts or html)


def report_section(text: str) -> tuple[str, str]:
    """Split body text into (report, returned message) at the first marker or header block.

    The report is cut to :data:`~collectors.feedback.limits.MAX_REPORT_TEXT_CHARS`: what an
    MTA writes for humans is a few kilobytes, and every reading of it is at least linear.
    """
    cut = len(text)
    m = _ORIGINAL_MARKER.search(text)
    if m:
        cut = m.start()
    # A header block starting after a blank line also ends the report (qmail, old Exchange).
    for h in _HEADER_START.finditer(text, 0, min(len(text), cut + 64)):
        if 0 < h.start() < cut and _after_blank_line(text, h.start()):
            cut = h.start()
            break
    return text[: min(cut, MAX_REPORT_TEXT_CHARS)], text[cut:]


def _after_blank_line(text: str, at: int) -> bool:
    """Whether ``text[:at]``, trailing blanks and tabs removed, ends with an empty line
    (without copying ``text[:at]``: a body of many header-like lines made that quadratic)."""
    end = at
    while end > 0 and text[end - 1] in " \t":
        end -= 1
    return end >= 2 and text[end - 2 : end] == "\n\n"


def is_auto_reply(msg: Message) -> bool:
    """True for RFC 3834 auto-responses and vacation / out-of-office messages."""
    subject = subject_of(msg)
    if _AUTO_REPLY_SUBJECT.search(subject):
        return True
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress-Sent"):
        if msg.get(name):
            return True
    precedence = str(msg.get("Precedence", "")).lower()
    auto = str(msg.get("Auto-Submitted", "")).lower()
    return "auto_reply" in precedence or "auto-replied" in auto and not _from_daemon(msg)


def _from_daemon(msg: Message) -> bool:
    # Not Return-Path: a newsletter's VERP address ("bounce-123@...") is no mail system.
    sender = " ".join(str(msg.get(h, "")) for h in ("From", "Sender"))
    return bool(_DAEMON.search(sender)) or str(msg.get("Return-Path", "")).strip() == "<>"


def subject_of(msg: Message) -> str:
    """The decoded Subject, whitespace collapsed; "" when absent or undecodable."""
    raw = msg.get("Subject")
    if raw is None:
        return ""
    try:
        text = str(make_header(decode_header(str(raw)[:MAX_SUBJECT_CHARS])))
    except (ValueError, LookupError, MessageError):  # broken encoded words, charset names
        text = str(raw)
    return " ".join(text.split())


def looks_like_bounce(msg: Message, report: str) -> bool:
    """The detection rule of the module docstring."""
    subject = subject_of(msg)
    daemon = _from_daemon(msg)
    if is_auto_reply(msg) and not (daemon and _SUBJECT.search(subject)):
        return False
    # Two of three signals: a mail-system sender, a bounce subject, a failure in the body.
    signals = daemon + bool(_SUBJECT.search(subject)) + bool(_BODY.search(report))
    return signals >= 2


def _own_addresses(msg: Message) -> set[str]:
    found: set[str] = set()
    for name in ("From", "To", "Cc", "Sender", "Reply-To", "Return-Path", "Delivered-To"):
        for value in msg.get_all(name, []):
            found.update(a.lower() for a in ADDRESS.findall(str(value)))
    return found


def candidate_recipients(msg: Message, report: str) -> list[str]:
    """Addresses the report text names as failed, in order; the bounce's own are left out."""
    own = _own_addresses(msg)
    seen: dict[str, None] = {}  # in order; a dict, not a list: thousands of addresses
    for line in report.splitlines():
        if _NOISE_LINE.search(line):
            continue
        line = _URL.sub(" ", line)
        for raw in ADDRESS.findall(line):
            address = raw.lower().rstrip(".-")
            if address in own or _NOT_RECIPIENT.match(address) or address in seen:
                continue
            if not _plausible(address):
                continue
            if "." not in address.rpartition("@")[2] and not line.strip().startswith(("<", raw)):
                continue
            seen[address] = None
    return list(seen)


def _addresses_in(headers: Message, names: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    for name in names:
        for value in headers.get_all(name, []):
            found.update(a.lower() for a in ADDRESS.findall(str(value)))
    return found


def _senders(original: Message | None) -> set[str]:
    if original is None:
        return set()
    return _addresses_in(original, ("From", "Sender", "Reply-To", "Return-Path"))


def _plausible(address: str) -> bool:
    return not (_MESSAGE_ID.match(address) or _NOT_RECIPIENT.match(address))


def _narrow(candidates: list[str], original: Message | None) -> list[str]:
    """Drop the returned message's own sender (unless nothing else is left)."""
    senders = _senders(original)
    return [c for c in candidates if c not in senders] or candidates


@functools.lru_cache(maxsize=4)
def _paragraphs(report: str) -> tuple[tuple[str, str], ...]:
    """The paragraphs of a report with their lower-case form, worked out once per report
    (:func:`diagnostic_for` asks once per recipient)."""
    return tuple((p, p.lower()) for p in re.split(r"\n[ \t]*\n", report) if p.strip())


def diagnostic_for(report: str, address: str) -> str:
    """The paragraph naming ``address`` (and the next one when it holds only the address),
    white space collapsed, at most :data:`~collectors.feedback.limits.MAX_DIAGNOSTIC_CHARS`."""
    paragraphs = _paragraphs(report)
    needle = address.lower()
    for i, (paragraph, lower) in enumerate(paragraphs):
        if needle not in lower:
            continue
        text = paragraph
        if len(paragraph.strip().splitlines()) == 1 and i + 1 < len(paragraphs):
            following, following_lower = paragraphs[i + 1]
            if not ADDRESS.search(following) or needle in following_lower:
                text += "\n" + following
        return " ".join(text.split())[:MAX_DIAGNOSTIC_CHARS]
    return ""


def _reply_code(text: str) -> str:
    m = REPLY.search(text)
    return m.group(1) if m else ""


def _format(text: str) -> str:
    for name, pattern in _FORMATS:
        if pattern.search(text):
            return name
    return "text"


class _NoDetectorTracebacks(logging.Filter):
    """flufl.bounce logs the traceback of every detector that trips on odd input, then
    raises; :func:`_flufl` takes that as "no opinion", so the traceback is only noise (one
    a sender could fill the log with)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.exc_info


logging.getLogger("flufl.bounce").addFilter(_NoDetectorTracebacks())


def _flufl(msg: Message) -> tuple[set[str], set[str]]:
    if _too_large_for_flufl(msg):
        return set(), set()  # its detectors read every line ~100 times over: too slow
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # its heuristics may trip on odd input; our own reading still applies
        return set(), set()

    def norm(values: object) -> set[str]:
        out: set[str] = set()
        for v in values:  # type: ignore[attr-defined]
            s = v.decode("latin-1") if isinstance(v, bytes) else str(v)
            s = s.strip().strip("<>").lower()
            local, _, domain = s.partition("@")
            # flufl's looser detectors sometimes return a route or a fragment ("@host").
            if local and domain and "@" not in domain and not re.search(r"[\s:;,]", s):
                out.add(s)
        return out

    return norm(temporary), norm(permanent)


def _too_large_for_flufl(msg: Message) -> bool:
    """Whether the undecoded bodies of ``msg``'s parts hold more than
    :data:`~collectors.feedback.limits.MAX_FLUFL_LINES` lines,
    :data:`~collectors.feedback.limits.MAX_FLUFL_CHARS` characters, or lines whose squared
    lengths add up to more than :data:`~collectors.feedback.limits.MAX_FLUFL_LINE_COST`."""
    lines = chars = cost = 0
    stack = [msg]
    while stack:
        part = stack.pop()
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(p for p in payload if isinstance(p, Message))
        elif isinstance(payload, str):
            lines += payload.count("\n")
            chars += len(payload)
            if lines > MAX_FLUFL_LINES or chars > MAX_FLUFL_CHARS:
                return True
            cost += sum(len(line) ** 2 for line in payload.split("\n"))
            if cost > MAX_FLUFL_LINE_COST:
                return True
    return False


def _original_headers(msg: Message, returned: str) -> Message | None:
    attached = find_original(msg)
    if attached is not None:
        return attached
    m = _HEADER_START.search(returned)
    if not m:
        return None
    headers = HeaderParser().parsestr(returned[m.start() :].lstrip())
    return headers if len(headers.keys()) >= 2 else None


def _ses_document(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    if start < 0 or "notificationType" not in text:
        return None
    try:
        # raw_decode: the JSON is followed by SNS's plain-text footer.
        doc, _ = json.JSONDecoder(strict=False).raw_decode(text[start:])
    except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested past the stack
        return None
    # Through SNS the notification is a JSON string inside the envelope's "Message".
    if isinstance(doc, dict) and isinstance(doc.get("Message"), str):
        try:
            doc = json.loads(doc["Message"], strict=False)
        except (ValueError, RecursionError):
            return None
    return doc if isinstance(doc, dict) else None


def amazon_ses_bounce(text: str) -> Bounce | None:
    """An Amazon SES bounce notification (JSON, direct or through SNS); None for anything else.

    SES complaint and delivery notifications are not bounces: None.
    """
    doc = _ses_document(text)
    if not doc or str(doc.get("notificationType", "")).lower() != "bounce":
        return None
    found = doc.get("bounce")
    detail: dict[str, Any] = found if isinstance(found, dict) else {}
    recipients = []
    rows = detail.get("bouncedRecipients")
    for row in rows[:MAX_BOUNCE_RECIPIENTS] if isinstance(rows, list) else []:
        if not isinstance(row, dict) or "@" not in str(row.get("emailAddress", "")):
            continue
        diagnostic = str(row.get("diagnosticCode", ""))[: MAX_DIAGNOSTIC_CHARS * 4]
        diagnostic = re.sub(r"^\s*smtp\s*;\s*", "", diagnostic, flags=re.I)
        recipients.append(
            BouncedRecipient(
                address=str(row["emailAddress"]).strip().strip("<>").lower(),
                action=str(row.get("action") or "failed").lower(),
                status=normalise_status(str(row.get("status", ""))),
                diagnostic=" ".join(diagnostic.split())[:MAX_DIAGNOSTIC_CHARS],
                reply_code=_reply_code(diagnostic),
                remote_mta=str(detail.get("remoteMtaIp", "")),
            )
        )
    if not recipients:
        return None
    return Bounce(
        recipients=recipients, reporting_mta=str(detail.get("reportingMTA", "")), format="amazonses"
    )


def parse_text_bounce(msg: Message) -> Bounce | None:
    """Read a bounce that is not an RFC 3464 DSN.

    Returns a :class:`Bounce` (``format`` names the MTA family when recognised, else "text";
    status, reply code and diagnostic are "" where the text gives none) or None when the message
    is not a bounce or no failed recipient could be found.
    """
    msg = repair_multipart(msg)
    text = body_text(msg)
    ses = amazon_ses_bounce(text)
    if ses is not None:
        return ses
    report, returned = report_section(text)
    if not looks_like_bounce(msg, report):
        return None
    temporary, permanent = _flufl(msg)
    original = _original_headers(msg, returned)
    own = _narrow(candidate_recipients(msg, report), original)
    # flufl.bounce's looser detectors pick up Message-IDs and the sender too: same filter.
    rejected = _senders(original)
    temporary = {a for a in temporary if not _MESSAGE_ID.match(a) and a not in rejected}
    permanent = {a for a in permanent if not _MESSAGE_ID.match(a) and a not in rejected}
    addresses = sorted(temporary | permanent) if temporary or permanent else own
    if not addresses:
        return None
    addresses = addresses[:MAX_BOUNCE_RECIPIENTS]
    whole_status = normalise_status(report)
    whole_reply: str | None = None  # the report's first reply code, looked for once
    delayed_text = bool(_DELAY.search(report)) and not _GIVEN_UP.search(report)
    recipients = []
    for address in addresses:
        diagnostic = diagnostic_for(report, address)
        status = normalise_status(diagnostic) or whole_status
        reply = _reply_code(diagnostic)
        if not reply:
            whole_reply = _reply_code(report) if whole_reply is None else whole_reply
            reply = whole_reply
        temporary_only = address in temporary and address not in permanent
        action = "delayed" if temporary_only or delayed_text else "failed"
        recipients.append(
            BouncedRecipient(
                address=address,
                action=action,
                status=status,
                diagnostic=diagnostic,
                reply_code=reply,
            )
        )
    return Bounce(
        recipients=recipients,
        original=original,
        format=_format(report),
    )


__all__ = ["amazon_ses_bounce", "is_auto_reply", "looks_like_bounce", "parse_text_bounce"]

"""One entry point for bounces: an RFC 3464 DSN first, then the non-standard formats.

``detect_bounce`` classifies every recipient (collectors/feedback/categories.py). A message whose
recipients are all ``delayed`` comes back as a Bounce of delays only, which the dispatcher files
as kind "delay"; in a mixed notice the delayed recipients are dropped, because a delay is a
warning, not a bounce, and counting it would inflate the bounce rate.
"""

from __future__ import annotations

from email.message import Message

from collectors.feedback.bounce_text import (
    REPLY,
    body_text,
    diagnostic_for,
    parse_text_bounce,
    report_section,
)
from collectors.feedback.categories import classify
from collectors.feedback.dsn import normalise_status, parse_dsn
from collectors.feedback.model import Bounce

#: actions that report a delivery problem (delivered / relayed / expanded are successes)
PROBLEM_ACTIONS = ("failed", "delayed")


def is_delay(bounce: Bounce) -> bool:
    """True when every recipient of the notice is delayed (still queued at the sender)."""
    return bool(bounce.recipients) and all(r.action == "delayed" for r in bounce.recipients)


def _complete_from_text(msg: Message, bounce: Bounce) -> None:
    """Fill a DSN recipient's missing diagnostic, or its generic x.0.0 status, from the
    human-readable part: some MTAs put the remote server's words only there."""
    report = ""
    for r in bounce.recipients:
        if r.diagnostic and not r.status.endswith(".0.0") and r.status:
            continue
        report = report or report_section(body_text(msg))[0]
        text = diagnostic_for(report, r.address)
        if not text:
            continue
        r.diagnostic = r.diagnostic or text
        found = normalise_status(text)
        if found and (not r.status or (r.status.endswith(".0.0") and found[0] == r.status[0])):
            r.status = found
        if not r.reply_code and (m := REPLY.search(text)):
            r.reply_code = m.group(1)


def detect_bounce(msg: Message) -> Bounce | None:
    """The bounce or delay notice in ``msg``, classified; None when it is neither.

    A DSN that reports only successful deliveries (``delivered``, ``relayed``, ``expanded``) is
    not a bounce: None. Any exception from a parser on hostile input is a bug there, but must not
    lose the message: it is caught and the message is treated as not a bounce, so the caller
    files it as "other" (and keeps it).
    """
    try:
        bounce = parse_dsn(msg)
        if bounce is not None:
            _complete_from_text(msg, bounce)
        else:
            bounce = parse_text_bounce(msg)
    except (ValueError, LookupError, TypeError, AttributeError, IndexError, UnicodeError):
        return None
    if bounce is None:
        return None
    problems = [r for r in bounce.recipients if r.action in PROBLEM_ACTIONS]
    if not problems:
        return None
    failed = [r for r in problems if r.action == "failed"]
    bounce.recipients = failed or problems
    for r in bounce.recipients:
        r.category, r.hard, r.blocklist = classify(r.status, r.diagnostic, r.reply_code, r.action)
    return bounce

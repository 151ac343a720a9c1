"""Unit tests of the bounce parsers and the classifier on messages built here."""

from __future__ import annotations

import email
import email.policy
import os
import random
from email.message import Message

import pytest

from collectors.feedback.bounce_text import parse_text_bounce
from collectors.feedback.bounces import detect_bounce, is_delay
from collectors.feedback.categories import CATEGORIES, blocklist_zone, classify
from collectors.feedback.dsn import parse_dsn


def message(text: str) -> Message:
    return email.message_from_string(text.lstrip(), policy=email.policy.compat32)


ORIGINAL_HEADERS = """\
Received: from out1.sender.example ([192.0.2.25]) by mx.example.net
From: News <news@sender.example>
To: ann@example.net
Subject: Our news
Message-ID: <abc123@sender.example>
"""


def dsn(recipient_blocks: str, *, report_type: str = "; report-type=delivery-status") -> str:
    return f"""
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: bounces@sender.example
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report{report_type}; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain

This is the mail system at host mx.example.net.

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 4AB12
Arrival-Date: Mon, 2 Jun 2025 10:00:00 +0000

{recipient_blocks}
--BOUNDARY
Content-Type: text/rfc822-headers

{ORIGINAL_HEADERS}
--BOUNDARY--
"""


SEVERAL = """\
Final-Recipient: rfc822; <Ann@Example.NET>
Original-Recipient: rfc822; ann@example.net
Action: failed
Status: 5.0.0
Remote-MTA: dns; mx1.example.net
Diagnostic-Code: smtp; 550 5.1.1 <ann@example.net>: Recipient address rejected:
    User unknown in virtual mailbox
    table

Original-Recipient: rfc822;bob@example.net
Action: failed
Status: 5.2.2
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full

Final-Recipient: rfc822; carol@example.org
Action: failed
Status: 5.7.1
Diagnostic-Code: smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.25]
 blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.25
"""


def test_dsn_with_several_recipients() -> None:
    bounce = parse_dsn(message(dsn(SEVERAL)))
    assert bounce is not None and bounce.format == "dsn"
    assert [r.address for r in bounce.recipients] == [
        "ann@example.net",
        "bob@example.net",
        "carol@example.org",
    ]
    ann, bob, carol = bounce.recipients
    # the specific code from the diagnostic beats the generic Status 5.0.0
    assert (ann.status, ann.reply_code, ann.remote_mta) == ("5.1.1", "550", "mx1.example.net")
    # folded diagnostic: unfolded, whitespace collapsed, "smtp;" stripped
    assert ann.diagnostic == (
        "550 5.1.1 <ann@example.net>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    assert (bob.status, bob.reply_code) == ("5.2.2", "552")
    assert bounce.reporting_mta == "mx.example.net"
    assert bounce.arrival_date is not None and bounce.arrival_date.year == 2025
    assert (
        bounce.original is not None and bounce.original["Message-ID"] == "<abc123@sender.example>"
    )
    assert "192.0.2.25" in str(bounce.original["Received"])

    classified = detect_bounce(message(dsn(SEVERAL)))
    assert classified is not None and not is_delay(classified)
    got = [(r.category, r.hard, r.blocklist) for r in classified.recipients]
    assert got == [
        ("bad-mailbox", True, ""),
        ("quota", False, ""),
        ("blocklisted", False, "zen.spamhaus.org"),
    ]


def test_missing_report_type_and_deeper_nesting() -> None:
    inner = dsn(SEVERAL, report_type="")
    outer = f"""
From: postmaster@relay.example
Subject: Fwd: delivery problem
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="OUTER"

--OUTER
Content-Type: text/plain

See the attached notice.
--OUTER
Content-Type: message/rfc822

{inner.lstrip()}
--OUTER--
"""
    bounce = parse_dsn(message(outer))
    assert bounce is not None
    assert len(bounce.recipients) == 3


def test_delivery_status_in_a_text_part() -> None:
    text = """
From: MAILER-DAEMON@mx.example.net
Subject: Delivery Status Notification (Failure)
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="B"

--B
Content-Type: text/plain

Delivery failed.
--B
Content-Type: text/plain; name="delivery-status"
Content-Description: Delivery report

Reporting-MTA: dns; mx.example.net

Final-Recipient: RFC822; <dave@example.net>
Action: failed
Status: 5.1.1
--B--
"""
    bounce = parse_dsn(message(text))
    assert bounce is not None
    assert [(r.address, r.status) for r in bounce.recipients] == [("dave@example.net", "5.1.1")]


def test_delayed_dsn_is_a_delay_not_a_bounce() -> None:
    block = """\
Final-Recipient: rfc822; erin@example.net
Action: delayed
Status: 4.4.1
Diagnostic-Code: smtp; 421 4.4.1 Connection timed out
"""
    bounce = detect_bounce(message(dsn(block)))
    assert bounce is not None and is_delay(bounce)
    (erin,) = bounce.recipients
    assert (erin.action, erin.status, erin.hard, erin.category) == (
        "delayed",
        "4.4.1",
        False,
        "network",
    )


def test_mixed_notice_keeps_only_the_failures() -> None:
    blocks = """\
Final-Recipient: rfc822; erin@example.net
Action: delayed
Status: 4.4.1

Final-Recipient: rfc822; fred@example.net
Action: failed
Status: 5.1.1
"""
    bounce = detect_bounce(message(dsn(blocks)))
    assert bounce is not None and not is_delay(bounce)
    assert [r.address for r in bounce.recipients] == ["fred@example.net"]


def test_delivered_only_dsn_is_no_bounce() -> None:
    block = "Final-Recipient: rfc822; gina@example.net\nAction: delivered\nStatus: 2.0.0\n"
    assert parse_dsn(message(dsn(block))) is not None
    assert detect_bounce(message(dsn(block))) is None


QMAIL = """
Return-Path: <>
From: MAILER-DAEMON@mail.example.net
To: bounces@sender.example
Subject: failure notice

Hi. This is the qmail-send program at mail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<hank@example.net>:
192.0.2.80 does not like recipient.
Remote host said: 550 5.1.1 <hank@example.net>: No such user here
Giving up on 192.0.2.80.

--- Below this line is a copy of the message.

Received: from out1.sender.example ([192.0.2.25]) by mail.example.net
From: News <news@sender.example>
To: hank@example.net
Subject: Our news
Message-ID: <q1@sender.example>

Hello
"""


def test_qmail_text_bounce() -> None:
    bounce = parse_text_bounce(message(QMAIL))
    assert bounce is not None and bounce.format == "qmail"
    (hank,) = bounce.recipients
    assert (hank.address, hank.status, hank.reply_code) == ("hank@example.net", "5.1.1", "550")
    assert "No such user here" in hank.diagnostic
    assert bounce.original is not None and bounce.original["Message-ID"] == "<q1@sender.example>"
    classified = detect_bounce(message(QMAIL))
    assert classified is not None
    assert (classified.recipients[0].category, classified.recipients[0].hard) == (
        "bad-mailbox",
        True,
    )


EXCHANGE = """
From: System Administrator <postmaster@corp.example>
To: news@sender.example
Subject: Undeliverable: Our news
Content-Type: text/plain

Your message did not reach some or all of the intended recipients.

      Subject:  Our news
      Sent:     6/2/2025 10:00 AM

The following recipient(s) could not be reached:

      ivy@corp.example on 6/2/2025 10:01 AM
            The e-mail account does not exist at the organization this message was sent to.
            <mail.corp.example #5.1.1 smtp;550 5.1.1 RESOLVER.ADR.RecipNotFound; not found>
"""


def test_exchange_style_text_bounce() -> None:
    bounce = detect_bounce(message(EXCHANGE))
    assert bounce is not None and bounce.format == "exchange"
    (ivy,) = bounce.recipients
    assert (ivy.address, ivy.status, ivy.category, ivy.hard) == (
        "ivy@corp.example",
        "5.1.1",
        "bad-mailbox",
        True,
    )


def test_text_bounce_naming_a_blocklist() -> None:
    text = """
From: Mail Delivery System <Mailer-Daemon@relay.example>
To: news@sender.example
Subject: Mail delivery failed: returning message to sender

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  jack@example.org
    host mx.example.org [198.51.100.7]
    SMTP error from remote mail server after RCPT TO:<jack@example.org>:
    550 5.7.1 Service unavailable; client [192.0.2.25] listed at b.barracudacentral.org
"""
    bounce = detect_bounce(message(text))
    assert bounce is not None and bounce.format == "exim"
    (jack,) = bounce.recipients
    assert (jack.category, jack.hard, jack.blocklist) == (
        "blocklisted",
        False,
        "b.barracudacentral.org",
    )
    assert (jack.status, jack.reply_code) == ("5.7.1", "550")


def test_auto_reply_is_not_a_bounce() -> None:
    text = """
From: Kim Lee <kim@example.net>
To: news@sender.example
Subject: Out of Office: Our news
Auto-Submitted: auto-replied

I am out of the office until June 9 and could not be reached; your message was not
delivered to my assistant. For urgent matters contact lee@example.net.
"""
    assert detect_bounce(message(text)) is None


def test_ordinary_mail_about_bounces_is_not_a_bounce() -> None:
    text = """
From: Kim Lee <kim@example.net>
To: ops@sender.example
Subject: question

Why does the invoice for lee@example.net say "undeliverable"?
"""
    assert detect_bounce(message(text)) is None


def test_amazon_ses_notification() -> None:
    body = (
        '{"notificationType":"Bounce","bounce":{"bounceType":"Permanent",'
        '"bouncedRecipients":[{"emailAddress":"lou@example.net","action":"failed",'
        '"status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}],'
        '"reportingMTA":"dsn; a1-2.smtp-out.amazonses.com"}}'
    )
    msg = message(f"From: no-reply@sns.amazonaws.com\nSubject: AWS Notification\n\n{body}\n")
    bounce = detect_bounce(msg)
    assert bounce is not None and bounce.format == "amazonses"
    assert [(r.address, r.status, r.reply_code, r.hard) for r in bounce.recipients] == [
        ("lou@example.net", "5.1.1", "550", True)
    ]


@pytest.mark.parametrize("seed", range(5))
def test_garbage_bytes_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    raw = bytes(rng.randrange(256) for _ in range(4000))
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert detect_bounce(msg) is None


def test_broken_multipart_is_repaired_or_refused() -> None:
    broken = dsn(SEVERAL).replace('boundary="BOUNDARY"', 'boundary="BOUNDARY" Message-Id: <x@y>')
    bounce = detect_bounce(message(broken))
    assert bounce is not None and len(bounce.recipients) == 3
    truncated = dsn(SEVERAL)[:400]
    assert detect_bounce(message(truncated)) is None
    assert detect_bounce(email.message_from_bytes(os.urandom(0))) is None


@pytest.mark.parametrize(
    ("status", "diagnostic", "reply", "action", "expected"),
    [
        ("5.1.1", "550 5.1.1 User unknown", "550", "failed", ("bad-mailbox", True, "")),
        ("5.1.2", "Host or domain name not found", "", "failed", ("bad-domain", True, "")),
        ("5.2.1", "account disabled", "550", "failed", ("inactive-mailbox", True, "")),
        ("5.2.2", "Mailbox full", "552", "failed", ("quota", False, "")),
        ("4.4.7", "retry timeout exceeded", "", "failed", ("expired", False, "")),
        (
            "5.7.26",
            "Unauthenticated email is not accepted due to DMARC",
            "550",
            "failed",
            ("authentication", False, ""),
        ),
        (
            "5.7.1",
            "rejected because of poor reputation",
            "554",
            "failed",
            ("reputation", False, ""),
        ),
        (
            "4.7.28",
            "unusual rate of unsolicited mail, rate limited",
            "421",
            "failed",
            ("rate-limited", False, ""),
        ),
        ("5.7.1", "message looks like spam", "554", "failed", ("spam-content", False, "")),
        ("5.7.1", "Relaying denied", "550", "failed", ("routing", False, "")),
        ("5.7.1", "Message refused by policy", "550", "failed", ("policy", False, "")),
        ("", "550 no such user", "550", "failed", ("bad-mailbox", True, "")),
        ("4.1.1", "mailbox temporarily unknown", "450", "failed", ("bad-mailbox", False, "")),
        ("5.1.1", "User unknown", "550", "delayed", ("bad-mailbox", False, "")),
        (
            "5.1.8",
            "Sender address rejected: Domain not found",
            "553",
            "failed",
            ("policy", False, ""),
        ),
        ("", "", "", "failed", ("other", False, "")),
    ],
)
def test_classify(
    status: str, diagnostic: str, reply: str, action: str, expected: tuple[str, bool, str]
) -> None:
    assert classify(status, diagnostic, reply, action) == expected
    assert expected[0] in CATEGORIES


@pytest.mark.parametrize(
    ("diagnostic", "zone"),
    [
        ("Client host [192.0.2.1] blocked using zen.spamhaus.org", "zen.spamhaus.org"),
        ("554 rejected: listed at b.barracudacentral.org", "b.barracudacentral.org"),
        ("blocked, see http://www.spamcop.net/bl.shtml?192.0.2.1 bl.spamcop.net", "bl.spamcop.net"),
        ("see https://www.spamhaus.org/query/ip/192.0.2.1", "spamhaus"),
        ("550 5.7.1 IP listed on dnsbl.example-list.net (127.0.0.2)", "dnsbl.example-list.net"),
        ("550 you are listed in our database", ""),
        ("550 5.1.1 user unknown", ""),
    ],
)
def test_blocklist_zone(diagnostic: str, zone: str) -> None:
    assert blocklist_zone(diagnostic) == zone

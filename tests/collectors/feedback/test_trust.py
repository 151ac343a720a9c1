"""Who sent a report, and whether it is trusted: DKIM and SPF against a real nsd serving the
keys and SPF records (tests/monitor/trust_support.py), the sources and their kinds, local
parts, alignment, and DNS failures (fail closed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from checks.resolver import parse_nameserver
from collectors.feedback.config import FeedbackConfig
from collectors.feedback.parse import parse_email, read_message
from collectors.feedback.trust import Envelope, Sender, Verifier, aligned, org_domain
from tests.monitor.trust_support import (
    EVIL,
    SOURCE,
    complaint,
    dmarc_report,
    new_key,
    sign,
    zones,
)
from tests.servers import nsd, silent_udp_server

IP = "203.0.113.7"
#: a client IP that no SPF record of the test zones authorizes
STRANGER = "192.0.2.99:2525"
LOOPBACK = "127.0.0.1:2525"


@dataclass
class World:
    keys: dict[str, rsa.RSAPrivateKey]
    nameserver: str

    def verifier(self, **feedback: object) -> Verifier:
        fb = FeedbackConfig(
            **{"sources": [{"domain": SOURCE, "kinds": ["complaint", "bounce"]}], **feedback}
        )
        return Verifier(fb.trusted_sources(), [parse_nameserver(self.nameserver)], 1.0)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    keys = {SOURCE: new_key(), EVIL: new_key()}
    with nsd(zones(keys)) as server:
        yield World(keys, server.nameserver)


def judge(v: Verifier, raw: bytes, env: Envelope) -> Sender:
    message = read_message(raw)
    return v.authenticate(raw, message, parse_email(message).kind, env)


def test_a_dkim_signed_complaint_from_a_source_is_trusted(world: World) -> None:
    raw = sign(complaint(IP, 1), SOURCE, world.keys[SOURCE])
    # from an IP no SPF record authorizes: DKIM alone carries it
    s = judge(world.verifier(), raw, Envelope("x@elsewhere.example", STRANGER, "mx.example"))
    assert (s.trusted, s.method, s.result, s.reporter, s.source) == (
        True,
        "dkim",
        "pass",
        SOURCE,
        SOURCE,
    )


def test_an_spf_pass_aligned_with_the_from_is_trusted(world: World) -> None:
    s = judge(world.verifier(), complaint(IP, 2), Envelope(f"fbl@{SOURCE}", LOOPBACK, "x"))
    assert (s.trusted, s.method, s.reporter) == (True, "spf", SOURCE)


def test_an_unsigned_complaint_from_an_unauthorized_ip_is_not(world: World) -> None:
    s = judge(world.verifier(), complaint(IP, 3), Envelope(f"fbl@{SOURCE}", STRANGER, "x"))
    assert (s.trusted, s.result, s.from_domain) == (False, "fail", SOURCE)
    assert "spf fail" in s.reason


def test_a_signature_of_another_domain_does_not_count(world: World) -> None:
    # valid DKIM of evil.test and SPF pass for evil.test, but the From says fbl.test
    raw = sign(complaint(IP, 4), EVIL, world.keys[EVIL])
    s = judge(world.verifier(), raw, Envelope(f"x@{EVIL}", LOOPBACK, f"mx.{EVIL}"))
    assert (s.trusted, s.reporter) == (False, "")


def test_an_authenticated_sender_that_is_no_source_is_not_trusted(world: World) -> None:
    raw = sign(complaint(IP, 5, sender=f"abuse@{EVIL}"), EVIL, world.keys[EVIL])
    s = judge(world.verifier(), raw, Envelope(f"x@{EVIL}", LOOPBACK, "x"))
    assert (s.trusted, s.result, s.from_domain) == (False, "skipped", EVIL)


def test_a_key_of_the_wrong_owner_fails(world: World) -> None:
    # signed as fbl.test with evil.test's private key: the published key does not match
    raw = sign(complaint(IP, 6), SOURCE, world.keys[EVIL])
    s = judge(world.verifier(), raw, Envelope("", STRANGER, "x"))
    assert (s.trusted, s.result) == (False, "fail")


def test_a_message_changed_after_signing_fails(world: World) -> None:
    raw = sign(complaint(IP, 7), SOURCE, world.keys[SOURCE])
    tampered = raw.replace(b"Feedback-Type: abuse", b"Feedback-Type: fraud")
    s = judge(world.verifier(), tampered, Envelope("", STRANGER, "x"))
    assert (s.trusted, s.result) == (False, "fail")


def test_a_source_is_trusted_only_for_its_kinds(world: World) -> None:
    end = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    raw = sign(dmarc_report(IP, 10, end, sender=f"dmarc@{SOURCE}"), SOURCE, world.keys[SOURCE])
    s = judge(world.verifier(), raw, Envelope("", STRANGER, "x"))
    assert (s.trusted, s.result) == (False, "skipped")  # fbl.test: complaints and bounces


def test_a_bounce_authenticates_by_its_helo(world: World) -> None:
    """The null sender: SPF checks the HELO name (RFC 7208 2.3), aligned with the From."""
    raw = (
        f"From: MAILER-DAEMON@mx.{SOURCE}\r\nTo: bounces@fbl.repmon.test\r\n"
        "Subject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.{SOURCE}\r\n\r\n"
        "Final-Recipient: rfc822; gone@mailbox.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--b--\r\n"
    ).encode()
    s = judge(world.verifier(), raw, Envelope("", LOOPBACK, f"mx.{SOURCE}"))
    assert (s.trusted, s.method, s.reporter) == (True, "spf", f"mx.{SOURCE}")


def test_pinned_local_parts_of_a_mailbox_provider(world: World) -> None:
    """googlemail.com is Gmail's too: only mailer-daemon@ is a source, and nothing else
    there is even looked up."""
    v = world.verifier()
    raw = complaint(IP, 8, sender="someone@googlemail.com")
    s = judge(v, raw, Envelope("someone@googlemail.com", STRANGER, "x"))
    assert (s.trusted, s.result) == (False, "skipped")
    assert not v._txt and not v._spf  # no DNS asked


def test_builtin_sources_can_be_turned_off(world: World) -> None:
    assert (
        world.verifier(builtin_sources=False).sources_for(
            "dmarc-aggregate", "noreply-dmarc-support", "google.com"
        )
        == []
    )
    assert world.verifier().sources_for("dmarc-aggregate", "noreply-dmarc-support", "google.com")


def test_any_domain_source_trusts_every_authenticated_bounce(world: World) -> None:
    v = world.verifier(sources=[{"domain": "*", "kinds": ["bounce"]}])
    assert v.sources_for("bounce", "mailer-daemon", "mx.anywhere.example")
    assert not v.sources_for("complaint", "abuse", "mx.anywhere.example")


def test_unanswered_dns_fails_closed() -> None:
    with silent_udp_server() as port:
        fb = FeedbackConfig(sources=[{"domain": SOURCE, "kinds": ["complaint"]}])
        v = Verifier(fb.trusted_sources(), [parse_nameserver(f"127.0.0.1:{port}")], 0.2)
        raw = sign(complaint(IP, 9), SOURCE, new_key())
        s = judge(v, raw, Envelope(f"fbl@{SOURCE}", LOOPBACK, "x"))
    assert (s.trusted, s.result) == (False, "temperror")


def test_no_single_from_is_not_trusted(world: World) -> None:
    raw = complaint(IP, 10).replace(b"From: ", b"From: a@x.test, ", 1)
    s = judge(world.verifier(), raw, Envelope(f"fbl@{SOURCE}", LOOPBACK, "x"))
    assert (s.trusted, s.result) == (False, "none")


def test_organizational_domains_and_alignment() -> None:
    assert org_domain("arf.mail.yahoo.com") == "yahoo.com"
    assert org_domain("a.b.example.co.uk") == "example.co.uk"
    assert org_domain("mx.fbl.test") == "fbl.test"
    assert aligned("dmarc.yahoo.com", "yahoo.com")
    assert not aligned("yahoo.com.evil.test", "yahoo.com")
    assert not aligned("", "yahoo.com")

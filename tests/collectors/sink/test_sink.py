"""The SMTP feedback sink against a real client: smtplib talking to the running sink on a
loopback port, the spool on disk in a temp dir."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from checks.errors import ParseError
from collectors.sink import (
    RecipientPolicy,
    RetryLater,
    Sink,
    Spool,
    SpooledMessage,
    parse_listen,
)
from collectors.sink.config import SinkConfig
from collectors.sink.segment import encode, segment_name
from tests.sink_support import running

DOMAIN = "fb.example"


def message(n: int = 0, size: int = 0) -> bytes:
    body = f"Subject: test {n}\r\nFrom: a@b.example\r\n\r\nbody {n}\r\n"
    if size:
        body += ("x" * 70 + "\r\n") * (size // 72 + 1)
    return body.encode()


def sink_config(tmp_path: Path, **overrides: Any) -> SinkConfig:
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "accept_domains": [DOMAIN],
        "accept_addresses": ["Abuse-Reports@other.example"],
        "spool": str(tmp_path / "spool"),
        "max_message_bytes": 4096,
        "max_recipients": 3,
    }
    values.update(overrides)
    return SinkConfig(**values)


@contextmanager
def client(sink: Sink) -> Iterator[smtplib.SMTP]:
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
        smtp.ehlo("mx.receiver.example")
        yield smtp


def wait_for(cond: Callable[[], bool], timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


# -- pure parts --------------------------------------------------------------------------


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:2525") == ("127.0.0.1", 2525)
    assert parse_listen("[::1]:25") == ("::1", 25)
    assert parse_listen(":25") == ("127.0.0.1", 25)
    for bad in ("127.0.0.1", "host:port", "h:70000"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_recipient_policy_is_exact_and_case_insensitive() -> None:
    policy = RecipientPolicy(["FB.example."], ["Abuse@Other.example"])
    assert policy.accepts("bounces@fb.example")
    assert policy.accepts("Bounces@FB.EXAMPLE")
    assert policy.accepts("abuse@other.example")
    assert not policy.accepts("postmaster@other.example")
    assert not policy.accepts("x@sub.fb.example")  # subdomains only when listed
    assert not policy.accepts("x@fb.example.evil.example")
    assert not policy.accepts("fb.example")
    assert not RecipientPolicy([], []).accepts("x@fb.example")


def test_spool_accept_is_durable_and_deduplicated(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    first = spool.accept(b"hello\r\n", {"mail_from": ""})
    again = spool.accept(b"hello\r\n", {"mail_from": "other"})
    assert first.message_hash == hashlib.sha256(b"hello\r\n").hexdigest() == again.message_hash
    assert first.received_at.tzinfo is not None
    assert [m.message_hash for m in spool.pending()] == [first.message_hash]
    assert spool.depth() == 1 and not list(spool.tmp.iterdir())
    assert spool.read(first) == b"hello\r\n"
    second = spool.accept(b"second\r\n", {})
    assert [m.message_hash for m in spool.pending()] == [first.message_hash, second.message_hash]
    assert spool.depth() == 2 and len(list(spool.new.iterdir())) == 2  # one segment each
    spool.done(first)
    spool.quarantine(second, "ParseError: no report part")
    assert spool.depth() == 0 and not list(spool.new.iterdir())
    evidence = spool.evidence(first.message_hash)
    assert evidence is not None and evidence.raw == b"hello\r\n"
    assert evidence.envelope["mail_from"] == ""
    assert spool.evidence(second.message_hash) is None  # quarantined, not processed
    reason = spool.quarantine_dir / f"{second.message_hash}.reason"
    assert reason.read_text() == "ParseError: no report part\n"
    assert spool.release(second.message_hash) and spool.depth() == 1


def test_spool_recover_removes_unacknowledged_writes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    (spool.tmp / "00000000000000000001-1-0-2.seg").write_bytes(b"msg partial")
    kept = spool.accept(b"kept\r\n", {})
    assert spool.recover() == 1
    assert [m.message_hash for m in spool.pending()] == [kept.message_hash]


def test_spool_drops_a_torn_last_record(tmp_path: Path) -> None:
    """A segment cut short inside its last record (a crash mid-write, so that record was
    never acknowledged): the complete records are processed, the torn one is dropped, and
    the segment still goes once its complete records are settled."""
    spool = Spool(tmp_path / "s")
    raws = [b"one\r\n", b"two\r\n", b"three\r\n"]
    whole = b"".join(encode(hashlib.sha256(r).hexdigest(), {}, r) for r in raws)
    (spool.new / segment_name(1, 1, 0, 3)).write_bytes(whole[:-4])
    listed = Spool(spool.directory).pending()
    assert [spool.read(m) for m in listed] == raws[:2]
    fresh = Spool(spool.directory)
    for msg in fresh.pending():
        fresh.done(msg)
    assert fresh.depth() == 0 and not list(spool.new.iterdir())


# -- through SMTP ------------------------------------------------------------------------


def test_accepted_domain_is_spooled_before_250(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="repmon.sink")
    with running(sink_config(tmp_path)) as sink, client(sink) as smtp:
        raw = message(1)
        assert smtp.mail("")[0] == 250
        assert smtp.rcpt(f"Bounces@{DOMAIN.upper()}")[0] == 250
        assert smtp.rcpt("abuse-reports@other.example")[0] == 250
        code, reply = smtp.data(raw)
        digest = hashlib.sha256(raw).hexdigest()
        assert code == 250
        assert reply.decode() == f"2.0.0 queued as {digest[:16]}"
        # the reply came after the write: the message is already in new/
        (msg,) = sink.spool.pending()
        assert msg.message_hash == digest
        assert sink.spool.read(msg) == raw
        assert msg.envelope["mail_from"] == ""
        assert msg.envelope["rcpt_tos"] == [
            f"Bounces@{DOMAIN.upper()}",
            "abuse-reports@other.example",
        ]
        assert msg.envelope["helo"] == "mx.receiver.example"
        assert str(msg.envelope["peer"]).startswith("127.0.0.1:")
        assert msg.envelope["tls"] is False
        # one INFO line per accepted message, saying which, from whom, for whom
        accepted = [r.getMessage() for r in caplog.records if r.getMessage().startswith("accepted")]
        assert len(accepted) == 1 and digest[:16] in accepted[0] and DOMAIN.upper() in accepted[0]
        # a re-delivery of the same bytes is one file
        assert smtp.sendmail("", [f"b@{DOMAIN}"], raw) == {}
        assert sink.spool.depth() == 1


def test_other_domain_is_refused_never_relayed(tmp_path: Path) -> None:
    with running(sink_config(tmp_path)) as sink, client(sink) as smtp:
        smtp.mail("spammer@evil.example")
        for rcpt in ("victim@gmail.example", f"x@sub.{DOMAIN}", "postmaster@other.example"):
            code, reply = smtp.rcpt(rcpt)
            assert (code, reply[:5]) == (550, b"5.7.1")
        smtp.rset()
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("a@evil.example", ["victim@gmail.example"], message())
        assert sink.spool.depth() == 0


def test_oversize_message_is_refused_552(tmp_path: Path) -> None:
    with running(sink_config(tmp_path)) as sink, client(sink) as smtp:
        big = message(2, size=6000)
        # with SIZE= in MAIL FROM (smtplib sends it since the sink advertises SIZE)
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            smtp.sendmail("", [f"b@{DOMAIN}"], big)
        assert err.value.smtp_code == 552 and err.value.smtp_error.startswith(b"5.3.4")
        # without SIZE: the data itself is too much
        smtp.rset()
        smtp.mail("")
        smtp.rcpt(f"b@{DOMAIN}")
        code, reply = smtp.data(big)
        assert (code, reply[:5]) == (552, b"5.3.4")
        # the session goes on and a normal message still passes
        assert smtp.sendmail("", [f"b@{DOMAIN}"], message(3)) == {}
        assert sink.spool.depth() == 1


def test_too_many_recipients_452(tmp_path: Path) -> None:
    with running(sink_config(tmp_path, max_recipients=2)) as sink, client(sink) as smtp:
        smtp.mail("")
        assert smtp.rcpt(f"a@{DOMAIN}")[0] == 250
        assert smtp.rcpt(f"b@{DOMAIN}")[0] == 250
        code, reply = smtp.rcpt(f"c@{DOMAIN}")
        assert (code, reply[:5]) == (452, b"4.5.3")
        assert smtp.data(message(4))[0] == 250
        (msg,) = sink.spool.pending()
        assert msg.envelope["rcpt_tos"] == [f"a@{DOMAIN}", f"b@{DOMAIN}"]


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sink.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_starttls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    config = sink_config(tmp_path, tls_cert=cert, tls_key=key)
    with running(config) as sink, client(sink) as smtp:
        assert smtp.has_extn("starttls")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        assert smtp.starttls(context=context)[0] == 220
        smtp.ehlo("mx.receiver.example")
        assert smtp.sendmail("", [f"b@{DOMAIN}"], message(5)) == {}
        (msg,) = sink.spool.pending()
        assert msg.envelope["tls"] is True
    # STARTTLS is offered, not required
    with running(config) as sink, client(sink) as smtp:
        assert smtp.sendmail("", [f"b@{DOMAIN}"], message(6)) == {}


def test_tls_needs_cert_and_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="together"):
        Sink(sink_config(tmp_path, tls_cert="cert.pem"))


def test_spool_write_failure_answers_451(tmp_path: Path) -> None:
    with running(sink_config(tmp_path)) as sink, client(sink) as smtp:
        # a real write error: tmp/ is no longer a directory
        sink.spool.tmp.rmdir()
        sink.spool.tmp.write_text("in the way")
        smtp.mail("")
        smtp.rcpt(f"b@{DOMAIN}")
        code, reply = smtp.data(message(7))
        assert (code, reply[:5]) == (451, b"4.3.0")
        assert sink.spool.depth() == 0
        sink.spool.tmp.unlink()
        sink.spool.tmp.mkdir()
        assert smtp.sendmail("", [f"b@{DOMAIN}"], message(7)) == {}
        assert sink.spool.depth() == 1


def test_processor_done_quarantine_and_retry(tmp_path: Path) -> None:
    seen: list[str] = []
    flaky = {"left": 1}

    async def process(msg: SpooledMessage, raw: bytes) -> None:
        if b"malformed" in raw:
            raise ParseError("multipart/report without a delivery-status part")
        if b"flaky" in raw and flaky["left"]:
            flaky["left"] -= 1
            raise RetryLater("store unavailable")
        seen.append(msg.message_hash)

    config = sink_config(tmp_path)
    # a message spooled before the start (a crash left it) is processed first
    early = Spool(config.spool).accept(b"Subject: early\r\n\r\nx\r\n", {})
    with running(config, process) as sink, client(sink) as smtp:
        wait_for(lambda: early.message_hash in seen)
        smtp.sendmail("", [f"b@{DOMAIN}"], b"Subject: malformed\r\n\r\nx\r\n")
        smtp.sendmail("", [f"b@{DOMAIN}"], b"Subject: good\r\n\r\nx\r\n")
        wait_for(lambda: len(seen) == 2 and sink.spool.depth() == 0)
        (reason,) = sink.spool.quarantine_dir.glob("*.reason")
        text = reason.read_text()
        assert text.startswith("ParseError: multipart/report without a delivery-status part")
        assert "Traceback" in text
        assert (sink.spool.quarantine_dir / reason.with_suffix(".eml").name).exists()
        assert sink.processor.stats.quarantined == 1
        # a store outage keeps the message in new/ and retries it (after a back-off)
        smtp.sendmail("", [f"b@{DOMAIN}"], b"Subject: flaky\r\n\r\nx\r\n")
        wait_for(lambda: sink.processor.stats.retries >= 1)
        assert sink.spool.depth() == 1
        assert len(list(sink.spool.quarantine_dir.glob("*.eml"))) == 1
    # stop drained the processor: the retried message went through before the exit
    assert len(seen) == 3
    assert Spool(config.spool).depth() == 0


def test_processor_bug_does_not_stop_the_loop(tmp_path: Path) -> None:
    done: list[str] = []

    async def process(msg: SpooledMessage, raw: bytes) -> None:
        if b"boom" in raw:
            raise KeyError("bug")
        done.append(msg.message_hash)

    with running(sink_config(tmp_path), process) as sink, client(sink) as smtp:
        for subject in ("boom", "ok1", "ok2"):
            smtp.sendmail("", [f"b@{DOMAIN}"], f"Subject: {subject}\r\n\r\nx\r\n".encode())
        wait_for(lambda: len(done) == 2)
        assert sink.processor.stats.quarantined == 1

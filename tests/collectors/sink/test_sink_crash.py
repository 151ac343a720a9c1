"""Crash safety of ``repmon sink``: SIGTERM or SIGKILL in the middle of a stream of bounces
loses none and counts none twice; SIGTERM stops it cleanly with exit status 0.

The sink runs as a subprocess (the real command line); a client thread streams distinct
RFC 3464 bounces over persistent SMTP sessions and resends whatever did not get a 250.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from collectors.sink import Spool
from collectors.sink.segment import read_segment
from monitor.store import Store
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[3]  # the repository (tests/collectors/sink/ is 3 deep)
DOMAIN = "fb.example"


def dsn(n: int) -> bytes:
    """A minimal RFC 3464 bounce for one distinct recipient, sent from 192.0.2.10."""
    rcpt = f"user{n}@receiver.example"
    text = f"""\
From: MAILER-DAEMON@mx.receiver.example
To: bounces@{DOMAIN}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn{n}@mx.receiver.example>
Date: Mon, 02 Mar 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b{n}"

--b{n}
Content-Type: text/plain

Your message could not be delivered.

--b{n}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.receiver.example

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.receiver.example
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown

--b{n}
Content-Type: text/rfc822-headers

From: news@sender.example
To: {rcpt}
Subject: newsletter {n}
X-Sending-IP: 192.0.2.10

--b{n}--
"""
    # CRLF and a final CRLF: the bytes the sink receives, so the hash can be computed here
    return text.replace("\n", "\r\n").encode()


def write_config(tmp_path: Path, port: int, store_url: str) -> Path:
    path = tmp_path / "repmon.toml"
    path.write_text(
        f"""
[store]
url = "{store_url}"

[sink]
listen = "127.0.0.1:{port}"
accept_domains = ["{DOMAIN}"]
spool = "{tmp_path / "spool"}"

[[inventory.pools]]
name = "pool-a"
customer = "acme"
cidrs = ["192.0.2.0/28"]
"""
    )
    return path


def start_sink(config: Path, log: Path) -> subprocess.Popen[bytes]:
    code = "from monitor.cli import run; run()"
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, "sink", "--config", str(config)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"sink exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("sink did not start listening")


class Sender(threading.Thread):
    """Sends messages 0..n-1 in order over a persistent session, retrying each until 250."""

    def __init__(self, port: int, messages: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.messages = messages
        self.acked: dict[str, int] = {}  # hash -> times a 250 came back
        self.failures = 0
        self.stop_at = time.monotonic() + 120

    def run(self) -> None:
        smtp: smtplib.SMTP | None = None
        for raw in self.messages:
            while time.monotonic() < self.stop_at:
                try:
                    if smtp is None:
                        smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
                        smtp.ehlo("mx.receiver.example")
                    smtp.mail("")
                    smtp.rcpt(f"bounces@{DOMAIN}")
                    code, reply = smtp.data(raw)
                except (OSError, smtplib.SMTPException):
                    code, reply = 0, b""
                if code == 250:
                    digest = hashlib.sha256(raw).hexdigest()
                    assert reply.decode().endswith(digest[:16])
                    self.acked[digest] = self.acked.get(digest, 0) + 1
                    break
                self.failures += 1
                if smtp is not None:
                    with contextlib.suppress(OSError):
                        smtp.close()
                smtp = None
                time.sleep(0.05)
        if smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                smtp.quit()


@pytest.fixture
def sink_proc(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def _wait_drained(spool: Spool, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if spool.depth() == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"spool not drained: {spool.depth()} left")


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_sigterm_and_sigkill_lose_nothing_and_count_nothing_twice(
    tmp_path: Path,
    sink_proc: list[subprocess.Popen[bytes]],
    request: pytest.FixtureRequest,
    backend: str,
) -> None:
    pytest.importorskip("collectors.feedback.pipeline")
    store_url = (
        f"sqlite:///{tmp_path / 'repmon.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    n = 300
    port = free_port(socket.SOCK_STREAM)
    config = write_config(tmp_path, port, store_url)
    log = tmp_path / "sink.log"
    messages = [dsn(i) for i in range(n)]
    hashes = [hashlib.sha256(m).hexdigest() for m in messages]

    sink_proc.append(start_sink(config, log))
    wait_listening(port, sink_proc[-1])
    sender = Sender(port, messages)
    sender.start()
    # a third of the way: SIGTERM mid-stream, a graceful stop (exit 0)
    while len(sender.acked) < n // 3 and sender.is_alive():
        time.sleep(0.005)
    sink_proc[-1].send_signal(signal.SIGTERM)
    assert sink_proc[-1].wait(30) == 0
    sink_proc.append(start_sink(config, log))
    wait_listening(port, sink_proc[-1])
    # two thirds of the way: SIGKILL mid-stream
    while len(sender.acked) < 2 * n // 3 and sender.is_alive():
        time.sleep(0.005)
    sink_proc[-1].send_signal(signal.SIGKILL)
    sink_proc[-1].wait(10)
    assert 0 < len(sender.acked) < n
    sink_proc.append(start_sink(config, log))
    wait_listening(port, sink_proc[-1])
    sender.join(120)
    assert not sender.is_alive()
    assert set(sender.acked) == set(hashes), "some message never got a 250"
    assert sender.failures >= 1  # the kill cut a session: something was sent again
    spool = Spool(tmp_path / "spool")
    _wait_drained(spool)

    # a clean stop: SIGTERM, exit 0
    sink_proc[-1].send_signal(signal.SIGTERM)
    assert sink_proc[-1].wait(30) == 0, log.read_text()[-2000:]

    store = Store.open(store_url)
    try:
        with store.begin() as conn:
            per_message: dict[str, int] = dict(
                conn.execute(
                    sa.text(
                        "SELECT message_hash, COUNT(*) FROM feedback_messages GROUP BY message_hash"
                    )
                ).all()
            )
            per_event: dict[str, int] = dict(
                conn.execute(
                    sa.text(
                        "SELECT message_hash, COUNT(*) FROM feedback_events GROUP BY message_hash"
                    )
                ).all()
            )
            kinds = {
                row[0] for row in conn.execute(sa.text("SELECT DISTINCT kind FROM feedback_events"))
            }
    finally:
        store.close()
    assert set(per_message) == set(hashes), "a 250'd message is missing from the store"
    assert set(per_message.values()) == {1}
    assert per_event == dict.fromkeys(hashes, 1), "an event is missing or counted twice"
    assert kinds == {"bounce"}
    assert not list(spool.quarantine_dir.iterdir())
    kept = {r.message_hash for p in spool.done_dir.iterdir() for r in read_segment(p.read_bytes())}
    assert kept >= set(hashes), "a processed message is missing from done/"
    assert not list(spool.tmp.iterdir())


def test_crash_between_commit_and_done_is_a_no_op(
    tmp_path: Path, sink_proc: list[subprocess.Popen[bytes]]
) -> None:
    """The store has the message (committed) but the spool still has it in new/: the
    restart processes it again and nothing is counted twice."""
    intake = pytest.importorskip("monitor.feedback_intake")
    from monitor.config import load_config
    from monitor.inventory import Inventory

    store_url = f"sqlite:///{tmp_path / 'repmon.db'}"
    port = free_port(socket.SOCK_STREAM)
    config_path = write_config(tmp_path, port, store_url)
    config = load_config(config_path)
    spool = Spool(tmp_path / "spool")
    raw = dsn(7)
    msg = spool.accept(raw, {"mail_from": "", "rcpt_tos": [f"bounces@{DOMAIN}"]})
    store = Store.open(store_url)
    try:
        intake.ingest_spooled(
            store,
            config,
            Inventory.from_config(config),
            raw,
            msg.message_hash,
            msg.received_at,
            str(msg.path),
        )
        sink_proc.append(start_sink(config_path, tmp_path / "sink.log"))
        wait_listening(port, sink_proc[-1])
        _wait_drained(spool)
        sink_proc[-1].send_signal(signal.SIGTERM)
        assert sink_proc[-1].wait(30) == 0
        with store.begin() as conn:
            messages = conn.execute(sa.text("SELECT COUNT(*) FROM feedback_messages")).scalar()
            events = conn.execute(sa.text("SELECT COUNT(*) FROM feedback_events")).scalar()
    finally:
        store.close()
    assert (messages, events) == (1, 1)
    assert spool.evidence(msg.message_hash) is not None

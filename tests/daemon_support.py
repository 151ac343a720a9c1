"""Helpers for the ``repmon run`` tests: the subprocess, a webhook receiver, ARF messages."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    """Poll ``probe`` until it returns something truthy; fail the test with ``what`` otherwise."""
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = probe()
        except (OSError, urllib.error.URLError, json.JSONDecodeError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Webhooks:
    """A real HTTP server on loopback that records every POST body (JSON)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append(json.loads(body or b"{}"))
                outer.headers.append(dict(self.headers))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def webhooks() -> Iterator[Webhooks]:
    w = Webhooks()
    try:
        yield w
    finally:
        w.close()


class Daemon:
    """``repmon run`` as a subprocess, with its log in a file."""

    def __init__(self, config: Path, workdir: Path, name: str = "a") -> None:
        self.log = workdir / f"run-{name}.log"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from monitor.cli import run; run()",
                "run",
                "--config",
                str(config),
                "--instance",
                name,
                "--log-json",
            ],
            cwd=workdir,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                out.append({"msg": raw})
        return out

    def terminate(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop_quietly(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def http_json(url: str, data: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def arf_complaint(source_ip: str, n: int, domain: str = "customer.example") -> bytes:
    """An RFC 5965 abuse report about a message we sent from ``source_ip``."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "feedback@fbl.mailbox.example"
    report["To"] = "fbl@fbl.repmon.example"
    report["Subject"] = f"Abuse report {n}"
    report["Message-ID"] = f"<arf-{n}-{source_ip}@fbl.mailbox.example>"
    report.attach(MIMEText("This is an abuse report for a message you sent.\n"))
    fields = (
        "Feedback-Type: abuse\r\nUser-Agent: MailboxFBL/1.0\r\nVersion: 1\r\n"
        f"Source-IP: {source_ip}\r\nOriginal-Mail-From: <bounce@{domain}>\r\n"
        f"Original-Rcpt-To: <user{n}@mailbox.example>\r\nReported-Domain: {domain}\r\n"
        "Arrival-Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
    )
    part = MIMEText(fields, "feedback-report")
    part.replace_header("Content-Type", "message/feedback-report")
    report.attach(part)
    original = EmailMessage()
    original["From"] = f"news@{domain}"
    original["To"] = f"user{n}@mailbox.example"
    original["Subject"] = "Our offers"
    original.set_content("Hello\n")
    report.attach(MIMEMessage(original))
    return report.as_bytes()


def send_mail(port: int, raw: bytes, rcpt: str = "fbl@fbl.repmon.example") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail("feedback@fbl.mailbox.example", [rcpt], raw)

"""Abuse mail and files for the intake, store, rule and view tests, and their config.

The inventory: pool ``web-a`` 192.0.2.0/28 of customer ``acme``, pool ``web-b``
198.51.100.0/28 of customer ``globex``, and the domain ``shop.acme.example`` of acme.
Addresses in 203.0.113.0/24 are not ours.
"""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path
from typing import Any

from monitor.config import Config, parse_config

ABUSE_DESK = "abuse@provider.example"
FEEDBACK = "fbl@feedback.example"
ACME_IPS = [f"192.0.2.{i}" for i in range(1, 6)]
GLOBEX_IPS = [f"198.51.100.{i}" for i in range(1, 4)]
FOREIGN = "203.0.113.77"


def settings(store_url: str, spool: str = "spool", **abuse: Any) -> dict[str, Any]:
    return {
        "store": {"url": store_url},
        # an unreachable loopback resolver: nothing here may reach beyond the machine
        "resolver": {"nameservers": ["127.0.0.1:9"], "timeout": 0.5},
        "inventory": {
            "pools": [
                {
                    "name": "web-a",
                    "customer": "acme",
                    "cidrs": ["192.0.2.0/28"],
                    "domains": ["shop.acme.example"],
                },
                {"name": "web-b", "customer": "globex", "cidrs": ["198.51.100.0/28"]},
            ]
        },  # fmt: skip
        "sink": {
            "listen": "127.0.0.1:0",
            "accept_domains": ["feedback.example"],
            "spool": spool,
        },
        "abuse": {"accept_addresses": [ABUSE_DESK], **abuse},
    }


def config(store_url: str, spool: str = "spool", **abuse: Any) -> Config:
    return parse_config(settings(store_url, spool, **abuse))


def write_config(tmp_path: Path, store_url: str, **abuse: Any) -> Path:
    """The same settings as a TOML file for the command line."""
    import json

    path = tmp_path / "repmon.toml"
    s = settings(store_url, str(tmp_path / "spool"), **abuse)
    lines = [f'[store]\nurl = "{store_url}"\n']
    for pool in s["inventory"]["pools"]:
        lines.append("[[inventory.pools]]")
        for key, value in pool.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    lines.append(f"[abuse]\naccept_addresses = {json.dumps([ABUSE_DESK])}")
    for key, value in abuse.items():
        lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def xarf_login(ip: str, n: int = 0, date: str = "Tue, 14 May 2024 07:58:01 +0000") -> bytes:
    """An X-ARF 0.2 login-attack report (fail2ban style) about ``ip``; ``n`` makes it distinct."""
    part = (
        "---\nReported-From: reports@fail2ban.example\nCategory: abuse\n"
        "Report-Type: login-attack\nService: ssh\nVersion: 0.2\n"
        f"Date: {date}\nSource-Type: ip-address\nSource: {ip}\nPort: 22\n"
        f"Report-ID: {n}@fail2ban.example\n"
        "Schema-URL: http://www.x-arf.org/schema/abuse_login-attack_0.1.2.json\n"
        "Attachment: text/plain\n"
    )
    lines = [
        "From: Reporter <reports@fail2ban.example>",
        f"To: {ABUSE_DESK}",
        f"Subject: abuse report about {ip} [{n}]",
        "Date: Tue, 14 May 2024 08:00:00 +0000",
        "X-ARF: YES",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="XX"',
        "",
        "--XX",
        "Content-Type: text/plain",
        "",
        f"Hello, the address {ip} attacked our SSH server (ticket {n}).",
        "--XX",
        'Content-Type: text/plain; name="report.txt"',
        "",
        part,
        "--XX",
        'Content-Type: text/plain; name="logfile.log"',
        "",
        f"May 14 07:58:01 sshd: Failed password for root from {ip} port 4711 ssh2",
        "--XX--",
        "",
    ]
    return "\r\n".join(lines).encode()


CSV_HEADER = '"timestamp","ip","protocol","port","hostname","tag","asn","geo","region","city"\n'


def shadowserver_csv(ips: list[str], rows: int | None = None) -> bytes:
    """An open-resolver report: ``rows`` rows (default one per address) cycling ``ips``."""
    n = rows if rows is not None else len(ips)
    body = "".join(
        f'"2024-05-01 00:05:{i % 60:02d}","{ips[i % len(ips)]}","udp",53,,'
        f'"openresolver",64500,"NL","X","Y"\n'
        for i in range(n)
    )
    return (CSV_HEADER + body).encode()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def shadowserver_mail(ips: list[str], day: str = "2024-05-01", rows: int | None = None) -> bytes:
    name = f"{day}-scan_dns-nl-asn.csv"
    body = base64.encodebytes(zipped(name, shadowserver_csv(ips, rows))).decode()
    return (
        f"From: autoreports@shadowserver.org\r\nTo: {ABUSE_DESK}\r\n"
        f"Subject: [NL] Shadowserver NL Open DNS Resolvers Report: {day}\r\n"
        "Date: Wed, 01 May 2024 06:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n'
        "\r\nThe report is attached.\r\n--B\r\nContent-Type: application/zip\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="{name}.zip"\r\n\r\n'
        f"{body}\r\n--B--\r\n"
    ).encode()


def unsure_letter(ip: str) -> bytes:
    """A letter the classifier cannot place: it goes to the review queue."""
    return (
        "From: Someone <someone@people.example>\r\n"
        f"To: {ABUSE_DESK}\r\nSubject: your server\r\n"
        "Date: Tue, 14 May 2024 09:00:00 +0000\r\n\r\n"
        f"Hello, something strange came from IP: {ip} yesterday. Please have a look.\r\n"
    ).encode()


def bounce() -> bytes:
    """A plain DSN for the feedback intake (about one of acme's addresses)."""
    return (
        "From: MAILER-DAEMON@mx.receiver.example\r\n"
        f"To: {FEEDBACK}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.receiver.example\r\n\r\n"
        "Final-Recipient: rfc822; gone@receiver.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <gone@receiver.example>: User unknown\r\n\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "From: news@shop.acme.example\r\nTo: gone@receiver.example\r\n"
        "X-Sending-IP: 192.0.2.1\r\n\r\n--b--\r\n"
    ).encode()

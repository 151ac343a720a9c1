"""Reports for the trust tests: DKIM keys that a real nsd serves, signed and forged
complaints, DMARC aggregate reports, and a config that aims repmon's resolver at the nsd.

Domains (under the reserved ``.test`` TLD):

* ``fbl.test`` — the mailbox provider's feedback loop: a DKIM key (selector ``s1``) and an
  SPF record authorizing 127.0.0.1 (for ``fbl.test`` and its HELO name ``mx.fbl.test``);
* ``evil.test`` — someone else's, with its own valid DKIM key and SPF record: its reports
  authenticate, but it is no source.
"""

from __future__ import annotations

import base64
import datetime as dt
from email import policy
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.hygiene_zones import spki_b64, txt

SOURCE = "fbl.test"
EVIL = "evil.test"
SELECTOR = "s1"
#: the sink's own domain (what it accepts mail for)
SINK_DOMAIN = "fbl.repmon.test"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def dkim_record(key: rsa.RSAPrivateKey) -> str:
    return f"v=DKIM1; k=rsa; p={spki_b64(key.public_key())}"


def zones(keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, str]:
    """nsd zones for ``fbl.test`` and ``evil.test`` with their keys (``keys[domain]``)."""
    spf = txt("v=spf1 ip4:127.0.0.1 -all")
    return {
        domain: (
            f"@ IN TXT {spf}\n"
            f"mx IN TXT {spf}\n"
            f"{SELECTOR}._domainkey IN TXT {txt(dkim_record(keys[domain]))}\n"
        )
        for domain in (SOURCE, EVIL)
    }


def sign(raw: bytes, domain: str, key: rsa.RSAPrivateKey) -> bytes:
    """``raw`` with a DKIM-Signature of ``domain`` (selector ``s1``) prepended."""
    header = dkim.sign(
        raw,
        SELECTOR.encode(),
        domain.encode(),
        pem(key),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return bytes(header) + raw


def complaint(source_ip: str, n: int, sender: str = f"feedback@{SOURCE}") -> bytes:
    """An RFC 5965 abuse report from ``sender`` about mail we sent from ``source_ip``,
    CRLF line ends (as it travels)."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = sender
    report["To"] = f"fbl@{SINK_DOMAIN}"
    report["Subject"] = f"Abuse report {n}"
    report["Date"] = "Mon, 02 Nov 2026 11:00:00 +0000"
    report["Message-ID"] = f"<arf-{n}-{source_ip}@{sender.rpartition('@')[2]}>"
    report.attach(MIMEText("This is an abuse report for a message you sent.\n"))
    fields = (
        "Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n"
        f"Source-IP: {source_ip}\r\nOriginal-Mail-From: <bounce@customer.test>\r\n"
        f"Original-Rcpt-To: <user{n}@mailbox.test>\r\nReported-Domain: customer.test\r\n"
    )
    part = MIMEText(fields, "feedback-report")
    part.replace_header("Content-Type", "message/feedback-report")
    report.attach(part)
    original = EmailMessage()
    original["From"] = "news@customer.test"
    original["To"] = f"user{n}@mailbox.test"
    original["Subject"] = "Our offers"
    original.set_content("Hello\n")
    report.attach(MIMEMessage(original))
    return report.as_bytes(policy=policy.SMTP)


def dmarc_report(
    source_ip: str,
    count: int,
    end: dt.datetime,
    sender: str = "noreply-dmarc-support@google.com",
    org: str = "google.com",
    report_id: str = "r1",
) -> bytes:
    """A DMARC aggregate report (XML attached) saying ``source_ip`` sent ``count`` messages
    in the day ending at ``end``."""
    begin = end - dt.timedelta(days=1)
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata>
    <org_name>{org}</org_name>
    <email>{sender}</email>
    <report_id>{report_id}</report_id>
    <date_range><begin>{int(begin.timestamp())}</begin><end>{int(end.timestamp())}</end></date_range>
  </report_metadata>
  <policy_published><domain>customer.test</domain><p>none</p></policy_published>
  <record>
    <row>
      <source_ip>{source_ip}</source_ip>
      <count>{count}</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf>
      </policy_evaluated>
    </row>
    <identifiers><header_from>customer.test</header_from></identifiers>
    <auth_results><spf><domain>customer.test</domain><result>pass</result></spf></auth_results>
  </record>
</feedback>
"""
    msg = MIMEMultipart()
    msg["From"] = sender
    msg["To"] = f"dmarc@{SINK_DOMAIN}"
    msg["Subject"] = f"Report domain: customer.test Submitter: {org} Report-ID: {report_id}"
    msg["Date"] = "Mon, 02 Nov 2026 11:00:00 +0000"
    msg["Message-ID"] = f"<{report_id}@{org}>"
    msg.attach(MIMEText("DMARC aggregate report.\n"))
    name = f"{org}!customer.test!{int(begin.timestamp())}!{int(end.timestamp())}.xml"
    att = MIMEApplication(xml.encode(), "xml", Name=name)
    att["Content-Disposition"] = f'attachment; filename="{name}"'
    msg.attach(att)
    return msg.as_bytes(policy=policy.SMTP)


def settings(store_url: str, nameserver: str, spool: str = "", **extra: Any) -> dict[str, Any]:
    """A config (as a dict for ``parse_config``) trusting ``fbl.test`` for complaints and
    bounces, DNS at ``nameserver``, the inventory 203.0.113.0/28 of customer acme."""
    out: dict[str, Any] = {
        "store": {"url": store_url},
        "resolver": {"nameservers": [nameserver], "timeout": 1.0},
        "sink": {"listen": "127.0.0.1:0", "accept_domains": [SINK_DOMAIN], "spool": spool},
        "inventory": {"pools": [{"name": "p1", "customer": "acme", "cidrs": ["203.0.113.0/28"]}]},
        "feedback": {
            "sources": [{"domain": SOURCE, "kinds": ["complaint", "bounce", "dmarc-aggregate"]}]
        },
    }
    out.update(extra)
    return out


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

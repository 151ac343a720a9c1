"""The templates of big reporters, and threat-indicator JSON."""

from __future__ import annotations

import gzip
import json

from collectors.abuse import parse_abuse
from collectors.abuse.model import AbuseReport
from collectors.abuse.reporters import threat_indicator


def mail(sender: str, subject: str, body: str) -> bytes:
    return (
        f"From: {sender}\nTo: abuse@provider.example\nSubject: {subject}\n"
        f"Date: Mon, 03 Jun 2024 12:00:00 +0000\nContent-Type: text/plain\n\n{body}"
    ).encode()


def one(raw: bytes) -> AbuseReport:
    [report] = parse_abuse(raw)
    return report


def test_project_honey_pot_counts_each_address_per_section() -> None:
    body = (
        "Report Date Range: 06/01/2024 - 06/03/2024\n\n"
        "IPs Engaged In Harvesting On Your Network:\n\n"
        "203.0.113.1 (H)\n  - Sat, 01 Jun 2024 10:00AM PDT\n\n"
        "IPs Engaged In Comment Spamming On Your Network:\n\n"
        "203.0.113.1 (C)\n2001:db8:0:0:0:0:0:2 (C)\n\n"
        "Other Potentially Suspicious IPs On Your Network:\n\nnone\n\n---------\n"
    )
    sender = "Project Honey Pot <monitor-bounce@projecthoneypot.org>"
    report = one(mail(sender, "Project Honey Pot Monitor Report (06/01/2024 - 06/03/2024)", body))
    assert report.category == "spam"
    assert report.count == 3
    assert report.ips == ["203.0.113.1", "2001:db8::2"]
    assert (
        report.reported_at is not None
        and report.reported_at.isoformat() == "2024-06-01T10:00:00-07:00"
    )


def test_spamcop_takes_the_subject_address_not_the_spam_headers() -> None:
    body = (
        "[ SpamCop V5.0 ]\nEmail from 203.0.113.90 / Mon, 3 Jun 2024 11:59:00 -0400\n\n"
        "[ Offending message ]\nReceived: from mx.internal (mx.internal [10.1.1.1])\n"
        "Received: from mail.bad.example (mail.bad.example [203.0.113.90])\nSubject: pills\n"
    )
    report = one(mail("1234@reports.spamcop.net", "[SpamCop (203.0.113.90) id:1234]pills", body))
    assert (report.category, report.ips, report.reporter) == ("spam", ["203.0.113.90"], "SpamCop")
    assert (
        report.reported_at is not None
        and report.reported_at.isoformat() == "2024-06-03T11:59:00-04:00"
    )


def test_nfoservers_reads_the_role_in_the_subject() -> None:
    sender = "NFOservers.com DDoS notifier <ddos-response@nfoservers.com>"
    amplifier = one(mail(sender, "Exploitable SSDP server used for an attack: 203.0.113.5", "..."))
    compromised = one(mail(sender, "Compromised host used for an attack: 203.0.113.6", "..."))
    assert (amplifier.category, amplifier.ips) == ("open-service", ["203.0.113.5"])
    assert (compromised.category, compromised.ips) == ("ddos", ["203.0.113.6"])


def test_spamhaus_listing_takes_its_problem_line() -> None:
    body = "to advise you that the IP below has been added:\n\nIP/cidr: 203.0.113.70\n\n"
    body += "Problem: Bank phishing site @203.0.113.70\n\nspam spam spam spammer spam\n"
    report = one(
        mail("notification@spamhaus.org", "SBL Notify: IP: 203.0.113.70 added to SBL", body)
    )
    assert (report.category, report.ips) == ("phishing", ["203.0.113.70"])


def test_webiron_text_notices() -> None:
    body = (
        "Unwanted and or Abusive Web Requests:\n\nOffending/Source IP:  203.0.113.80\n"
        "       - Issue: Client software detected as known botware (IE: botnets).\n"
        "       - Time: 2024-06-03 04:00:00-07:00\n"
        "       - Targeted URL: http://site.example/wp-login.php\n"
    )
    report = one(mail("WebIron <removes@abuse-reporting.webiron.com>", "203.0.113.80", body))
    assert (report.category, report.ips, report.reporter) == ("botnet", ["203.0.113.80"], "WebIron")
    assert (
        report.reported_at is not None
        and report.reported_at.isoformat() == "2024-06-03T04:00:00-07:00"
    )


def test_have_i_been_pwned_reports_a_domain_and_no_address() -> None:
    subject = "An email on provider.example has been pwned in a data breach"
    report = one(mail("Have I Been Pwned <noreply@haveibeenpwned.com>", subject, "..."))
    assert (report.category, report.ips, report.urls) == ("other", [], ["provider.example"])


def test_safe_browsing_takes_the_category_with_most_urls() -> None:
    body = (
        '<notification_message asn="64500" date="2024-06-01">\n'
        ' <list type="0"><url_info url="http://hacked.example/" ip="203.0.113.3" /></list>\n'
        ' <list type="1"><url_info url="http://phish.example/a" ip="203.0.113.4" />\n'
        '   <url_info url="http://203.0.113.5:8080/b" /></list>\n</notification_message>\n'
    )
    report = one(mail("Google Safe Browsing <noreply@google.com>", "Safe Browsing Report", body))
    assert (report.category, report.count) == ("phishing", 3)
    assert report.ips == ["203.0.113.3", "203.0.113.4", "203.0.113.5"]
    assert report.extra["categories"] == "malware, phishing"


INDICATOR = {
    "status": "MALICIOUS",
    "description": "Bank",
    "type": "URI",
    "indicator": {"indicator": "login-bank.example/secure/index.php", "type": "URI"},
    "owner": {"name": "PhishTankFeed"},
    "last_updated": "2024-06-03T10:00:00+0000",
    "enrichments": {"domain_name": "login-bank.example", "domain_address": "203.0.113.66"},
}


def test_a_threat_indicator() -> None:
    report = threat_indicator(INDICATOR)
    assert report is not None
    assert (report.category, report.ips) == ("phishing", ["203.0.113.66"])
    assert report.urls == ["login-bank.example/secure/index.php", "login-bank.example"]
    assert threat_indicator({"something": "else"}) is None


def test_a_gzipped_indicator_in_a_mail() -> None:
    import base64

    attachment = base64.encodebytes(gzip.compress(json.dumps(INDICATOR).encode())).decode()
    raw = (
        "From: aite@cert.example\nTo: abuse@provider.example\nSubject: AITE Notification\n"
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nThe report is attached as a gzipped JSON file.\n"
        '--B\nContent-Type: application/octet-stream; name="report.json.gz"\n'
        f"Content-Transfer-Encoding: base64\n\n{attachment}\n--B--\n"
    ).encode()
    report = one(raw)
    assert (report.category, report.format, report.ips) == (
        "phishing",
        "json-gz-email",
        ["203.0.113.66"],
    )


def test_clean_mx_lists_take_their_kind_from_the_subject_and_rows() -> None:
    body = (
        "|date |id |virusname |ip |domain |Url|\n"
        "+-------------------------------------\n"
        "|2024-06-01 10:00:00 CEST |1 |cleanmx_phish |203.0.113.40 |x.example |http://x.example/a\n"
        "|2024-06-01 10:05:00 CEST |2 |cleanmx_phish |203.0.113.40 |x.example |http://x.example/b\n"
    )
    subject = "[clean-mx-portals-1](203.0.113.40)-->(abuse@provider.example) portals (2 so far)"
    report = one(mail("Abuse-Team <abuse@clean-mx.de>", subject, body))
    assert (report.category, report.format, report.count) == ("phishing", "free-text-table", 2)
    assert report.ips == ["203.0.113.40"]
    assert report.urls == ["http://x.example/a", "http://x.example/b"]


def test_cyscon_signatures() -> None:
    body = "IP:             203.0.113.55\nURL:            http://shop.example/\n"
    sender = "NO REPLY C-SIRT <abuse-reports@cyscon.de>"
    spam = one(mail(sender, "[CSIRT#1] Spamvertized website (CYSC.SPAMVERTIZED.GEN)", body))
    defaced = one(mail(sender, "[CSIRT#2] Defaced website (CYSC.DEFACEMENT.GEN)", body))
    assert (spam.category, spam.ips, spam.urls) == (
        "spam",
        ["203.0.113.55"],
        ["http://shop.example/"],
    )
    assert defaced.category == "other"

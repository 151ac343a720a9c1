"""Letters written for people: which addresses, URLs, times and counts they report."""

from __future__ import annotations

from collectors.abuse import parse_abuse
from collectors.abuse.freetext import TextInput, examine, stated_ips
from collectors.abuse.model import AbuseReport


def letter(subject: str, body: str, sender: str = "soc@reporter.example", extra: str = "") -> bytes:
    headers = (
        "Received: from mx.reporter.example (mx.reporter.example [198.51.100.20])\n"
        "\tby mx.provider.example; Tue, 14 May 2024 10:02:11 +0200\n"
        f"From: Reporter <{sender}>\nTo: abuse@provider.example\nSubject: {subject}\n"
        f"Date: Tue, 14 May 2024 10:02:09 +0200\n{extra}Content-Type: text/plain; charset=utf-8\n\n"
    )
    return (headers + body).encode()


def one(raw: bytes) -> AbuseReport:
    [report] = parse_abuse(raw)
    return report


SSH = """Hello,

our intrusion prevention system detected repeated failed logins against
our SSH server 198.51.100.99 from an address in your network.

Source IP: 203.0.113.7

Log excerpt (server OpenSSH_8.9p1, kernel 5.15.0.91):
May 14 07:58:01 bastion sshd[21043]: Failed password for root from 203.0.113.7 port 41822 ssh2
May 14 07:58:03 bastion sshd[21043]: Failed password for invalid user a from 203.0.113.7 port 4183
"""


def test_a_brute_force_letter() -> None:
    report = one(letter("Abuse report: SSH brute force attacks from 203.0.113.7", SSH))
    assert report.category == "login-attack"
    assert 0.5 <= report.confidence <= 0.8 and not report.needs_review
    assert "brute force" in report.reason
    # not our server, not the relay, not versions
    assert report.ips == ["203.0.113.7"]
    assert report.count == 1
    assert report.format == "free-text"
    assert "Failed password" in report.excerpt
    assert report.reporter == "reporter.example"
    assert report.reported_at is not None  # the message date, as nothing else is stated


def test_defanged_indicators_are_reported() -> None:
    body = (
        "We identified a credential phishing page impersonating our client:\n\n"
        "  URL: hxxps://secure-login[.]example[.]com/verify\n"
        "  Hosted on: 192[.]0[.]2[.]77\n"
        "  First seen: 2024-05-15 07:41:12 UTC\n\n"
        "Screenshot: https://reporter.example/case/991\n"
    )
    report = one(letter("Phishing site on your network", body))
    assert report.category == "phishing"
    assert report.ips == ["192.0.2.77"]
    assert report.urls == ["https://secure-login.example.com/verify"]  # not the reporter's link
    assert (
        report.reported_at is not None
        and report.reported_at.isoformat() == "2024-05-15T07:41:12+00:00"
    )


def test_a_table_gives_one_incident_per_row_and_counts_sources() -> None:
    body = (
        "The following connection attempts (port scan) came from your address space\n"
        "against our network 198.51.100.0/24:\n\n"
        "Time (UTC)            | Source IP      | Destination    | Port\n"
        "2024-05-16 11:00:01   | 203.0.113.44   | 198.51.100.10  | 22\n"
        "2024-05-16 11:00:02   | 203.0.113.44   | 198.51.100.11  | 23\n"
        "2024-05-16 11:00:05   | 203.0.113.45   | 198.51.100.12  | 3389\n\nThanks\n"
    )
    report = one(letter("Port scanning from your network", body))
    assert report.category == "port-scan"
    assert report.format == "free-text-table"
    assert report.ips == ["203.0.113.44", "203.0.113.45"]
    assert report.count == 2  # two sources
    assert len(report.incidents) == 3
    assert (
        report.reported_at is not None
        and report.reported_at.isoformat() == "2024-05-16T11:00:01+00:00"
    )


def test_an_address_announced_on_the_line_before() -> None:
    body = (
        "We have observed more than 6 login attempts originating from the following IP address:\n\n"
        "203.0.113.12\n\nTarget: 198.51.100.0/24\n"
    )
    assert one(letter("Brute force attack", body)).ips == ["203.0.113.12"]


def test_targets_victims_and_our_hosts_are_not_reported() -> None:
    body = (
        "Attacker 203.0.113.50 sent a flood to our customer 198.51.100.5 (victim: 198.51.100.6).\n"
        "Destination IP: 198.51.100.7\n"
    )
    assert one(letter("DDoS attack", body)).ips == ["203.0.113.50"]


def test_unlabelled_letters_report_public_addresses_only() -> None:
    body = "Please look at 203.0.113.60 which keeps hammering us; our gateway 10.0.0.1 logged it.\n"
    report = one(letter("abuse", body))
    assert report.ips == ["203.0.113.60"]


def test_forwarded_header_lines_are_relays_not_offenders() -> None:
    body = (
        "Spam received from your customer, headers below.\n\n"
        "Received: from relay.isp.example (relay.isp.example [198.51.100.33])\n"
        "\tby mx.reporter.example; Tue, 14 May 2024 10:00:00 +0200\n"
        "Subject: cheap pills\n\nThe sender IP is 203.0.113.77.\n"
    )
    assert one(letter("Spam complaint", body)).ips == ["203.0.113.77"]


def test_a_forwarded_spam_names_its_sender() -> None:
    raw = (
        b"From: Jane <jane@mailbox.example>\nTo: abuse@provider.example\nSubject: Fwd: you won\n"
        b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\n'
        b"--B\nContent-Type: text/plain\n\nI keep receiving this from your servers.\n"
        b"--B\nContent-Type: message/rfc822\n\n"
        b"Received: from mx.mailbox.example (mx.mailbox.example [10.0.0.5])\n\tby store; 17 May\n"
        b"Received: from mail.bad.example (mail.bad.example [203.0.113.88])\n\tby mx; 17 May 2024\n"
        b"From: winner@bad.example\nSubject: you won\n\nClaim your prize now.\n--B--\n"
    )
    report = one(raw)
    assert report.ips == ["203.0.113.88"]
    assert report.category == "spam"


def test_a_copyright_letter_counts_its_links() -> None:
    body = (
        "We are the authorised agent of the copyright holder. The following links infringe:\n\n"
        "Infringing URL: https://files.example/d/1/movie.mkv\n"
        "Infringing URL: https://files.example/d/2/movie.mkv\n"
        "Infringing URL: https://files.example/d/3/movie.mkv\n\n"
        "Client website: https://studio.example/\nThe files are hosted at IP 192.0.2.200.\n"
    )
    report = one(letter("DMCA notice - infringing content", body))
    assert report.category == "copyright"
    assert report.count == 3
    assert report.urls == [f"https://files.example/d/{i}/movie.mkv" for i in (1, 2, 3)]
    assert report.ips == ["192.0.2.200"]


def test_a_letter_without_anything_needs_review() -> None:
    report = one(letter("Hello", "Could you please call me back about our contract?\n"))
    assert report.category == "other"
    assert report.needs_review


def test_stated_ips_only_takes_what_the_text_states() -> None:
    text = "Phishing at http://x.example/p [192.0.2.5]\n1 gw (198.51.100.1)\n2 hop (198.51.100.2)\n"
    assert stated_ips("", [text], set()) == ["192.0.2.5"]


def test_examine_a_bare_text() -> None:
    found = examine(TextInput(body="IP: 203.0.113.1\nIP: 203.0.113.2\nIP: 203.0.113.1\n"))
    assert (found.ips, found.count, found.how) == (["203.0.113.1", "203.0.113.2"], 2, "stated")


def test_pasted_headers_name_the_spam_source() -> None:
    body = (
        "Hi, I got this unsolicited mail, headers below:\n\n"
        "Received: from mx.home.example (mx.home.example [10.1.1.1])\n"
        "        by store.home.example; Tue, 4 Jun 2024 10:00:00 +0000\n"
        "Received: from bulk.sender.example (bulk.sender.example [203.0.113.99])\n"
        "        by mx.home.example; Tue, 4 Jun 2024 09:59:59 +0000\n"
        "From: deals@sender.example\nSubject: Cheap watches\n\n"
        "Buy now at http://203.0.113.200/shop\n"
    )
    report = one(letter("spam from your network", body))
    assert (report.category, report.ips) == ("spam", ["203.0.113.99"])


def test_an_address_below_a_reported_url() -> None:
    body = "We found a phishing page:\n\nhttp://login.example/verify\n[192.0.2.9]\n\nRegards\n"
    assert one(letter("Phishing", body)).ips == ["192.0.2.9"]

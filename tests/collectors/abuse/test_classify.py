"""From a format's own label, or the words of a message, to a category and a confidence."""

from __future__ import annotations

import pytest

from collectors.abuse import classify
from collectors.abuse.model import CATEGORIES, REVIEW_THRESHOLD, SEVERITY


def test_every_category_has_a_severity() -> None:
    assert set(SEVERITY) == set(CATEGORIES)
    assert {c for c, s in SEVERITY.items() if s == "high"} >= {
        "botnet",
        "ddos",
        "phishing",
        "malware",
    }


@pytest.mark.parametrize(
    ("report_type", "category"),
    [
        ("login-attack", "login-attack"),
        ("malware-attack", "malware"),
        ("harvesting", "spam"),
        ("regbot", "spam"),
        ("ircbot", "botnet"),
        ("badbot", "web-attack"),
        ("hack-attack", "web-attack"),
        ("portscan", "port-scan"),
        ("info", "other"),
    ],
)
def test_xarf0_report_types(report_type: str, category: str) -> None:
    verdict = classify.from_xarf0(report_type)
    assert verdict is not None
    assert verdict.category == category
    assert verdict.confidence >= 0.9
    assert report_type in verdict.reason


def test_unknown_xarf0_type_is_read_from_its_words_with_less_confidence() -> None:
    verdict = classify.from_xarf0("ssh-bruteforce")
    assert verdict is not None and verdict.category == "login-attack"
    assert verdict.confidence < 0.9
    assert classify.from_xarf0("zzz") is None


@pytest.mark.parametrize(
    ("report_type", "category"),
    [("LoginAttack", "login-attack"), ("DOS", "ddos"), ("OpenService", "open-service"),
     ("Exploit", "web-attack"), ("WebCrawler", "other"), ("Phishing", "phishing")],
)  # fmt: skip
def test_xarf_json_report_types(report_type: str, category: str) -> None:
    verdict = classify.from_xarf_json(report_type)
    assert verdict is not None and verdict.category == category


@pytest.mark.parametrize(
    ("cls", "kind", "category"),
    [
        ("connection", "login_attack", "login-attack"),
        ("connection", "reconnaissance", "port-scan"),
        ("connection", "infected_host", "botnet"),
        ("content", "remote_compromise", "malware"),
        ("messaging", "social_engineering", "fraud"),
        ("infrastructure", "compromised_microsoft_exchange", "vulnerable-service"),
        ("reputation", "trap", "spam"),
        ("vulnerability", "open", "open-service"),
    ],
)
def test_xarf_v4_category_and_type(cls: str, kind: str, category: str) -> None:
    verdict = classify.from_xarf_v4(cls, kind)
    assert verdict is not None and verdict.category == category


def test_xarf_v4_class_alone_gives_a_lower_confidence() -> None:
    verdict = classify.from_xarf_v4("copyright", "something_new")
    assert verdict is not None
    assert (verdict.category, verdict.confidence) == ("copyright", 0.6)


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("scan_ntpmonitor", "open-service"),  # an amplifier found by a scan, not an attack
        ("dns_openresolver", "open-service"),
        ("scan_rsync", "open-service"),
        ("Accessible Apple Filing Protocol", "open-service"),
        ("ssl_scan", "vulnerable-service"),
        ("scan_ssl_poodle", "vulnerable-service"),
        ("netis-router", "vulnerable-service"),
        ("botnet_drone", "botnet"),
        ("botnet-ddos", "botnet"),  # C&C commands: still a botnet report
        ("microsoft-sinkhole", "botnet"),
        ("sinkhole-http-referer", "malware"),
        ("compromised_website", "malware"),
        ("sandbox-irc", "malware"),
        ("spam-url", "spam"),
        ("irc-port", "other"),  # statistics, not incidents
        ("event4_honeypot_brute_force", "login-attack"),
    ],
)
def test_shadowserver_report_names(name: str, category: str) -> None:
    verdict = classify.from_shadowserver(name)
    assert verdict is not None and verdict.category == category


def test_arf_feedback_types() -> None:
    assert classify.from_arf("abuse").category == "spam"
    assert classify.from_arf("").category == "spam"  # providers' variants carry no type
    assert classify.from_arf("virus").category == "malware"
    assert classify.from_arf("not-spam").confidence < REVIEW_THRESHOLD


@pytest.mark.parametrize(
    ("subject", "body", "category"),
    [
        ("SSH brute force from 203.0.113.7", "many failed logins", "login-attack"),
        ("Abuse report", "we saw a port scan from your network, probing 2000 ports", "port-scan"),
        ("DDoS attack", "UDP flood against our customer", "ddos"),
        ("Incident", "the host is part of a botnet and talks to its C&C server", "botnet"),
        ("Phishing site", "a fake login page impersonating a bank", "phishing"),
        ("Notice of claimed infringement", "copyright holder; DMCA", "copyright"),
        ("Open recursive resolver", "used in DNS amplification", "open-service"),
        ("Vulnerable Exchange server", "CVE-2021-26855 unpatched", "vulnerable-service"),
        ("SQL injection attempts", "from your customer's server", "web-attack"),
        ("Investment scam", "an advance-fee fraud website", "fraud"),
        ("Unsolicited bulk email", "we received spam from your IP", "spam"),
    ],
)
def test_keywords(subject: str, body: str, category: str) -> None:
    verdict = classify.from_keywords(subject, body)
    assert verdict.category == category
    assert REVIEW_THRESHOLD <= verdict.confidence <= 0.8
    assert "mention" in verdict.reason


def test_words_never_claim_the_certainty_of_a_label() -> None:
    verdict = classify.from_keywords("phishing phishing phish", "phishing " * 50)
    assert verdict.confidence <= 0.8


def test_no_words_give_other_below_the_review_threshold() -> None:
    verdict = classify.from_keywords("Hello", "Please call me back.")
    assert verdict.category == "other"
    assert verdict.confidence < REVIEW_THRESHOLD


def test_the_reporters_prior_settles_a_close_call() -> None:
    subject, body = "Account takeover attempts", "possibly a botnet abusing our service"
    assert classify.from_keywords(subject, body, prior="login-attack").category == "login-attack"
    assert classify.from_keywords("Report", "", prior="spam").category == "spam"

"""Reading Postmaster Tools JSON in the published shapes, without a network."""

from __future__ import annotations

import datetime as dt

import pytest

from checks.errors import ParseError
from collectors.postmaster.parse import (
    domain_of,
    next_page,
    parse_compliance,
    parse_domains,
    parse_traffic_page,
    parse_traffic_stats,
)

STATS = {
    "name": "domains/mail.example.com/trafficStats/20240508",
    "userReportedSpamRatio": 0.0015,
    "userReportedSpamRatioLowerBound": 0.0011,
    "userReportedSpamRatioUpperBound": 0.0019,
    "ipReputations": [
        {"reputation": "HIGH", "ipCount": "3", "sampleIps": ["192.0.2.10", "192.0.2.11"]},
        {"reputation": "BAD", "ipCount": "1", "sampleIps": ["192.0.2.12"]},
    ],
    "domainReputation": "LOW",
    "spammyFeedbackLoops": [{"id": "campaign-42", "spamRatio": 0.004}],
    "spfSuccessRatio": 1,
    "dkimSuccessRatio": 0.9,
    "dmarcSuccessRatio": 0.97,
    "outboundEncryptionRatio": 0.99,
    "inboundEncryptionRatio": 1.0,
    "deliveryErrors": [
        {"errorClass": "TEMPORARY_ERROR", "errorType": "RATE_LIMIT_EXCEEDED", "errorRatio": 0.02}
    ],
}


def test_traffic_stats_become_a_domain_day() -> None:
    day = parse_traffic_stats(STATS)
    assert (day.domain, day.day) == ("mail.example.com", dt.date(2024, 5, 8))
    assert (day.spam_ratio, day.spam_ratio_lower, day.spam_ratio_upper) == (0.0015, 0.0011, 0.0019)
    assert day.domain_reputation == "LOW"
    assert day.ips_in("BAD") == (1, ("192.0.2.12",))
    assert day.ips_in("HIGH", "MEDIUM") == (3, ("192.0.2.10", "192.0.2.11"))
    assert (day.spf_ratio, day.dkim_ratio, day.dmarc_ratio) == (1.0, 0.9, 0.97)
    assert day.delivery_errors[0].error_type == "RATE_LIMIT_EXCEEDED"
    assert day.spammy_feedback_loops[0].id == "campaign-42"


def test_metrics_gmail_leaves_out_stay_none() -> None:
    day = parse_traffic_stats({"name": "domains/a.example/trafficStats/20240508"})
    assert day.spam_ratio is None and day.dkim_ratio is None
    assert day.domain_reputation == "" and day.ip_reputations == ()


@pytest.mark.parametrize(
    "change",
    [
        {"userReportedSpamRatio": "0.1"},
        {"userReportedSpamRatio": 1.5},
        {"dkimSuccessRatio": True},
        {"ipReputations": [{"reputation": "LOW", "ipCount": "many"}]},
        {"ipReputations": [{"reputation": "LOW", "ipCount": "1", "sampleIps": ["nope"]}]},
        {"name": "domains/a.example/trafficStats/yesterday"},
        {"name": "something/else"},
        {"deliveryErrors": {"errorType": "x"}},
    ],
)
def test_a_wrong_type_is_an_error_not_a_zero(change: dict[str, object]) -> None:
    with pytest.raises(ParseError):
        parse_traffic_stats({**STATS, **change})


def test_pages_and_domains() -> None:
    page = {
        "domains": [
            {
                "name": "domains/Mail.Example.com",
                "permission": "OWNER",
                "createTime": "2023-01-01T00:00:00Z",
            },
            {"name": "domains/pending.example.net", "permission": "NONE"},
        ],
        "nextPageToken": "abc",
    }
    mail, pending = parse_domains(page)
    assert (mail.domain, mail.permission) == ("mail.example.com", "OWNER")
    assert pending.permission == "NONE"
    assert next_page(page) == "abc" and next_page({}) == ""
    assert parse_traffic_page({}) == []  # Google leaves empty lists out
    assert domain_of("domains/x.example") == "x.example"
    with pytest.raises(ParseError):
        domain_of("domains/x.example/trafficStats")


def test_compliance_prefers_the_subdomains_own_data() -> None:
    payload = {
        "name": "domains/mail.example.com/complianceStatus",
        "complianceData": {
            "domainId": "example.com",
            "rowData": [{"requirement": "SPF", "status": {"status": "NEEDS_WORK"}}],
        },
        "subdomainComplianceData": {
            "domainId": "mail.example.com",
            "rowData": [
                {"requirement": "SPF", "status": {"status": "COMPLIANT"}},
                {"requirement": "HONOR_UNSUBSCRIBE", "status": {"status": "NEEDS_WORK"}},
                {"requirement": "DNS_RECORDS", "status": {"status": "STATE_UNSPECIFIED"}},
            ],
            "honorUnsubscribeVerdict": {
                "status": {"status": "NEEDS_WORK"},
                "reason": "NOT_HONORING_TOO_MANY_CAMPAIGNS",
            },
        },
    }
    status = parse_compliance(payload, "mail.example.com")
    assert [(r.requirement, r.status) for r in status.requirements] == [
        ("SPF", "COMPLIANT"),
        ("HONOR_UNSUBSCRIBE", "NEEDS_WORK"),
        ("DNS_RECORDS", ""),
    ]
    (work,) = status.needs_work
    assert work.reason == "NOT_HONORING_TOO_MANY_CAMPAIGNS"

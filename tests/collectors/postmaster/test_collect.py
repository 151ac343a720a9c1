"""The Postmaster Tools collector against a loopback Google: token grant, paging, retries,
refusals and outages."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from checks.result import CheckResult
from collectors.postmaster import PostmasterConfig, collect_postmaster
from collectors.postmaster.auth import SCOPE_V1, SCOPE_V2
from collectors.targets import Owner
from tests.collectors.postmaster.google_server import (
    GOOGLE_AUDIENCE,
    GoogleState,
    google_error,
    google_server,
)
from tests.collectors.snds.inventory import Inventory

pytestmark = pytest.mark.servers

TODAY = dt.date(2024, 5, 10)
EMAIL = "repmon-reader@repmon-test.iam.gserviceaccount.com"
P1 = Owner(pool="transactional", customer="acme")
P2 = Owner(pool="bulk", customer="globex")
INVENTORY = Inventory(
    {"192.0.2.12": P2},
    {"mail.example.com": P1, "news.example.com": P2, "bulk.example.com": P2},
)


def stats(domain: str, day: dt.date, **change: Any) -> dict[str, Any]:
    """A TrafficStats object as the API publishes it: a healthy day, changed by ``change``."""
    out: dict[str, Any] = {
        "name": f"domains/{domain}/trafficStats/{day:%Y%m%d}",
        "userReportedSpamRatio": 0.0002,
        "userReportedSpamRatioLowerBound": 0.0001,
        "userReportedSpamRatioUpperBound": 0.0003,
        "ipReputations": [
            {"reputation": "HIGH", "ipCount": "3", "sampleIps": ["192.0.2.10", "192.0.2.11"]}
        ],
        "domainReputation": "HIGH",
        "spfSuccessRatio": 1,
        "dkimSuccessRatio": 1,
        "dmarcSuccessRatio": 0.998,
        "outboundEncryptionRatio": 0.99,
        "inboundEncryptionRatio": 1,
        "deliveryErrors": [
            {
                "errorClass": "TEMPORARY_ERROR",
                "errorType": "RATE_LIMIT_EXCEEDED",
                "errorRatio": 0.001,
            }
        ],
    }
    out.update(change)
    return out


def days(first: int, last: int) -> list[dt.date]:
    return [dt.date(2024, 5, d) for d in range(first, last + 1)]


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def state(private_key: rsa.RSAPrivateKey) -> GoogleState:
    s = GoogleState(private_key.public_key(), EMAIL, {SCOPE_V1, SCOPE_V2})
    s.domains = [
        {
            "name": "domains/mail.example.com",
            "permission": "OWNER",
            "createTime": "2023-01-05T10:00:00Z",
        },
        {
            "name": "domains/news.example.com",
            "permission": "READER",
            "createTime": "2023-02-01T10:00:00Z",
        },
        {
            "name": "domains/bulk.example.com",
            "permission": "OWNER",
            "createTime": "2023-03-01T10:00:00Z",
        },
        {
            "name": "domains/stranger.example.org",
            "permission": "READER",
            "createTime": "2023-04-01T10:00:00Z",
        },
        {
            "name": "domains/pending.example.net",
            "permission": "NONE",
            "createTime": "2024-05-01T10:00:00Z",
        },
    ]
    bad_day = stats(
        "mail.example.com",
        dt.date(2024, 5, 8),
        userReportedSpamRatio=0.0015,
        userReportedSpamRatioLowerBound=0.0012,
        userReportedSpamRatioUpperBound=0.0018,
        domainReputation="LOW",
        ipReputations=[
            {"reputation": "HIGH", "ipCount": "2", "sampleIps": ["192.0.2.10"]},
            {"reputation": "BAD", "ipCount": "1", "sampleIps": ["192.0.2.12"]},
        ],
        dkimSuccessRatio=0.9,
        spammyFeedbackLoops=[{"id": "campaign-42", "spamRatio": 0.004}],
    )
    s.stats = {
        # 9 May not published yet; 2 May outside the 7-day window
        "mail.example.com": [stats("mail.example.com", d) for d in days(2, 7)] + [bad_day],
        "news.example.com": [stats("news.example.com", d) for d in days(7, 9)],
        "bulk.example.com": [
            stats(
                "bulk.example.com",
                dt.date(2024, 5, 9),
                userReportedSpamRatio=0.0042,
                domainReputation="MEDIUM",
                ipReputations=[
                    {"reputation": "LOW", "ipCount": "2", "sampleIps": ["198.51.100.9"]}
                ],
            )
        ],
        "stranger.example.org": [stats("stranger.example.org", dt.date(2024, 5, 3))],
    }
    s.compliance = {
        "mail.example.com": {
            "name": "domains/mail.example.com/complianceStatus",
            "complianceData": {
                "domainId": "example.com",
                "rowData": [
                    {"requirement": "SPF", "status": {"status": "COMPLIANT"}},
                    {"requirement": "HONOR_UNSUBSCRIBE", "status": {"status": "NEEDS_WORK"}},
                ],
                "honorUnsubscribeVerdict": {
                    "status": {"status": "NEEDS_WORK"},
                    "reason": "NOT_HONORING",
                },
            },
        },
        "news.example.com": {
            "name": "domains/news.example.com/complianceStatus",
            "complianceData": {
                "domainId": "example.com",
                "rowData": [
                    {"requirement": "SPF", "status": {"status": "COMPLIANT"}},
                    {"requirement": "DKIM", "status": {"status": "COMPLIANT"}},
                ],
            },
        },
    }
    return s


@pytest.fixture
def base(state: GoogleState) -> Iterator[str]:
    with google_server(state) as url:
        yield url


def key_file(tmp_path: Path, key: rsa.RSAPrivateKey, token_uri: str | None) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "repmon-test",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    }
    if token_uri is not None:
        info["token_uri"] = token_uri
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(info), encoding="utf-8")
    return path


def config(path: Path, base: str, **kw: Any) -> PostmasterConfig:
    return PostmasterConfig.model_validate(
        {"credentials_file": str(path), "api_base": base, "compliance": True, **kw}
    )


def index(results: list[CheckResult]) -> dict[tuple[str, str, str], CheckResult]:
    out = {r.key: r for r in results}
    assert len(out) == len(results), "one result per (target, check, source)"
    return out


def test_a_run_reads_every_domain_and_judges_it(
    state: GoogleState,
    base: str,
    tmp_path: Path,
    private_key: rsa.RSAPrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    path = key_file(tmp_path, private_key, f"{base}/token")
    report = collect_postmaster(config(path, base), INVENTORY, today=TODAY, backoff=0)

    # one grant for the whole run, with an assertion that passed every check
    assert [(p, c["iss"], c["aud"]) for p, c in state.grants] == [
        ("/token", EMAIL, GOOGLE_AUDIENCE)
    ]
    assert set(state.grants[0][1]["scope"].split()) == {SCOPE_V1, SCOPE_V2}
    # paging: three pages of domains, and the 7-day window ending yesterday
    gets = [p for m, p in state.seen if m == "GET"]
    assert sum(p.startswith("/v1/domains?") for p in gets) == 3
    mail_query = next(p for p in gets if p.startswith("/v1/domains/mail.example.com/trafficStats"))
    assert "startDate.year=2024&startDate.month=5&startDate.day=3" in mail_query
    assert "endDate.year=2024&endDate.month=5&endDate.day=10" in mail_query
    assert any("pageToken=2" in p and "mail.example.com" in p for p in gets)

    assert len(report.registered) == 5
    assert report.judged == {
        "mail.example.com": dt.date(2024, 5, 8),
        "news.example.com": dt.date(2024, 5, 9),
        "bulk.example.com": dt.date(2024, 5, 9),
    }
    assert report.missing["mail.example.com"] == [dt.date(2024, 5, 9)]
    rows = {(d.domain, d.day): d for d in report.days}
    assert len([k for k in rows if k[0] == "mail.example.com"]) == 6
    mail = rows[("mail.example.com", dt.date(2024, 5, 8))]
    assert (mail.pool, mail.customer, mail.watched) == ("transactional", "acme", True)
    assert mail.spammy_feedback_loops[0].spam_ratio == 0.004
    stranger = rows[("stranger.example.org", dt.date(2024, 5, 3))]
    assert (stranger.pool, stranger.watched) == ("", False)

    r = index(report.results)
    spam = r[("mail.example.com", "gmail-spam-rate", "")]
    assert (spam.status, spam.severity) == ("problem", "medium")
    assert "0.15%" in spam.detail and spam.fields["spam_rate_upper"] == 0.0018
    assert r[("bulk.example.com", "gmail-spam-rate", "")].severity == "high"
    assert r[("news.example.com", "gmail-spam-rate", "")].status == "ok"

    domain_rep = r[("mail.example.com", "gmail-reputation", "domain")]
    assert (domain_rep.status, domain_rep.severity) == ("problem", "medium")
    ip_rep = r[("mail.example.com", "gmail-reputation", "ip")]
    assert (ip_rep.status, ip_rep.severity) == ("problem", "high")
    assert ip_rep.fields["sample_ips"] == [
        {"ip": "192.0.2.12", "pool": "bulk", "customer": "globex"}
    ]
    bulk_ip = r[("bulk.example.com", "gmail-reputation", "ip")]
    assert (bulk_ip.severity, bulk_ip.fields["sample_ips"][0]["pool"]) == ("medium", "")
    assert r[("bulk.example.com", "gmail-reputation", "domain")].status == "ok"

    auth = r[("mail.example.com", "gmail-auth", "")]
    assert (auth.status, auth.severity) == ("problem", "medium") and "DKIM 90.00%" in auth.detail
    assert r[("news.example.com", "gmail-auth", "")].status == "ok"

    compliance = r[("mail.example.com", "gmail-compliance", "")]
    assert (
        compliance.status == "problem" and "HONOR_UNSUBSCRIBE (NOT_HONORING)" in compliance.detail
    )
    assert r[("news.example.com", "gmail-compliance", "")].status == "ok"
    assert r[("bulk.example.com", "gmail-compliance", "")].status == "unknown"

    # data older than max_lag_days is not judged; a domain without access is unknown
    for check, source in (("gmail-spam-rate", ""), ("gmail-reputation", "ip")):
        old = r[("stranger.example.org", check, source)]
        assert old.status == "unknown" and "the newest is 2024-05-03" in (old.error or "")
    pending = r[("pending.example.net", "gmail-spam-rate", "")]
    assert pending.status == "unknown" and EMAIL in (pending.error or "")
    assert "grant the service account access" in (pending.error or "")

    tokens = " ".join(state.tokens)
    logged = " ".join(rec.getMessage() for rec in caplog.records)
    assert not any(t in logged for t in state.tokens) and tokens


def test_the_config_token_uri_wins_over_the_key_files(
    state: GoogleState, base: str, tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    path = key_file(tmp_path, private_key, "http://127.0.0.1:9/never-asked")
    cfg = config(path, base, token_uri=f"{base}/alternate/token", compliance=False)
    state.required_scopes = {SCOPE_V1}
    report = collect_postmaster(cfg, INVENTORY, today=TODAY, backoff=0)
    assert [p for p, _ in state.grants] == ["/alternate/token"]
    assert report.judged and not any(r.check == "gmail-compliance" for r in report.results)


def test_a_key_file_without_token_uri_would_go_to_google(
    tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    from collectors.postmaster.auth import load_credentials

    path = key_file(tmp_path, private_key, None)
    creds = load_credentials(config(path, "http://127.0.0.1:9"))
    assert creds._token_uri == GOOGLE_AUDIENCE  # noqa: SLF001 (no public accessor)


def test_429_waits_as_long_as_retry_after_says(
    state: GoogleState, base: str, tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    status, headers, body = google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded")
    state.queued["/v1/domains/news.example.com/trafficStats"] = [
        (status, {**headers, "Retry-After": "1"}, body)
    ]
    path = key_file(tmp_path, private_key, f"{base}/token")
    started = time.monotonic()
    report = collect_postmaster(config(path, base), INVENTORY, today=TODAY, backoff=0, sleep=sleep)
    assert time.monotonic() - started >= 1.0
    assert slept == [1.0]
    assert report.judged["news.example.com"] == dt.date(2024, 5, 9)


def test_a_retry_after_beyond_the_limit_is_unknown_at_once(
    state: GoogleState, base: str, tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    status, headers, body = google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded")
    state.queued["/v1/domains/news.example.com/trafficStats"] = [
        (status, {**headers, "Retry-After": "3600"}, body)
    ]
    path = key_file(tmp_path, private_key, f"{base}/token")
    slept: list[float] = []
    report = collect_postmaster(
        config(path, base), INVENTORY, today=TODAY, backoff=0, sleep=slept.append
    )
    assert slept == []
    news = index(report.results)[("news.example.com", "gmail-spam-rate", "")]
    assert news.status == "unknown" and "more than max_retry_after" in (news.error or "")
    # a rate limit stops the run: the domains after it are unknown too, with the same reason
    assert index(report.results)[("stranger.example.org", "gmail-auth", "")].status == "unknown"
    assert set(report.judged) == {"bulk.example.com", "mail.example.com"}  # asked before news


def test_a_5xx_is_retried_then_succeeds(
    state: GoogleState, base: str, tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    state.queued["/v1/domains"] = [
        google_error(503, "UNAVAILABLE", "The service is currently unavailable."),
        google_error(500, "INTERNAL", "Internal error encountered."),
    ]
    path = key_file(tmp_path, private_key, f"{base}/token")
    slept: list[float] = []
    report = collect_postmaster(
        config(path, base), INVENTORY, today=TODAY, backoff=0.01, sleep=slept.append
    )
    assert slept == [0.01, 0.02] and not any("domains.list" in e for e in report.errors)
    assert len(report.registered) == 5


def test_a_lasting_outage_is_unknown_after_bounded_retries(
    state: GoogleState, base: str, tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    state.queued["/v1/domains"] = [google_error(503, "UNAVAILABLE", "down")] * 10
    path = key_file(tmp_path, private_key, f"{base}/token")
    report = collect_postmaster(
        config(path, base, retries=2), INVENTORY, today=TODAY, backoff=0, sleep=lambda s: None
    )
    assert sum(p.startswith("/v1/domains") for _, p in state.seen) == 3
    assert "gave up after 3 attempts" in report.errors[0]
    # nothing was listed: the inventory's domains are unknown, every check
    assert {r.target for r in report.results} == set(INVENTORY.domains())
    assert len(report.results) == 3 * 5 and {r.status for r in report.results} == {"unknown"}


def test_a_revoked_token_is_replaced_once(
    state: GoogleState, base: str, tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    path = key_file(tmp_path, private_key, f"{base}/token")
    state.queued["/v1/domains/news.example.com"] = [
        google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
    ]
    report = collect_postmaster(config(path, base), INVENTORY, today=TODAY, backoff=0)
    assert len(state.grants) == 2
    assert report.judged["news.example.com"] == dt.date(2024, 5, 9)


def test_a_token_refused_again_is_unknown_with_renew(
    state: GoogleState, base: str, tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    path = key_file(tmp_path, private_key, f"{base}/token")
    refused = google_error(
        401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
    )
    state.queued["/v1/domains"] = [refused, refused]
    report = collect_postmaster(config(path, base), INVENTORY, today=TODAY, backoff=0)
    assert all(r.status == "unknown" for r in report.results)
    assert "renew the service-account key" in report.errors[0]


def test_a_key_the_token_endpoint_refuses_is_unknown_with_renew(
    state: GoogleState, base: str, tmp_path: Path
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = key_file(tmp_path, stranger, f"{base}/token")
    report = collect_postmaster(config(path, base), INVENTORY, today=TODAY, backoff=0)
    assert state.refusals == ["Invalid JWT Signature."]
    assert not [p for m, p in state.seen if m == "GET"], "no API call without a token"
    assert (
        "invalid_grant" in report.errors[0] and "renew the service-account key" in report.errors[0]
    )
    assert {r.status for r in report.results} == {"unknown"}
    assert "PRIVATE KEY" not in report.errors[0]


def test_a_domain_without_access_is_unknown_the_rest_is_read(
    state: GoogleState, base: str, tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    state.denied.add("news.example.com")
    path = key_file(tmp_path, private_key, f"{base}/token")
    report = collect_postmaster(config(path, base), INVENTORY, today=TODAY, backoff=0)
    news = index(report.results)[("news.example.com", "gmail-auth", "")]
    assert news.status == "unknown" and "HTTP 403 PERMISSION_DENIED" in (news.error or "")
    assert news.fields["customer"] == "globex"
    assert "mail.example.com" in report.judged and "bulk.example.com" in report.judged


def test_only_the_configured_domains_and_the_missing_one_is_named(
    state: GoogleState, base: str, tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    path = key_file(tmp_path, private_key, f"{base}/token")
    cfg = config(path, base, domains=["News.Example.com", "absent.example.com"], compliance=False)
    state.required_scopes = {SCOPE_V1}
    report = collect_postmaster(cfg, INVENTORY, today=TODAY, backoff=0)
    assert {r.target for r in report.results} == {"news.example.com", "absent.example.com"}
    absent = index(report.results)[("absent.example.com", "gmail-spam-rate", "")]
    assert absent.status == "unknown" and "not registered in Postmaster Tools" in (
        absent.error or ""
    )


def test_an_unreadable_key_file_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    cfg = config(tmp_path / "broken.json", "http://127.0.0.1:9")
    report = collect_postmaster(cfg, INVENTORY, today=TODAY)
    assert "not a JSON service-account key" in report.errors[0]
    cfg = config(tmp_path / "absent.json", "http://127.0.0.1:9")
    report = collect_postmaster(cfg, INVENTORY, today=TODAY)
    assert "cannot read" in report.errors[0]
    assert {r.status for r in report.results} == {"unknown"}


def test_nothing_listening_is_unknown(tmp_path: Path, private_key: rsa.RSAPrivateKey) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    path = key_file(tmp_path, private_key, f"{base}/token")
    report = collect_postmaster(
        config(path, base, retries=1), INVENTORY, today=TODAY, backoff=0, sleep=lambda s: None
    )
    assert "the token endpoint did not answer" in report.errors[0]
    assert {r.status for r in report.results} == {"unknown"}


def test_unconfigured_is_unknown_without_asking() -> None:
    report = collect_postmaster(PostmasterConfig(), INVENTORY, today=TODAY)
    assert report.errors == ["[postmaster] credentials_file is not set"]
    assert {r.status for r in report.results} == {"unknown"}


def test_config_refuses_inverted_thresholds() -> None:
    with pytest.raises(ValueError, match="spam_rate_medium must be below"):
        PostmasterConfig(spam_rate_medium=0.003, spam_rate_high=0.001)
    assert PostmasterConfig(max_retry_after="2m").max_retry_after == 120


def test_the_proxy_of_the_config_carries_token_and_api_requests(
    state: GoogleState, base: str, tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    path = key_file(tmp_path, private_key, "http://oauth.invalid/token")
    cfg = config(path, "http://postmaster.invalid", proxy=base)
    report = collect_postmaster(cfg, INVENTORY, today=TODAY, backoff=0)
    assert [p for p, _ in state.grants] == ["http://oauth.invalid/token"]
    assert state.seen[1] == ("GET", "http://postmaster.invalid/v1/domains?pageSize=100")
    assert len(report.judged) == 3

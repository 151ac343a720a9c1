"""The SNDS collector against a loopback SNDS: exports, late days, refused keys, outages."""

from __future__ import annotations

import datetime as dt
import logging
import socket
from collections.abc import Iterator

import pytest

from checks.result import CheckResult
from collectors.snds import SndsConfig, collect_snds
from collectors.snds.client import SndsClient
from collectors.targets import Owner
from tests.collectors.snds.inventory import Inventory
from tests.collectors.snds.snds_server import LOGIN_PAGE, SndsState, snds_server

pytestmark = pytest.mark.servers

KEY = "5f0c6a1e-9b7d-4e2a-8c31-0d4b7e6f9a21"
TODAY = dt.date(2024, 5, 3)
RENEW = "renew the SNDS key"

# the published layout: no header, CRLF, 14 columns, "< 0.1%", empty trap columns
DAY_0502 = (
    b"192.0.2.10,5/1/2024 5:00 PM,5/2/2024 5:00 PM,1520,1498,1490,GREEN,< 0.1%,,,,"
    b"mta1.example.net,bounce@example.net,\r\n"
    b"192.0.2.11,5/1/2024 5:00 PM,5/2/2024 5:00 PM,880,870,861,YELLOW,0.3%,,,,"
    b"mta2.example.net,,\r\n"
    b"192.0.2.12,5/1/2024 5:00 PM,5/2/2024 5:00 PM,23000,22100,21950,RED,2.5%,"
    b"5/1/2024 9:14 PM,5/2/2024 3:02 AM,57,mta3.example.net,news@example.net,JMR Block\r\n"
    b"192.0.2.13,5/1/2024 5:00 PM,5/2/2024 5:00 PM,410,402,400,GREEN,< 0.1%,"
    b"5/2/2024 1:00 AM,5/2/2024 1:00 AM,1,mta4.example.net,,\r\n"
    b"198.51.100.7,5/1/2024 5:00 PM,5/2/2024 5:00 PM,300,300,299,GREEN,< 0.1%,,,,"
    b"stray.example.org,,\r\n"
)
DAY_0501 = (
    b"192.0.2.10,4/30/2024 5:00 PM,5/1/2024 5:00 PM,1400,1390,1388,GREEN,< 0.1%,,,,"
    b"mta1.example.net,bounce@example.net,\r\n"
    b"192.0.2.12,4/30/2024 5:00 PM,5/1/2024 5:00 PM,9000,8800,8790,YELLOW,0.4%,,,,"
    b"mta3.example.net,,\r\n"
)
IP_STATUS = (
    b"192.0.2.12,192.0.2.12,Yes,Blocked due to user complaints or other evidence of spamming\r\n"
    b"203.0.113.0,203.0.113.255,Yes,Blocked due to user complaints or other evidence of "
    b"spamming\r\n"
    b"100.64.0.0,100.127.255.255,Yes,Blocked due to user complaints or other evidence of "
    b"spamming\r\n"
)

P1 = Owner(pool="transactional", customer="acme")
P2 = Owner(pool="bulk", customer="globex")
INVENTORY = Inventory(
    {
        "192.0.2.10": P1,
        "192.0.2.11": P1,
        "192.0.2.12": P2,
        "192.0.2.13": P2,
        "192.0.2.20": P2,  # sent too little to appear in SNDS
        "203.0.113.5": P1,  # inside a blocked /24
    }
)


@pytest.fixture
def state() -> SndsState:
    return SndsState(KEY, days={"050224": DAY_0502, "050124": DAY_0501}, ip_status=IP_STATUS)


@pytest.fixture
def base_url(state: SndsState) -> Iterator[str]:
    with snds_server(state) as url:
        yield url


def config(base_url: str, key: str = KEY, **kw: object) -> SndsConfig:
    return SndsConfig.model_validate({"key": key, "base_url": base_url, **kw})


def by(results: list[CheckResult], check: str) -> dict[str, CheckResult]:
    out = {r.target: r for r in results if r.check == check}
    assert len(out) == sum(r.check == check for r in results), "one result per target"
    return out


def test_a_run_reads_both_exports_and_judges_each_ip(
    state: SndsState, base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    report = collect_snds(config(base_url), INVENTORY, today=TODAY, backoff=0)

    assert report.errors == [] and report.missing_days == [dt.date(2024, 4, 30)]
    assert report.day == dt.date(2024, 5, 2)
    # yesterday backwards, with the MMDDYY date parameter
    dates = [p.split("date=")[1] for p in state.seen if "data.aspx" in p]
    assert dates == ["050224", "050124", "043024"]

    rows = {(r.day, r.ip): r for r in report.activity}
    assert len(rows) == 7
    red = rows[(dt.date(2024, 5, 2), "192.0.2.12")]
    assert (red.pool, red.customer, red.watched, red.trap_hits) == ("bulk", "globex", True, 57)
    stray = rows[(dt.date(2024, 5, 2), "198.51.100.7")]
    assert (stray.pool, stray.customer, stray.watched) == ("", "", False)

    snds = by(report.results, "snds")
    assert set(snds) == {"192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13", "198.51.100.7"}
    assert snds["192.0.2.10"].status == "ok" and snds["192.0.2.10"].fields["day"] == "2024-05-02"
    assert (snds["192.0.2.11"].status, snds["192.0.2.11"].severity) == ("problem", "medium")
    assert (snds["192.0.2.12"].status, snds["192.0.2.12"].severity) == ("problem", "high")
    assert "RED" in snds["192.0.2.12"].detail and "57 spam-trap hits" in snds["192.0.2.12"].detail
    # a single trap hit on a GREEN IP is still a problem
    assert (snds["192.0.2.13"].status, snds["192.0.2.13"].severity) == ("problem", "high")
    assert snds["192.0.2.13"].fields["pool"] == "bulk"
    assert snds["198.51.100.7"].status == "ok" and snds["198.51.100.7"].fields["watched"] is False

    blocked = by(report.results, "snds-blocked")
    assert blocked["192.0.2.12"].status == "problem" and blocked["192.0.2.12"].severity == "high"
    assert blocked["203.0.113.5"].status == "problem"
    assert blocked["203.0.113.5"].fields["range"] == "203.0.113.0-203.0.113.255"
    assert blocked["203.0.113.5"].fields["customer"] == "acme"
    for ip in ("192.0.2.10", "192.0.2.11", "192.0.2.13", "192.0.2.20"):
        assert blocked[ip].status == "ok", ip
    # the blocked /10 holds no inventory IP: one result for the block, not 4 million
    assert blocked["100.64.0.0/10"].status == "problem"
    assert blocked["100.64.0.0/10"].fields["watched"] is False
    assert len(blocked) == 7
    ranges = {r.first: r for r in report.blocked or []}
    assert ranges["203.0.113.0"].watched_ips == 1 and ranges["100.64.0.0"].watched_ips == 0

    everything = " ".join(str(r.to_json()) for r in report.results) + " ".join(report.errors)
    assert KEY not in everything
    assert all(KEY not in rec.getMessage() for rec in caplog.records)


def test_a_late_file_falls_back_to_the_day_before_and_says_so(
    state: SndsState, base_url: str
) -> None:
    del state.days["050224"]
    report = collect_snds(config(base_url), INVENTORY, today=TODAY, backoff=0)
    assert report.day == dt.date(2024, 5, 1)
    assert dt.date(2024, 5, 2) in report.missing_days
    snds = by(report.results, "snds")
    assert snds["192.0.2.12"].fields["day"] == "2024-05-01"
    assert snds["192.0.2.12"].severity == "medium"
    # no row is made up for the missing day
    assert {r.day for r in report.activity} == {dt.date(2024, 5, 1)}


def test_no_recent_file_is_unknown_not_clean(state: SndsState, base_url: str) -> None:
    state.days.clear()
    report = collect_snds(config(base_url), INVENTORY, today=TODAY, backoff=0)
    assert report.day is None and len(report.missing_days) == 3
    snds = by(report.results, "snds")
    assert set(snds) == set(INVENTORY.ips())
    assert all(
        r.status == "unknown" and "no SNDS data file" in (r.error or "") for r in snds.values()
    )
    assert snds["192.0.2.10"].fields["pool"] == "transactional"


def test_a_day_older_than_max_lag_is_not_judged(state: SndsState, base_url: str) -> None:
    del state.days["050224"]
    report = collect_snds(config(base_url, max_lag_days=1), INVENTORY, today=TODAY, backoff=0)
    assert report.day is None
    assert all(r.status == "unknown" for r in report.results if r.check == "snds")
    assert "the newest is 2024-05-01" in by(report.results, "snds")["192.0.2.10"].error  # type: ignore[operator]


@pytest.mark.parametrize(
    "answer",
    [
        (200, {"Content-Type": "text/html; charset=utf-8"}, LOGIN_PAGE),
        (200, {"Content-Type": "text/plain"}, LOGIN_PAGE),  # a page mislabelled as text
        (401, {"Content-Type": "text/plain"}, b"Unauthorized"),
        (403, {}, b""),
        (302, {"Location": "https://login.live.com/login.srf?wa=wsignin1.0"}, b""),
    ],
    ids=["login-page", "login-page-as-text", "401", "403", "redirect"],
)
def test_a_refused_key_is_unknown_with_renew(
    state: SndsState,
    base_url: str,
    answer: tuple[int, dict[str, str], bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    state.queued["data.aspx"] = [answer]
    report = collect_snds(config(base_url), INVENTORY, today=TODAY, backoff=0)
    assert len(state.seen) == 1, "a refused key is not asked again, nor for the IP status"
    for check in ("snds", "snds-blocked"):
        results = by(report.results, check)
        assert set(results) == set(INVENTORY.ips())
        assert all(r.status == "unknown" and RENEW in (r.error or "") for r in results.values())
    assert KEY not in " ".join(report.errors) + " ".join(r.getMessage() for r in caplog.records)


def test_a_wrong_key_gets_the_sign_in_page_from_the_server(base_url: str) -> None:
    other = "00000000-0000-0000-0000-000000000000"
    report = collect_snds(config(base_url, key=other), INVENTORY, today=TODAY, backoff=0)
    assert RENEW in report.errors[0] and other not in report.errors[0]
    assert report.blocked is None


def test_a_5xx_is_retried_then_succeeds(state: SndsState, base_url: str) -> None:
    state.queued["data.aspx"] = [(503, {}, b"busy"), (500, {}, b"oops")]
    state.queued["ipStatus.aspx"] = [(502, {}, b"")]
    report = collect_snds(config(base_url, retries=2), INVENTORY, today=TODAY, backoff=0)
    assert report.errors == [] and report.day == dt.date(2024, 5, 2)
    assert sum("data.aspx" in p for p in state.seen) == 5  # 3 for the first day, then 2 more


def test_a_lasting_outage_is_unknown_after_bounded_retries(state: SndsState, base_url: str) -> None:
    state.queued["data.aspx"] = [(503, {}, b"")] * 3
    state.queued["ipStatus.aspx"] = [(503, {}, b"")] * 3
    report = collect_snds(config(base_url, retries=2), INVENTORY, today=TODAY, backoff=0)
    assert sum("data.aspx" in p for p in state.seen) == 3, "an outage stops the other days"
    assert "HTTP 503 after 3 attempts" in report.errors[0]
    assert all(r.status == "unknown" for r in report.results)
    assert len(report.results) == 2 * len(list(INVENTORY.ips()))


def test_nothing_listening_is_unknown() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config(f"http://127.0.0.1:{port}/snds", retries=1, timeout=2)
    report = collect_snds(cfg, INVENTORY, today=TODAY, backoff=0)
    assert report.errors and "ConnectError" in report.errors[0]
    assert all(r.status == "unknown" for r in report.results)


def test_an_unreadable_day_is_skipped_and_reported(state: SndsState, base_url: str) -> None:
    state.days["050224"] = b"192.0.2.10,garbage\r\n"
    report = collect_snds(config(base_url), INVENTORY, today=TODAY, backoff=0)
    assert report.day == dt.date(2024, 5, 1)
    assert "2024-05-02 cannot be read" in report.errors[0]


def test_ip_status_can_be_switched_off(state: SndsState, base_url: str) -> None:
    report = collect_snds(config(base_url, ip_status=False), INVENTORY, today=TODAY, backoff=0)
    assert report.blocked is None
    assert not any(r.check == "snds-blocked" for r in report.results)
    assert not any("ipStatus" in p for p in state.seen)


def test_the_key_is_masked() -> None:
    client = SndsClient(SndsConfig(key=KEY))
    assert client.mask(f"https://x/data.aspx?key={KEY}&date=050224") == (
        "https://x/data.aspx?key=***&date=050224"
    )
    client.close()


def test_unconfigured_is_unknown_without_asking() -> None:
    report = collect_snds(SndsConfig(), INVENTORY, today=TODAY)
    assert report.errors == ["[snds] key is not set"]
    assert {r.status for r in report.results} == {"unknown"}


def test_the_proxy_of_the_config_carries_the_requests(state: SndsState, base_url: str) -> None:
    # the stand-in answers proxy requests too: the target host is never resolved
    proxy = base_url.removesuffix("/snds")
    cfg = config("http://snds.invalid/snds", proxy=proxy)
    report = collect_snds(cfg, INVENTORY, today=TODAY, backoff=0)
    assert report.errors == [] and report.day == dt.date(2024, 5, 2)
    assert state.seen[0].startswith("http://snds.invalid/snds/data.aspx?key=")

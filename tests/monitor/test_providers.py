"""SNDS and Postmaster Tools end to end: ``repmon sweep --only snds|postmaster`` against the
loopback stand-ins of the collectors' tests -> rows in the store (SQLite and PostgreSQL),
results -> cases after ``repmon evaluate``, points in VictoriaMetrics, the fetch and its
errors in ``repmon status`` and ``/metrics``; and ``repmon run`` scheduling both jobs."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from collectors.postmaster.auth import SCOPE_V1, SCOPE_V2
from monitor.cases import list_cases
from monitor.cli import main
from monitor.daemon.metrics import Metrics
from monitor.store import Store
from monitor.store.providers import (
    blocked_ranges,
    compliance_rows,
    last_fetches,
    postmaster_rows,
    snds_rows,
)
from tests.collectors.postmaster.google_server import GoogleState, google_error, google_server
from tests.collectors.snds.snds_server import SndsState, snds_server
from tests.configs import blocklists, pool, table
from tests.daemon_support import Daemon, wait_for
from tests.servers import free_port
from tests.tsdb_servers import VictoriaMetrics, victoria_metrics

KEY = "5f0c6a1e-9b7d-4e2a-8c31-0d4b7e6f9a21"
EMAIL = "repmon-reader@repmon-test.iam.gserviceaccount.com"
#: the collectors ask "yesterday backwards" from the real clock
TODAY = dt.datetime.now(dt.UTC).date()
Y1, Y2, Y3 = (TODAY - dt.timedelta(days=n) for n in (1, 2, 3))


# --- SNDS ------------------------------------------------------------------------------------
def _t(day: dt.date, clock: str) -> str:
    return f"{day.month}/{day.day}/{day.year} {clock}"


def snds_row(
    day: dt.date, ip: str, colour: str, rate: str, traps: str = "", helo: str = ""
) -> bytes:
    """One line of the data export in the published layout (no header, CRLF, 14 columns)."""
    start, end = _t(day - dt.timedelta(days=1), "5:00 PM"), _t(day, "5:00 PM")
    trap = f"{_t(day, '1:00 AM')},{_t(day, '3:02 AM')},{traps}" if traps else ",,"
    return (
        f"{ip},{start},{end},1520,1498,1490,{colour},{rate},{trap},{helo or 'mta.example.net'},"
        f"bounce@example.net,\r\n"
    ).encode()


def snds_day1() -> bytes:
    return (
        snds_row(Y1, "192.0.2.10", "GREEN", "< 0.1%")
        + snds_row(Y1, "192.0.2.11", "YELLOW", "0.3%")
        + snds_row(Y1, "192.0.2.12", "RED", "2.5%", traps="57")
        + snds_row(Y1, "198.51.100.7", "GREEN", "< 0.1%")  # registered in SNDS, not ours
    )


IP_STATUS = (
    b"192.0.2.13,192.0.2.13,Yes,Blocked due to user complaints or other evidence of spamming\r\n"
    b"203.0.113.0,203.0.113.255,Yes,Blocked due to user complaints or other evidence of "
    b"spamming\r\n"
)


def snds_date(day: dt.date) -> str:
    return day.strftime("%m%d%y")


@pytest.fixture
def snds() -> Iterator[tuple[SndsState, str]]:
    state = SndsState(
        KEY,
        days={
            snds_date(Y1): snds_day1(),
            snds_date(Y2): snds_row(Y2, "192.0.2.10", "GREEN", "< 0.1%")
            + snds_row(Y2, "192.0.2.12", "YELLOW", "0.4%"),
        },
        ip_status=IP_STATUS,
    )
    with snds_server(state) as url:
        yield state, url


# --- Postmaster Tools ----------------------------------------------------------------------
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


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def google(private_key: rsa.RSAPrivateKey) -> Iterator[tuple[GoogleState, str]]:
    state = GoogleState(private_key.public_key(), EMAIL, {SCOPE_V1, SCOPE_V2})
    state.domains = [
        {"name": f"domains/{d}", "permission": "OWNER", "createTime": "2023-01-05T10:00:00Z"}
        for d in ("mail.example.com", "bulk.example.com")
    ]
    bad = stats(
        "mail.example.com",
        Y1,
        userReportedSpamRatio=0.0035,  # 0.35 %: over Gmail's 0.30 % limit
        userReportedSpamRatioLowerBound=0.003,
        userReportedSpamRatioUpperBound=0.004,
        domainReputation="LOW",
        ipReputations=[
            {"reputation": "HIGH", "ipCount": "2", "sampleIps": ["192.0.2.10"]},
            {"reputation": "BAD", "ipCount": "1", "sampleIps": ["192.0.2.12"]},
        ],
        dkimSuccessRatio=0.9,
        spammyFeedbackLoops=[{"id": "campaign-42", "spamRatio": 0.004}],
    )
    state.stats = {
        "mail.example.com": [stats("mail.example.com", Y3), stats("mail.example.com", Y2), bad],
        "bulk.example.com": [stats("bulk.example.com", Y2), stats("bulk.example.com", Y1)],
    }
    state.compliance = {
        "mail.example.com": {
            "name": "domains/mail.example.com/complianceStatus",
            "complianceData": {
                "domainId": "example.com",
                "rowData": [
                    {"requirement": "SPF", "status": {"status": "COMPLIANT"}},
                    {"requirement": "HONOR_UNSUBSCRIBE", "status": {"status": "NEEDS_WORK"}},
                ],
            },
        },
        "bulk.example.com": {
            "name": "domains/bulk.example.com/complianceStatus",
            "complianceData": {
                "domainId": "example.com",
                "rowData": [{"requirement": "SPF", "status": {"status": "COMPLIANT"}}],
            },
        },
    }
    with google_server(state) as url:
        yield state, url


def key_file(tmp_path: Path, key: rsa.RSAPrivateKey) -> Path:
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
    }
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(info), encoding="utf-8")
    return path


# --- config, VictoriaMetrics -----------------------------------------------------------------
@pytest.fixture(scope="module")
def vm() -> Iterator[VictoriaMetrics]:
    with victoria_metrics() as server:
        yield server


def inventory() -> str:
    return pool("transactional", ["192.0.2.10/31"], "acme", ["mail.example.com"]) + pool(
        "bulk", ["192.0.2.12/31"], "globex", ["bulk.example.com"]
    )


def write_config(
    tmp_path: Path,
    store_url: str,
    *,
    snds_url: str | None = None,
    google_url: str | None = None,
    key: rsa.RSAPrivateKey | None = None,
    vm: VictoriaMetrics | None = None,
    extra: str = "",
) -> str:
    text = blocklists(["127.0.0.1:9"], [], timeout=0.2) + inventory()
    text += table("store", {"url": store_url})
    if snds_url:
        text += table(
            "snds", {"key": KEY, "base_url": snds_url, "days": 3, "retries": 0, "timeout": 5}
        )
    if google_url and key is not None:
        text += table(
            "postmaster",
            {
                "credentials_file": str(key_file(tmp_path, key)),
                "token_uri": f"{google_url}/token",
                "api_base": google_url,
                "compliance": True,
                "retries": 0,
                "timeout": 5,
            },
        )
    if vm is not None:
        text += table(
            "influxdb",
            {
                "url": vm.url,
                "token": "x",
                "org": "repmon",
                "bucket": "repmon",
                "buffer_dir": str(tmp_path / "buffer"),
            },
        )
    path = tmp_path / "repmon.toml"
    path.write_text(text + extra)
    return str(path)


def cases(store_url: str) -> dict[tuple[str, str, str], Any]:
    store = Store.open(store_url)
    try:
        return {(c.rule, c.subject, c.source): c for c in list_cases(store)}
    finally:
        store.close()


def series(vm: VictoriaMetrics, name: str, **labels: str) -> list[dict[str, Any]]:
    return [
        r
        for r in vm.export(name)
        if r["metric"]["__name__"] == name
        and all(r["metric"].get(k) == v for k, v in labels.items())
    ]


def status(cfg: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    capsys.readouterr()
    assert main(["status", "--config", cfg, *extra]) == 0
    return capsys.readouterr().out


# --- the tests -------------------------------------------------------------------------------
def test_snds_sweep_stores_rows_opens_cases_and_writes_points(
    tmp_path: Path,
    store_url: str,
    snds: tuple[SndsState, str],
    vm: VictoriaMetrics,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = snds
    cfg = write_config(tmp_path, store_url, snds_url=url, vm=vm)
    assert main(["sweep", "--config", cfg, "--only", "snds", "--no-progress"]) == 0

    store = Store.open(store_url)
    try:
        rows = {(r["day"], r["ip"]): r for r in snds_rows(store, Y3, TODAY)}
        ranges = {(r.first, r.last): r for r in blocked_ranges(store)}
        (fetch,) = last_fetches(store)
    finally:
        store.close()
    # every parsed field of both days' files; the stray IP kept, not ours
    assert set(rows) == {
        (Y1, "192.0.2.10"), (Y1, "192.0.2.11"), (Y1, "192.0.2.12"), (Y1, "198.51.100.7"),
        (Y2, "192.0.2.10"), (Y2, "192.0.2.12"),
    }  # fmt: skip
    red = rows[(Y1, "192.0.2.12")]
    assert (red["filter_result"], red["trap_hits"], red["complaint_rate"]) == ("RED", 57, 0.025)
    assert (red["pool"], red["customer"], red["watched"]) == ("bulk", "globex", True)
    assert (red["rcpt_commands"], red["data_commands"], red["message_recipients"]) == (
        1520,
        1498,
        1490,
    )
    assert red["trap_start"] == dt.datetime(Y1.year, Y1.month, Y1.day, 1, 0)
    assert red["jmr_p1_sender"] == "bounce@example.net" and red["sample_helo"] == "mta.example.net"
    green = rows[(Y1, "192.0.2.10")]
    assert green["complaint_rate_below"] is True and green["complaint_rate_text"] == "< 0.1%"
    assert rows[(Y1, "198.51.100.7")]["watched"] is False
    assert set(ranges) == {("192.0.2.13", "192.0.2.13"), ("203.0.113.0", "203.0.113.255")}
    assert ranges[("192.0.2.13", "192.0.2.13")].watched_ips == 1
    assert (fetch.collector, fetch.errors, fetch.detail["day"]) == ("snds", [], Y1.isoformat())
    assert fetch.detail["missing_days"] == [Y3.isoformat()]

    # the results -> cases, with the result's severity
    assert main(["evaluate", "--config", cfg, "--no-notify"]) == 1
    found = cases(store_url)
    assert set(found) == {
        ("snds", "192.0.2.11", ""),
        ("snds", "192.0.2.12", ""),
        ("snds-blocked", "192.0.2.13", ""),
        ("snds-blocked", "203.0.113.0/24", ""),
    }
    red_case = found[("snds", "192.0.2.12", "")]
    assert (red_case.type, red_case.severity, red_case.subject_kind) == ("reputation", "high", "ip")
    assert "RED" in red_case.summary and "57 spam-trap hits" in red_case.summary
    assert (red_case.pool, red_case.customer) == ("bulk", "globex")
    assert found[("snds", "192.0.2.11", "")].severity == "medium"
    blocked = found[("snds-blocked", "192.0.2.13", "")]
    assert (blocked.type, blocked.severity) == ("blocklisting", "high")
    assert found[("snds-blocked", "203.0.113.0/24", "")].subject_kind == "range"

    # the day's file published anew: its rows are replaced, the other day's kept
    state.days[snds_date(Y1)] = snds_row(Y1, "192.0.2.10", "GREEN", "< 0.1%") + snds_row(
        Y1, "192.0.2.12", "YELLOW", "0.5%"
    )
    state.ip_status = IP_STATUS.splitlines(keepends=True)[0]
    assert main(["sweep", "--config", cfg, "--only", "snds", "--no-progress"]) == 0
    store = Store.open(store_url)
    try:
        rows = {(r["day"], r["ip"]): r for r in snds_rows(store, Y3, TODAY)}
        current = {(r.first, r.last) for r in blocked_ranges(store)}
        every = {(r.first, r.last): r for r in blocked_ranges(store, current=False)}
        (fetch,) = last_fetches(store)
    finally:
        store.close()
    assert {k for k in rows if k[0] == Y1} == {(Y1, "192.0.2.10"), (Y1, "192.0.2.12")}
    assert rows[(Y1, "192.0.2.12")]["filter_result"] == "YELLOW"
    assert {k for k in rows if k[0] == Y2} == {(Y2, "192.0.2.10"), (Y2, "192.0.2.12")}
    assert current == {("192.0.2.13", "192.0.2.13")}
    assert every[("203.0.113.0", "203.0.113.255")].cleared_at is not None
    assert (fetch.fetches, fetch.failures) == (2, 0)

    # points: per IP and day, per read of the IP status export, and the check states
    level = wait_for(
        "snds_filter_level", lambda: series(vm, "snds_filter_level", sending_ip="192.0.2.12")
    )
    (point,) = level
    assert point["metric"]["pool"] == "bulk" and point["metric"]["customer"] == "globex"
    by_time = dict(zip(point["timestamps"], point["values"], strict=True))
    y1_ms = int(dt.datetime(Y1.year, Y1.month, Y1.day, tzinfo=dt.UTC).timestamp() * 1000)
    y2_ms = y1_ms - 86_400_000
    # one point per day (InfluxDB overwrites a point written again; VictoriaMetrics keeps
    # one of two samples at the same time)
    assert set(by_time) == {y2_ms, y1_ms} and by_time[y2_ms] == 1
    traps = series(vm, "snds_trap_hits", sending_ip="192.0.2.12")
    assert traps and 0 in traps[0]["values"]
    rate = series(vm, "snds_complaint_rate", sending_ip="192.0.2.11")
    assert rate and rate[0]["values"][0] == pytest.approx(0.003)
    under = series(vm, "snds_complaint_rate_under", sending_ip="192.0.2.10")
    assert under and under[0]["values"][0] == pytest.approx(0.001)
    assert not series(vm, "snds_complaint_rate", sending_ip="192.0.2.10")  # "< 0.1%" is no rate
    assert wait_for("snds_blocked_ranges", lambda: series(vm, "snds_blocked_ranges"))
    states = series(vm, "hygiene_state", target="192.0.2.13", check="snds-blocked")
    assert states and 2 in states[0]["values"]

    # status: the providers block
    text = status(cfg, capsys)
    assert "PROVIDER" in text and "snds" in text and f"day {Y1.isoformat()}" in text
    shown = json.loads(status(cfg, capsys, "--json"))["providers"]
    assert [(p["provider"], p["errors"], p["rows"]) for p in shown] == [("snds", [], 4)]


def test_an_expired_snds_key_is_unknown_opens_nothing_and_says_renew(
    tmp_path: Path,
    store_url: str,
    snds: tuple[SndsState, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = snds
    cfg = write_config(tmp_path, store_url, snds_url=url)
    state.queued["data.aspx"] = [(401, {"Content-Type": "text/plain"}, b"Unauthorized")]
    assert main(["sweep", "--config", cfg, "--only", "snds", "--no-progress"]) == 0
    # nothing more is asked after a refused key
    assert sum("ipStatus.aspx" in p for p in state.seen) == 0

    assert main(["evaluate", "--config", cfg, "--no-notify"]) == 0
    assert cases(store_url) == {}
    store = Store.open(store_url)
    try:
        (fetch,) = last_fetches(store)
        assert snds_rows(store, Y3, TODAY) == []
    finally:
        store.close()
    assert fetch.unknown == 8 and fetch.ok == fetch.problem == 0  # 4 IPs x 2 checks
    assert fetch.last_success_at is None and fetch.failures == 1
    text = status(cfg, capsys)
    assert "No problems recorded." in text
    assert "HTTP 401: renew the SNDS key" in text and KEY not in text
    # the same in /metrics: credentials refused, an error, a failed fetch
    metrics = Metrics().render().decode()
    assert 'repmon_provider_credentials_refused{provider="snds"} 1.0' in metrics
    assert 'repmon_provider_errors{provider="snds"} 1.0' in metrics
    assert 'repmon_provider_fetches_total{outcome="error",provider="snds"}' in metrics


def test_postmaster_sweep_stores_rows_opens_cases_and_writes_points(
    tmp_path: Path,
    store_url: str,
    google: tuple[GoogleState, str],
    private_key: rsa.RSAPrivateKey,
    vm: VictoriaMetrics,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, url = google
    cfg = write_config(tmp_path, store_url, google_url=url, key=private_key, vm=vm)
    assert main(["sweep", "--config", cfg, "--only", "postmaster", "--no-progress"]) == 0

    store = Store.open(store_url)
    try:
        rows = {(r["domain"], r["day"]): r for r in postmaster_rows(store, Y3, TODAY)}
        compliance = {r["domain"]: r for r in compliance_rows(store)}
        (fetch,) = last_fetches(store)
    finally:
        store.close()
    assert set(rows) == {
        ("mail.example.com", Y3), ("mail.example.com", Y2), ("mail.example.com", Y1),
        ("bulk.example.com", Y2), ("bulk.example.com", Y1),
    }  # fmt: skip
    mail = rows[("mail.example.com", Y1)]
    assert (mail["spam_ratio"], mail["domain_reputation"], mail["dkim_ratio"]) == (
        0.0035,
        "LOW",
        0.9,
    )
    assert mail["ip_reputations"] == [
        {"reputation": "HIGH", "ip_count": 2, "sample_ips": ["192.0.2.10"]},
        {"reputation": "BAD", "ip_count": 1, "sample_ips": ["192.0.2.12"]},
    ]
    assert mail["delivery_errors"][0]["error_type"] == "RATE_LIMIT_EXCEEDED"
    assert mail["spammy_feedback_loops"] == [{"id": "campaign-42", "spam_ratio": 0.004}]
    assert (mail["pool"], mail["customer"], mail["watched"]) == ("transactional", "acme", True)
    assert compliance["mail.example.com"]["needs_work"] == 1
    assert compliance["bulk.example.com"]["needs_work"] == 0
    assert fetch.errors == [] and fetch.detail["judged"] == {
        "bulk.example.com": Y1.isoformat(),
        "mail.example.com": Y1.isoformat(),
    }

    assert main(["evaluate", "--config", cfg, "--no-notify"]) == 1
    found = cases(store_url)
    assert {k: (c.type, c.severity) for k, c in found.items()} == {
        # 0.35 %: at or over Gmail's 0.30 % limit
        ("gmail-spam-rate", "mail.example.com", ""): ("complaints", "high"),
        ("gmail-reputation", "mail.example.com", "domain"): ("reputation", "medium"),
        ("gmail-reputation", "mail.example.com", "ip"): ("reputation", "high"),
        ("gmail-auth", "mail.example.com", ""): ("hygiene", "medium"),
        ("gmail-compliance", "mail.example.com", ""): ("hygiene", "medium"),
    }
    spam = found[("gmail-spam-rate", "mail.example.com", "")]
    assert "0.35%" in spam.summary and spam.subject_kind == "domain"
    assert (spam.pool, spam.customer) == ("transactional", "acme")

    rate = wait_for(
        "postmaster_spam_rate",
        lambda: series(vm, "postmaster_spam_rate", domain="mail.example.com"),
    )
    assert max(rate[0]["values"]) == pytest.approx(0.0035)
    assert rate[0]["metric"]["pool"] == "transactional"
    level = series(vm, "postmaster_reputation_level", domain="mail.example.com")
    assert level and max(level[0]["values"]) == 2  # LOW
    bad = series(vm, "postmaster_ips_bad", domain="mail.example.com")
    assert bad and max(bad[0]["values"]) == 1
    assert not any("sample" in k for r in vm.export("postmaster_.*") for k in r["metric"])
    assert series(vm, "postmaster_dkim", domain="mail.example.com")
    # stamped at the fetch (now), unlike the days: the engine may show it a moment later
    wait_for(
        "postmaster_compliance_needs_work",
        lambda: series(vm, "postmaster_compliance_needs_work", domain="mail.example.com"),
    )

    text = status(cfg, capsys)
    assert "postmaster" in text and "2 of 2 domains judged" in text


def test_a_refused_postmaster_key_is_unknown_and_says_renew(
    tmp_path: Path,
    store_url: str,
    google: tuple[GoogleState, str],
    private_key: rsa.RSAPrivateKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = google
    cfg = write_config(tmp_path, store_url, google_url=url, key=private_key)
    unauthenticated = google_error(401, "UNAUTHENTICATED", "Request had invalid credentials.")
    state.queued["/v1/domains"] = [unauthenticated, unauthenticated]
    assert main(["sweep", "--config", cfg, "--only", "postmaster", "--no-progress"]) == 0
    assert main(["evaluate", "--config", cfg, "--no-notify"]) == 0
    assert cases(store_url) == {}
    text = status(cfg, capsys)
    assert "renew the service-account key" in text


def test_repmon_run_schedules_both_fetches(
    tmp_path: Path,
    snds: tuple[SndsState, str],
    google: tuple[GoogleState, str],
    private_key: rsa.RSAPrivateKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, snds_url = snds
    _, google_url = google
    store_url = f"sqlite:///{tmp_path / 'repmon.db'}"
    extra = (
        table(
            "sink",
            {
                "listen": f"127.0.0.1:{free_port(socket.SOCK_STREAM)}",
                "spool": str(tmp_path / "spool"),
            },
        )
        + table("api", {"enabled": False})
        + table("schedule", {"snds_fetch": "1h", "postmaster_fetch": "1h", "jitter": "0s"})
    )
    cfg = write_config(
        tmp_path, store_url, snds_url=snds_url, google_url=google_url, key=private_key, extra=extra
    )
    daemon = Daemon(Path(cfg), tmp_path)
    try:

        def fetched() -> dict[str, Any]:
            out = json.loads(status(cfg, capsys, "--json"))
            jobs = {j["job"]: j for j in out["jobs"]}
            done = {"snds_fetch", "postmaster_fetch"} <= {
                j for j, row in jobs.items() if row["last_status"] == "ok"
            }
            return out if done and len(out["providers"]) == 2 else {}

        out = wait_for("both provider jobs to run", fetched, timeout=60, every=0.5)
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
    jobs = {j["job"]: j for j in out["jobs"]}
    assert jobs["snds_fetch"]["next_run"] and jobs["postmaster_fetch"]["next_run"]
    assert {p["provider"]: p["errors"] for p in out["providers"]} == {
        "postmaster": [],
        "snds": [],
    }

"""Untrusted feedback never feeds a denominator or enforcement, end to end: reports sent to a
real sink on loopback, authenticated against a real nsd serving the DKIM keys and SPF
records (tests/monitor/trust_support.py), stored by the intake, judged by the rules.

The findings this answers: 30 complaints against 2,000 sent opened two critical cases, and
one forged DMARC aggregate report claiming 10^12 messages from the IP made them vanish; and
forged complaints opened critical cases that throttle when enforcement is live.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa

from collectors.volume.sent import sent_count
from monitor.cases import deliver_notifications, evaluate, get_case, list_cases
from monitor.cases.model import Case
from monitor.cli import main
from monitor.config import Config, parse_config
from monitor.intake import make_process
from monitor.store import Store
from monitor.store.cases import update_case
from monitor.store.schema import dmarc_records, feedback_messages, feedback_senders, sent_volume
from monitor.store.volume import add_sent
from tests.daemon_support import webhooks
from tests.monitor.trust_support import (
    EVIL,
    SINK_DOMAIN,
    SOURCE,
    complaint,
    dmarc_report,
    new_key,
    settings,
    sign,
    zones,
)
from tests.servers import nsd
from tests.sink_support import running

IP = "203.0.113.7"


@dataclass
class World:
    keys: dict[str, rsa.RSAPrivateKey]
    nameserver: str


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    keys = {SOURCE: new_key(), EVIL: new_key()}
    with nsd(zones(keys)) as server:
        yield World(keys, server.nameserver)


def config_for(tmp_path: Path, world: World, **extra: Any) -> Config:
    url = f"sqlite:///{tmp_path / 'repmon.db'}"
    return parse_config(settings(url, world.nameserver, str(tmp_path / "spool"), **extra))


def stored(store: Store) -> int:
    with store.begin() as tx:
        return int(tx.execute(sa.select(sa.func.count()).select_from(feedback_messages)).scalar())


def deliver(config: Config, store: Store, mails: list[tuple[str, bytes]]) -> None:
    """Send ``(MAIL FROM, message)`` pairs to a real sink running the real intake, and wait
    until all are stored."""
    before = stored(store)
    process = make_process(config, store)
    assert process is not None
    with running(config.sink, process, drain_timeout=30) as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
            for mail_from, raw in mails:
                smtp.sendmail(mail_from, [f"fbl@{SINK_DOMAIN}"], raw)
        deadline = time.monotonic() + 60
        while stored(store) < before + len(mails):
            assert time.monotonic() < deadline, "the sink did not store every message"
            time.sleep(0.1)


def sent(store: Store, count: int, at: dt.datetime) -> None:
    add_sent(store, [sent_count(IP, count, at, source="mta")])


def complaint_cases(store: Store) -> dict[str, Case]:
    return {c.rule: c for c in list_cases(store) if c.type == "complaints"}


def test_a_forged_dmarc_report_no_longer_hides_the_critical_cases(
    tmp_path: Path, world: World
) -> None:
    config = config_for(tmp_path, world)
    store = Store.open(config.store.url)
    try:
        now = dt.datetime.now(dt.UTC)
        sent(store, 2_000, now - dt.timedelta(hours=2))
        signed = [
            (f"fbl@{SOURCE}", sign(complaint(IP, n), SOURCE, world.keys[SOURCE])) for n in range(30)
        ]
        # "from Google", unsigned, from 127.0.0.1: Google's SPF does not pass here
        forged = dmarc_report(IP, 10**12, now - dt.timedelta(hours=1))
        deliver(config, store, [*signed, ("noreply-dmarc-support@google.com", forged)])
        evaluate(store, config)
        cases = complaint_cases(store)
        # one IP's complaints: one case, the customer's numbers referenced on it
        assert {r: (c.severity, c.denominator) for r, c in cases.items()} == {
            "complaint-rate": ("critical", 2_000),
        }
        ip_case = get_case(store, cases["complaint-rate"].id)
        assert ip_case.evidence["volume_basis"] == "sent:mta"
        assert ip_case.evidence["dmarc_unauthenticated_messages"] == 10**12
        assert "unauthenticated" not in ip_case.evidence  # the complaints are all trusted
        # enforcement asked for (dry run: on the timeline)
        assert any("would throttle ip 203.0.113.7" in e.text for e in ip_case.events)
        with store.begin() as tx:
            rows = {
                r.kind: r
                for r in tx.execute(sa.select(feedback_senders)).mappings()
                if r.kind == "dmarc-aggregate" or r.trusted
            }
        assert (rows["dmarc-aggregate"]["trusted"], rows["dmarc-aggregate"]["channel"]) == (
            False,
            "smtp",
        )
        assert (rows["complaint"]["method"], rows["complaint"]["reporter"]) == ("dkim", SOURCE)
    finally:
        store.close()


def test_a_trusted_report_far_above_the_mta_volume_is_an_anomaly(
    tmp_path: Path, world: World
) -> None:
    """Even a source that authenticates cannot inflate the denominator past 10x what the
    MTAs logged for the IP over the report's hours: the MTA volume counts, and the case
    says why."""
    config = config_for(tmp_path, world)
    store = Store.open(config.store.url)
    try:
        now = dt.datetime.now(dt.UTC)
        sent(store, 2_000, now - dt.timedelta(hours=2))
        inflated = sign(
            dmarc_report(IP, 10**12, now - dt.timedelta(hours=1), f"dmarc@{SOURCE}", SOURCE),
            SOURCE,
            world.keys[SOURCE],
        )
        signed = [
            (f"fbl@{SOURCE}", sign(complaint(IP, n), SOURCE, world.keys[SOURCE])) for n in range(30)
        ]
        deliver(config, store, [*signed, (f"dmarc@{SOURCE}", inflated)])
        evaluate(store, config)
        case = complaint_cases(store)["complaint-rate"]
        assert (case.severity, case.denominator) == ("critical", 2_000)
        [anomaly] = case.evidence["volume_anomalies"]
        assert (anomaly["dmarc_reported"], anomaly["mta_logged"], anomaly["factor"]) == (
            10**12,
            2_000,
            10,
        )
        # a DMARC report within 10x of the MTA's count is a denominator as before
        with store.begin() as tx:
            tx.execute(sa.update(dmarc_records).values(count=15_000))
        evaluate(store, config)
        case = complaint_cases(store)["complaint-rate"]
        assert (case.denominator, case.evidence["volume_basis"]) == (15_000, "dmarc")
    finally:
        store.close()


def test_forged_complaints_open_no_enforceable_case_and_are_flagged(
    tmp_path: Path, world: World
) -> None:
    with webhooks() as hooks:
        config = config_for(tmp_path, world, enforce={"dry_run": False, "url": hooks.url})
        store = Store.open(config.store.url)
        try:
            now = dt.datetime.now(dt.UTC)
            sent(store, 2_000, now - dt.timedelta(hours=2))
            # claims the trusted source, unsigned; MAIL FROM evil.test passes SPF but is not
            # aligned with the From
            unsigned = [(f"x@{EVIL}", complaint(IP, n)) for n in range(20)]
            # validly signed, but by evil.test, which is no source
            other = [
                (f"x@{EVIL}", sign(complaint(IP, 100 + n, f"abuse@{EVIL}"), EVIL, world.keys[EVIL]))
                for n in range(10)
            ]
            deliver(config, store, unsigned + other)
            evaluate(store, config)
            deliver_notifications(store, config)
            cases = complaint_cases(store)
            assert set(cases) == {"complaint-rate"}
            for case in cases.values():
                # 30 / 2,000 = 1.5 % would be critical: capped, and never enforced
                assert case.severity == "medium"
                assert case.evidence["enforceable"] is False
                assert case.evidence["unauthenticated"]["reports"] == 30
                assert case.numerator == 30
                assert "includes 30 unauthenticated reports from" in case.summary
            ip_case = get_case(store, cases["complaint-rate"].id)
            senders = {
                s["sender"]: s["reports"] for s in ip_case.evidence["unauthenticated"]["from"]
            }
            assert senders == {SOURCE: 20, EVIL: 10}
            assert all(s["unauthenticated"] for s in ip_case.samples)
            assert not any(e.kind == "enforcement" for e in ip_case.events)
            assert "includes 30 unauthenticated" in ip_case.events[0].text  # the timeline
            assert not [h for h in hooks.received if h.get("action") == "throttle"]
        finally:
            store.close()


def test_signed_complaints_throttle_and_unsigned_ones_only_add_to_the_case(
    tmp_path: Path, world: World
) -> None:
    with webhooks() as hooks:
        config = config_for(tmp_path, world, enforce={"dry_run": False, "url": hooks.url})
        store = Store.open(config.store.url)
        try:
            now = dt.datetime.now(dt.UTC)
            sent(store, 2_000, now - dt.timedelta(hours=2))
            signed = [
                (f"fbl@{SOURCE}", sign(complaint(IP, n), SOURCE, world.keys[SOURCE]))
                for n in range(8)  # 0.4 %: critical on trusted reports alone
            ]
            forged = [(f"x@{EVIL}", complaint(IP, 100 + n)) for n in range(5)]
            deliver(config, store, signed + forged)
            evaluate(store, config)
            deliver_notifications(store, config)
            case = complaint_cases(store)["complaint-rate"]
            assert (case.severity, case.numerator, case.evidence["enforceable"]) == (
                "critical",
                13,
                True,
            )
            assert case.evidence["unauthenticated"]["rate_without"] == 8 / 2_000
            throttles = [h for h in hooks.received if h.get("action") == "throttle"]
            # one event, one case: the IP's (the customer's numbers are referenced on it)
            assert sorted(t["subject"] for t in throttles) == [IP]
        finally:
            store.close()


def test_an_enforcement_request_is_withheld_once_the_case_rests_on_forgeries(
    tmp_path: Path, world: World
) -> None:
    with webhooks() as hooks:
        config = config_for(tmp_path, world, enforce={"dry_run": False, "url": hooks.url})
        store = Store.open(config.store.url)
        try:
            now = dt.datetime.now(dt.UTC)
            sent(store, 2_000, now - dt.timedelta(hours=2))
            signed = [
                (f"fbl@{SOURCE}", sign(complaint(IP, n), SOURCE, world.keys[SOURCE]))
                for n in range(8)
            ]
            deliver(config, store, signed)
            evaluate(store, config)  # critical: the throttle request is queued
            case = complaint_cases(store)["complaint-rate"]
            with store.begin() as tx:
                update_case(tx, case.id, {"evidence": case.evidence | {"enforceable": False}})
            deliver_notifications(store, config)
            throttles = [h for h in hooks.received if h.get("action") == "throttle"]
            assert throttles == []  # the only case rests on forgeries now: nothing throttled
            events = get_case(store, case.id).events
            assert any("withheld" in e.text for e in events if e.kind == "enforcement")
        finally:
            store.close()


def test_repmon_ingest_of_local_files_stays_trusted(tmp_path: Path, world: World) -> None:
    """The operator chose the files: unsigned complaints given to ``repmon ingest`` count."""
    cfg = tmp_path / "repmon.toml"
    cfg.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "repmon.db"}"\n\n'
        f'[resolver]\nnameservers = ["{world.nameserver}"]\n\n'
        '[[inventory.pools]]\nname = "p1"\ncustomer = "acme"\ncidrs = ["203.0.113.0/28"]\n'
    )
    files = []
    for n in range(30):
        path = tmp_path / f"c{n}.eml"
        path.write_bytes(complaint(IP, n, sender=f"abuse@{EVIL}"))
        files.append(str(path))
    assert main(["ingest", "--config", str(cfg), *files]) == 0
    store = Store.open(f"sqlite:///{tmp_path / 'repmon.db'}")
    try:
        with store.begin() as tx:
            tx.execute(
                sa.insert(sent_volume).values(
                    bucket_start=_date_of_reports().replace(minute=0) - dt.timedelta(hours=2),
                    sending_ip=IP,
                    source="mta",
                    count=2_000,
                )
            )
            senders = list(tx.execute(sa.select(feedback_senders)).mappings())
        assert {(s["channel"], s["method"], s["trusted"]) for s in senders} == {
            ("local", "local", True)
        }
        # their received time is the Date header; judge them then
        evaluate(store, parse_config({"store": {"url": store.url}}), now=_date_of_reports())
        case = complaint_cases(store)["complaint-rate"]
        assert case.severity == "critical" and "unauthenticated" not in case.evidence
    finally:
        store.close()


def _date_of_reports() -> dt.datetime:
    # trust_support.complaint's Date header, plus a little
    return dt.datetime(2026, 11, 2, 11, 30, tzinfo=dt.UTC)

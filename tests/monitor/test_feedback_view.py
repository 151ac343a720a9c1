"""The feedback view (``repmon feedback``, ``GET /v1/feedback``): volume, bounces by kind,
complaints and rates against the rules' thresholds, per IP, pool and customer."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.inventory import Inventory
from monitor.reputation import reputation
from monitor.store import Store
from tests.monitor.test_cases_rules import IP, IP2, T0, add_events, add_sent, make_config

NOW = T0 + dt.timedelta(minutes=30)


def seed(store: Store) -> None:
    add_sent(store, IP, 2000)
    add_sent(store, IP2, 5000)
    add_events(store, 8, "complaint", IP, receiving_domain="gmail.com", feedback_type="abuse")
    add_events(store, 3, "complaint", IP, receiving_domain="yahoo.com", feedback_type="not-spam")
    add_events(store, 40, "bounce", IP, hard=True, category="bad-mailbox",
               receiving_domain="gmail.com")  # fmt: skip
    add_events(store, 5, "bounce", IP2, hard=False, category="blocklisted",
               receiving_domain="outlook.com")  # fmt: skip
    add_events(store, 2, "bounce", IP2, hard=False, category="quota", receiving_domain="web.de")


def test_per_ip_rates_and_levels(store: Store) -> None:
    seed(store)
    config = make_config()
    found = reputation(store, config, Inventory.from_config(config), now=NOW)
    by = {r.subject: r for r in found}
    first = by[IP]
    assert found[0].subject == IP  # worst first: 0.4 % complaints is critical
    assert (first.volume, first.complaints, first.hard) == (2000, 8, 40)  # not-spam ignored
    assert first.complaint_level == "critical" and first.bounce_level == "ok"  # 2 % < 5 %
    assert first.pool == "p1" and first.customer == "acme"
    assert first.to_json()["top_receiving_domains"][0] == {"domain": "gmail.com", "events": 48}
    second = by[IP2]
    assert (second.block, second.soft, second.complaints) == (5, 2, 0)
    assert second.complaint_level == "ok"


def test_per_customer_sums_its_ips(store: Store) -> None:
    seed(store)
    config = make_config()
    (acme,) = reputation(store, config, Inventory.from_config(config), by="customer", now=NOW)
    assert acme.subject == "acme" and acme.volume == 7000 and acme.complaints == 8
    assert acme.complaint_level == "medium"  # 8 / 7000 = 0.11 %


def test_cli_table_and_json(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store.open(sqlite_url)
    now = dt.datetime.now(dt.UTC)
    add_sent(store, IP, 2000, at=now)
    add_events(store, 8, "complaint", IP, at=now, receiving_domain="gmail.com")
    store.close()
    conf = tmp_path / "repmon.toml"
    conf.write_text(
        f'[store]\nurl = "{sqlite_url}"\n[[inventory.pools]]\nname = "p1"\n'
        f'customer = "acme"\ncidrs = ["{IP}/32"]\n'
    )
    assert main(["feedback", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert IP in out and "critical" in out and "gmail.com:8" in out
    assert main(["feedback", "--config", str(conf), "--customer", "acme", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["subject"] == "acme" and row["complaint_rate"] == pytest.approx(0.004)
    assert main(["--config", str(conf), "feedback", "--since", "soon"]) == 2

"""The blocklist sweep and ``repmon status`` on SQLite and PostgreSQL, against a real rbldnsd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store import Store
from monitor.store.checks import current_problems
from monitor.store.schema import problem_episodes, state_changes
from tests.configs import blocklists, code, pool, table
from tests.servers import rbldnsd, silent_udp_server

LISTED = """:127.0.0.2:Listed $
127.0.0.2
192.0.2.1
192.0.2.2
"""
DELISTED = """:127.0.0.2:Listed $
127.0.0.2
192.0.2.2
"""
DOMAINS = """:127.0.1.2:spam domain
test
bad.example
"""


def config(tmp_path: Path, nameserver: str, store_url: str) -> str:
    path = tmp_path / "repmon.toml"
    path.write_text(
        blocklists(
            [nameserver],
            [
                {
                    "zone": "bl.example",
                    "type": "ip",
                    "codes": {"127.0.0.2": code("spam source", "critical")},
                    "delist": "https://bl.example/lookup?{target}",
                },
                {"zone": "dbl.example", "type": "domain"},
            ],
            timeout=0.3,
        )
        + pool("shared-1", ["192.0.2.0/30"], "acme", ["bad.example", "good.example"])
        + table("store", {"url": store_url})
    )
    return str(path)


def status(capsys: pytest.CaptureFixture[str], cfg: str) -> dict:  # type: ignore[type-arg]
    assert main(["status", "--config", cfg, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_sweep_records_state_history_and_ignores_unknown(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    zones = {"bl.example": ("ip4set", LISTED), "dbl.example": ("dnset", DOMAINS)}
    with rbldnsd(zones) as srv:
        cfg = config(tmp_path, srv.nameserver, store_url)
        assert main(["sweep", "--config", cfg, "--only", "dnsbl", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "6 targets" in out  # 4 IPs + 2 domains
    st = status(capsys, cfg)
    listed = {(p["target"], p["source"]) for p in st["problems"]}
    assert listed == {
        ("192.0.2.1", "bl.example"),
        ("192.0.2.2", "bl.example"),
        ("bad.example", "dbl.example"),
    }
    p = next(p for p in st["problems"] if p["target"] == "192.0.2.1")
    assert p["severity"] == "critical" and p["pool"] == "shared-1" and p["customer"] == "acme"
    assert p["delist"] == "https://bl.example/lookup?192.0.2.1"
    assert p["reason"] == "Listed 192.0.2.1"
    assert st["sweeps"][0]["sweep"] == "dnsbl" and st["sweeps"][0]["targets"] == 6

    # the resolver stops answering: nothing changes, but the unknown is noted
    with silent_udp_server() as port:
        cfg = config(tmp_path, f"127.0.0.1:{port}", store_url)
        assert main(["sweep", "--config", cfg, "--only", "dnsbl", "--no-progress"]) == 0
    capsys.readouterr()
    st = status(capsys, cfg)
    assert {(p["target"], p["source"]) for p in st["problems"]} == listed
    assert all(p["last_unknown"] for p in st["problems"])
    assert st["sweeps"][0]["unknown"] == 6  # every (target, zone) pair that fits

    # delisted: the episode ends
    zones = {"bl.example": ("ip4set", DELISTED), "dbl.example": ("dnset", DOMAINS)}
    with rbldnsd(zones) as srv:
        cfg = config(tmp_path, srv.nameserver, store_url)
        assert main(["sweep", "--config", cfg, "--only", "dnsbl", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "dnsbl 192.0.2.1 bl.example: problem -> ok" in out
    st = status(capsys, cfg)
    assert ("192.0.2.1", "bl.example") not in {(p["target"], p["source"]) for p in st["problems"]}

    store = Store.open(store_url)
    try:
        with store.begin() as conn:
            eps = conn.execute(
                problem_episodes.select().where(problem_episodes.c.target == "192.0.2.1")
            ).all()
            changes = conn.execute(
                state_changes.select().where(state_changes.c.target == "192.0.2.1")
            ).all()
        assert len(eps) == 1 and eps[0].ended_at is not None
        assert eps[0].started_at < eps[0].ended_at
        assert [(c.old_status, c.new_status) for c in changes] == [
            (None, "problem"),
            ("problem", "ok"),
        ]
        assert len(current_problems(store, ["dnsbl"])) == 2
    finally:
        store.close()


def test_sweep_with_empty_inventory_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "x.db"}"\n')
    assert main(["sweep", "--config", str(cfg)]) == 0
    assert "inventory is empty" in capsys.readouterr().err

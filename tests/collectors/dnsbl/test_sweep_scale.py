"""A sweep whose state grows with problems, not addresses, through ``repmon sweep`` against a
real rbldnsd: no row for a clean address, a screenful of changes with the rest counted, one
log line per zone and none per change, and a zone that fails its self-test recorded as such
(no row per address for it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.cli import main
from monitor.store import Store
from monitor.store.schema import check_state
from tests.configs import blocklists, pool, table
from tests.servers import rbldnsd

#: a /26 listed whole on one zone, one address on the other
LISTED = """:127.0.0.2:Listed $
127.0.0.2
198.51.100.0/26
"""
ONE = """:127.0.0.2:Listed $
127.0.0.2
198.51.100.77
"""
#: lacks the RFC 5782 test point 127.0.0.2: fails its self-test
BROKEN = """:127.0.0.2:Listed $
198.51.100.78
"""


def config(tmp_path: Path, nameserver: str, store_url: str, zones: list[str]) -> str:
    path = tmp_path / "repmon.toml"
    path.write_text(
        blocklists([nameserver], [{"zone": z, "type": "ip"} for z in zones], timeout=0.3)
        + pool("big", ["198.51.100.0/24"], "acme")
        + table("store", {"url": store_url})
    )
    return str(path)


def test_a_sweep_records_problems_not_addresses(
    tmp_path: Path,
    store_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    zones = {
        "a.example": ("ip4set", LISTED),
        "b.example": ("ip4set", ONE),
        "broken.example": ("ip4set", BROKEN),
    }
    with rbldnsd(zones) as srv:
        cfg = config(tmp_path, srv.nameserver, store_url, list(zones))
        assert main(["sweep", "--config", cfg, "--only", "dnsbl", "--no-progress"]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0].startswith("dnsbl sweep: 256 targets, 768 results (447 ok, 65 problem")
    changes = [x for x in out if x.startswith("  dnsbl ")]
    assert len(changes) == 20  # a screenful; each change once
    assert out[-1] == "  … and 45 more changes (repmon status shows everything listed or wrong now)"
    # the log (stderr): the sweep and one line per zone, never one per change
    logged = [x for x in captured.err.splitlines() if " repmon.recorder: " in x]
    assert len(logged) == 4
    broken = next(m for m in logged if "zone broken.example" in m)
    assert "256 unknown" in broken and "not trusted in 1 chunk(s): self-test" in broken

    store = Store.open(store_url)
    try:
        with store.begin() as tx:
            by_status = dict(
                tx.execute(
                    sa.select(check_state.c.status, sa.func.count()).group_by(check_state.c.status)
                ).all()
            )
    finally:
        store.close()
    # 65 listings; no row for the 447 clean pairs, none for the zone that could not be trusted
    assert by_status == {"problem": 65}

    assert main(["status", "--config", cfg, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert len(status["problems"]) == 65
    coverage = {c["source"]: c for c in status["sweeps"][0]["coverage"]}
    assert coverage["a.example"] == {
        "source": "a.example",
        "scope": "inventory",
        "pools": ["big"],
        "complete": True,
        "covered": 256,
        "listed": 64,
        "unknown": 0,
        "selftest_ok": True,
        "failed_chunks": 0,
        "error": None,
    }
    assert not coverage["broken.example"]["selftest_ok"]
    assert coverage["broken.example"]["error"].startswith("self-test failed")
    assert main(["status", "--config", cfg]) == 0
    text = capsys.readouterr().out
    assert "  broken.example: 256 of 256 unknown; not trusted in 1 chunk(s): self-test" in text

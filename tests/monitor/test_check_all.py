"""``repmon check`` and ``repmon sweep`` with every check, against real rbldnsd and nsd."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from tests import hygiene_zones as hz
from tests.configs import blocklists, pool, table
from tests.servers import nsd, rbldnsd

BL = """:127.0.0.2:Listed $
127.0.0.2
192.0.2.11
"""
DBL = """:127.0.1.2:spam domain
test
open.test
"""


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    keys = hz.dkim_records()
    with (
        rbldnsd({"bl.example": ("ip4set", BL), "dbl.example": ("dnset", DBL)}) as bl,
        nsd(hz.zones(keys)) as auth,
    ):
        yield bl.nameserver, auth.nameserver


def write_config(tmp_path: Path, servers: tuple[str, str], store: str = "") -> str:
    path = tmp_path / "repmon.toml"
    zones = [{"zone": "bl.example", "type": "ip"}, {"zone": "dbl.example", "type": "domain"}]
    path.write_text(
        blocklists(list(servers), zones)
        + pool("p1", [f"{hz.IP_GOOD}/32", f"{hz.IP_NOMATCH}/32"], "acme", ["good.test"])
        + table(
            "inventory.domains",
            {"name": "good.test", "dkim_selectors": ["s2048", "revoked"]},
            array=True,
        )
        + table("inventory.domains", {"name": "open.test"}, array=True)
        + table("store", {"url": store or f"sqlite:///{tmp_path / 'r.db'}"})
    )
    return str(path)


def check_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict]]:  # type: ignore[type-arg]
    code = main(["check", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_check_domain_runs_every_domain_check(
    servers: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, servers)
    code, rows = check_json(capsys, "--config", cfg, "good.test")
    by = {(r["check"], r["source"]): r for r in rows}
    for check in ("spf", "dmarc", "mx", "mta-sts", "tls-rpt", "bimi", "dnssec"):
        assert (check, "") in by, check
    assert ("dnsbl", "dbl.example") in by
    assert by[("dkim", "s2048")]["status"] == "ok"  # selectors from the inventory
    assert by[("dkim", "revoked")]["status"] == "problem"
    assert by[("spf", "")]["status"] == "ok" and by[("dmarc", "")]["status"] == "ok"
    assert all(r["target"] == "good.test" for r in rows)
    assert code in (0, 1)

    code, rows = check_json(capsys, "--config", cfg, "open.test")
    by = {(r["check"], r["source"]): r for r in rows}
    assert code == 1
    assert by[("spf", "")]["status"] == "problem" and by[("spf", "")]["severity"] == "critical"
    assert by[("dmarc", "")]["status"] == "problem"
    assert by[("dnsbl", "dbl.example")]["status"] == "problem"


def test_check_ip_runs_ptr_and_spf_authorization(
    servers: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, servers)
    code, rows = check_json(capsys, "--config", cfg, hz.IP_GOOD)
    by = {(r["check"], r["source"]): r for r in rows}
    assert by[("ptr", "")]["status"] == "ok"
    assert by[("spf-authorizes", "good.test")]["status"] == "ok"  # the pool's domain
    assert by[("dnsbl", "bl.example")]["status"] == "ok"
    assert code == 0

    code, rows = check_json(capsys, "--config", cfg, "--domain", "open.test", hz.IP_NOMATCH)
    by = {(r["check"], r["source"]): r for r in rows}
    assert by[("ptr", "")]["status"] == "problem"  # does not forward-confirm
    assert ("spf-authorizes", "open.test") in by
    assert by[("dnsbl", "bl.example")]["status"] == "problem"
    assert code == 1


def test_hygiene_sweep_records_state(
    servers: tuple[str, str], tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, servers, store_url)
    assert main(["sweep", "--config", cfg, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "dnsbl sweep" in out and "hygiene sweep" in out
    assert main(["status", "--config", cfg, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    problems = {(p["target"], p["check"], p["source"]) for p in st["problems"]}
    assert ("open.test", "spf", "") in problems
    assert ("open.test", "dmarc", "") in problems
    assert (hz.IP_NOMATCH, "ptr", "") in problems
    assert (hz.IP_NOMATCH, "dnsbl", "bl.example") in problems
    assert ("good.test", "spf", "") not in problems
    assert {s["sweep"] for s in st["sweeps"]} == {"dnsbl", "hygiene"}

"""With ``[influxdb]`` set, ``repmon sweep`` and ``repmon ingest`` produce the documented series
in a real server (VictoriaMetrics speaking the InfluxDB v2 write API)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from tests.configs import blocklists, pool, table
from tests.daemon_support import arf_complaint, wait_for
from tests.servers import rbldnsd
from tests.tsdb_servers import VictoriaMetrics, victoria_metrics

BL = """:127.0.0.2:Listed $
127.0.0.2
192.0.2.1
"""


@pytest.fixture(scope="module")
def vm() -> Iterator[VictoriaMetrics]:
    with victoria_metrics() as server:
        yield server


def config(tmp_path: Path, vm: VictoriaMetrics, nameserver: str = "127.0.0.1:9") -> str:
    p = tmp_path / "repmon.toml"
    influx = {
        "url": vm.url,
        "token": "x",
        "org": "repmon",
        "bucket": "repmon",
        "buffer_dir": str(tmp_path / "buffer"),
    }
    p.write_text(
        blocklists([nameserver], [{"zone": "bl.example", "type": "ip"}], timeout=0.3)
        + pool("shared-1", ["192.0.2.0/30"], "acme")
        + table("store", {"url": f"sqlite:///{tmp_path / 'r.db'}"})
        + table("influxdb", influx)
    )
    return str(p)


def names(rows: list[dict]) -> set[str]:  # type: ignore[type-arg]
    return {r["metric"]["__name__"] for r in rows}


def test_sweep_writes_blocklist_and_sweep_series(tmp_path: Path, vm: VictoriaMetrics) -> None:
    with rbldnsd({"bl.example": ("ip4set", BL)}) as bl:
        cfg = config(tmp_path, vm, bl.nameserver)
        assert main(["sweep", "--config", cfg, "--only", "dnsbl", "--no-progress"]) == 0
    rows = wait_for("dnsbl series", lambda: vm.export("dnsbl_.*"))
    listed = [
        r
        for r in rows
        if r["metric"].get("target") == "192.0.2.1" and "listed" in r["metric"]["__name__"]
    ]
    assert listed and listed[0]["values"][-1] == 1
    assert listed[0]["metric"]["pool"] == "shared-1" and listed[0]["metric"]["zone"] == "bl.example"
    assert wait_for("sweep series", lambda: vm.export("sweep_.*"))


def test_ingest_writes_feedback_series(tmp_path: Path, vm: VictoriaMetrics) -> None:
    cfg = config(tmp_path, vm)
    for n in range(3):
        (tmp_path / f"c{n}.eml").write_bytes(arf_complaint("192.0.2.2", n))
    assert main(["ingest", "--config", cfg, *(str(tmp_path / f"c{n}.eml") for n in range(3))]) == 0
    rows = wait_for(
        "feedback complaint series",
        lambda: [
            r
            for r in vm.export("feedback_.*")
            if r["metric"].get("sending_ip") == "192.0.2.2"
            and r["metric"]["__name__"] == "feedback_complaint"
        ],
    )
    assert sum(rows[0]["values"]) == 3
    assert rows[0]["metric"]["customer"] == "acme"
    assert "recipient" not in rows[0]["metric"]  # never a tag

"""The Grafana dashboards: consistent JSON, and every panel's InfluxQL answered by a real InfluxDB.

The InfluxDB 1.x the suite starts is loaded with a synthetic two-day run
written by the project's own point builders (grafana/sample_run.py); each
query is expanded the way Grafana expands it and must return series.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.tsdb_servers import InfluxDB1, influxdb1

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
BUILTIN = {"timeFilter", "__interval", "__interval_ms"}
#: legend aliases, not template variables
ALIAS = re.compile(r"\$(tag_\w+|col|m|measurement)\b")


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"repmon_grafana_{name}", GRAFANA / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sample_run = _module("sample_run")
build = _module("build")

BOARDS = {
    p.stem: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))
}
TARGETS = [
    pytest.param(board, panel, t, id=f"{name}:{panel['id']}:{t['refId']}")
    for name, board in BOARDS.items()
    for panel in board["panels"]
    for t in panel["targets"]
]
#: a value for each template variable, as Grafana would substitute it
VALUES = {
    "ip": "198.51.100.21",
    "domain": r"(acme\.example|globex\.example)",
    "pool": ".*",
    "listing_window": "75m",
}


@pytest.fixture(scope="module")
def influx() -> Iterator[tuple[InfluxDB1, dt.datetime]]:
    end = dt.datetime.now(dt.UTC)
    with influxdb1("repmon") as server:
        server.write(sample_run.lines(end))
        yield server, end


@pytest.mark.parametrize(("board", "panel", "target"), TARGETS)
def test_every_panel_query_returns_data(
    influx: tuple[InfluxDB1, dt.datetime],
    board: dict[str, Any],
    panel: dict[str, Any],
    target: dict[str, Any],
) -> None:
    server, end = influx
    query = sample_run.expand(target["query"], VALUES, end - dt.timedelta(days=2), end)
    result = server.query(query)
    assert "error" not in result, f"{panel['title']}: {result.get('error')}\n{query}"
    series = result.get("series") or []
    assert series, f"{panel['title']}: no series\n{query}"
    assert any(any(v is not None for v in row[1:]) for s in series for row in s["values"])


def test_template_variable_queries_return_values(influx: tuple[InfluxDB1, dt.datetime]) -> None:
    server, _ = influx
    for board in BOARDS.values():
        for var in board["templating"]["list"]:
            if var["type"] != "query":
                continue
            result = server.query(var["query"])
            values = {v[1] for s in result.get("series", []) for v in s["values"]}
            assert values, f"{board['uid']} ${var['name']}: {result}"
    assert VALUES["ip"] in values_of(server, BOARDS["sending-ip"], "ip")


def values_of(server: InfluxDB1, board: dict[str, Any], name: str) -> set[str]:
    (var,) = [v for v in board["templating"]["list"] if v["name"] == name]
    return {v[1] for s in server.query(var["query"]).get("series", []) for v in s["values"]}


def test_the_overview_tells_the_story_of_the_run(influx: tuple[InfluxDB1, dt.datetime]) -> None:
    """Numbers the synthetic run was built to show: the panels must show them."""
    server, end = influx
    panels = {p["title"]: p for p in BOARDS["overview"]["panels"]}

    def rows(title: str) -> list[tuple[dict[str, str], list[Any]]]:
        q = sample_run.expand(panels[title]["targets"][0]["query"], VALUES, end, end)
        return [(s.get("tags", {}), v) for s in server.query(q)["series"] for v in s["values"]]

    listed = {
        tags["target_type"]: v[1]
        for tags, v in rows(next(t for t in panels if "listed right now" in t))
    }
    assert listed == {"ip": 2, "domain": 1}  # 198.51.100.21, .22 and globex.example
    assert rows(next(t for t in panels if "new listings" in t))[0][1][1] == 2
    zones = {
        (t["zone"], t["severity"]): v[1]
        for t, v in rows(next(t for t in panels if "zones list us" in t))
    }
    assert zones == {
        ("b.barracudacentral.org", "high"): 1,
        ("zen.spamhaus.org", "critical"): 1,
        ("dbl.spamhaus.org", "high"): 1,
    }


def test_dashboards_are_consistent() -> None:
    provisioned = (GRAFANA / "provisioning" / "datasources" / "repmon.yaml").read_text()
    (uid,) = re.findall(r"^\s*uid:\s*(\S+)", provisioned, re.M)
    assert len({b["uid"] for b in BOARDS.values()}) == len(BOARDS)
    assert set(BOARDS) == {"overview", "sending-ip", "domains", "feedback"}
    for board in BOARDS.values():
        defined = {v["name"] for v in board["templating"]["list"]} | BUILTIN
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                assert var["datasource"]["uid"] == uid
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids)
        for p in board["panels"]:
            where = f"{board['uid']} / {p.get('title')}"
            assert p["title"].endswith("?"), f"{where}: a title is the question the panel answers"
            assert p["description"], where
            assert p["fieldConfig"]["defaults"]["unit"], where
            assert p["datasource"]["uid"] == uid, where
            for t in p["targets"]:
                assert t["datasource"]["uid"] == uid, where
                text = " ".join([p["title"], t["query"], ALIAS.sub("", t["alias"])])
                used = set(re.findall(r"\$\{?(\w+)", text))
                assert used <= defined, f"{where}: undefined {used - defined}"
        _no_overlap(board)


def _no_overlap(board: dict[str, Any]) -> None:
    cells: set[tuple[int, int]] = set()
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{board['uid']}: {p['title']} overlaps another panel"
        cells |= mine


def test_committed_json_is_what_build_writes() -> None:
    for name, make in build.DASHBOARDS.items():
        assert json.loads(build.render_json(make())) == BOARDS[name], (
            f"dashboards/{name}.json is stale: run python grafana/build.py"
        )

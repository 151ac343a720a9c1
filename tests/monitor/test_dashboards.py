"""The Grafana dashboards: consistent JSON, and every panel's InfluxQL answered by a real InfluxDB.

The InfluxDB 1.x the suite starts is loaded with a synthetic two-day run
written by the project's own point builders (grafana/sample_run.py); each
query is expanded the way Grafana expands it and must return series. Beyond
that: severities are coloured with the one palette of grafana/panels.py, rate
thresholds are the rules' defaults, every table of feedback has volume, both
rates, pool and customer, the IP x zone table tells the run's listings with
their age and delist links, and every link lands on a dashboard and variables
that exist.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from checks.dnsbl.catalogue import CATALOGUE
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
panels = _module("panels")

BOARDS = {
    p.stem: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))
}
TARGETS = [
    pytest.param(board, panel, t, id=f"{name}:{panel['id']}:{t['refId']}")
    for name, board in BOARDS.items()
    for panel in board["panels"]
    for t in panel["targets"]
]
#: a value for each template variable, as Grafana would substitute it ("All" = ``.*``)
VALUES = {
    "ip": "198.51.100.21",
    "domain": r"(acme\.example|globex\.example)",
    "pool": ".*",
    "customer": ".*",
    "listing_window": "75m",
    "provider_window": "7h",
}
#: the single-value variables of the one-pool / one-customer / one-IP dashboards
BOARD_VALUES = {
    "pool": {"pool": "bulk-b", "customer": "globex"},
    "customer": {"customer": "globex"},
    "sending-ip": {"pool": "bulk-b", "customer": "globex"},
}
#: the palette the issue asks for: critical red, high orange, medium yellow, low blue, info grey
PALETTE = {
    "critical": "#e02f44",
    "high": "#ff9830",
    "medium": "#fade2a",
    "low": "#5794f2",
    "info": "#8e8e8e",
}
SEVERITIES = tuple(PALETTE)


def values_for(board: dict[str, Any]) -> dict[str, str]:
    return VALUES | BOARD_VALUES.get(board["uid"].removeprefix("repmon-"), {})


@pytest.fixture(scope="module")
def influx() -> Iterator[tuple[InfluxDB1, dt.datetime]]:
    end = dt.datetime.now(dt.UTC)
    with influxdb1("repmon") as server:
        server.write(sample_run.lines(end) + build.abuse_board.sample_lines(end))
        yield server, end


@pytest.mark.parametrize(("board", "panel", "target"), TARGETS)
def test_every_panel_query_returns_data(
    influx: tuple[InfluxDB1, dt.datetime],
    board: dict[str, Any],
    panel: dict[str, Any],
    target: dict[str, Any],
) -> None:
    server, end = influx
    query = sample_run.expand(target["query"], values_for(board), end - dt.timedelta(days=2), end)
    result = server.query(query)
    assert "error" not in result, f"{panel['title']}: {result.get('error')}\n{query}"
    series = result.get("series") or []
    assert series, f"{panel['title']}: no series\n{query}"
    assert any(any(v is not None for v in row[1:]) for s in series for row in s["values"])


def test_template_variable_queries_return_values(influx: tuple[InfluxDB1, dt.datetime]) -> None:
    server, end = influx
    for board in BOARDS.values():
        for var in board["templating"]["list"]:
            if var["type"] != "query":
                continue
            query = sample_run.expand(var["query"], values_for(board), end, end)
            result = server.query(query)
            values = {v[1] for s in result.get("series", []) for v in s["values"]}
            assert values, f"{board['uid']} ${var['name']}: {result}"
    assert VALUES["ip"] in values_of(server, BOARDS["sending-ip"], "ip")
    # the hidden pool / customer of the IP shown feed the header links
    assert values_of(server, BOARDS["sending-ip"], "pool") == {"bulk-b"}
    assert values_of(server, BOARDS["sending-ip"], "customer") == {"globex"}
    assert values_of(server, BOARDS["pool"], "customer") == {"globex"}
    assert values_of(server, BOARDS["overview"], "customer") == {"acme", "globex", "initech"}
    assert values_of(server, BOARDS["overview"], "pool") == {"bulk-a", "bulk-b", "transactional"}


def values_of(server: InfluxDB1, board: dict[str, Any], name: str) -> set[str]:
    (var,) = [v for v in board["templating"]["list"] if v["name"] == name]
    now = dt.datetime.now(dt.UTC)
    query = sample_run.expand(var["query"], values_for(board), now, now)
    return {v[1] for s in server.query(query).get("series", []) for v in s["values"]}


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
    assert set(BOARDS) == {
        "overview", "pool", "sending-ip", "customer", "domains", "feedback", "providers",
        "abuse",
    }  # fmt: skip
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


# --- colours ----------------------------------------------------------------------------------
def _all_panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, board in BOARDS.items():
        for p in board["panels"]:
            yield f"{name} / {p['title']}", p


def _mappings(p: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    yield p["fieldConfig"]["defaults"]["mappings"]
    for o in p["fieldConfig"]["overrides"]:
        for prop in o["properties"]:
            if prop["id"] == "mappings":
                yield prop["value"]


def test_the_palette_is_the_one_asked_for() -> None:
    assert panels.SEVERITY_COLORS == PALETTE
    levels = panels.SEVERITY_LEVELS
    assert sorted(levels, key=levels.get, reverse=True) == list(SEVERITIES)


def test_every_severity_is_coloured_with_the_palette() -> None:
    """Series named by severity get the palette through overrides, severity values through
    value mappings; a panel that splits by severity has an override for every severity."""
    seen_overrides = seen_mappings = 0
    for where, p in _all_panels():
        aliases = " ".join(t["alias"] for t in p["targets"])
        colored = set()
        for o in p["fieldConfig"]["overrides"]:
            named = [s for s in SEVERITIES if s in str(o["matcher"]["options"])]
            for prop in o["properties"]:
                if prop["id"] == "color" and named:
                    (sev,) = named
                    assert prop["value"] == {"mode": "fixed", "fixedColor": PALETTE[sev]}, where
                    colored.add(sev)
                    seen_overrides += 1
        if "$tag_severity" in aliases:
            assert colored == set(SEVERITIES), f"{where}: series by severity, not all coloured"
        for mappings in _mappings(p):
            for m in mappings:
                for option in m.get("options", {}).values():
                    if isinstance(option, dict) and option.get("text") in PALETTE:
                        assert option["color"] == PALETTE[option["text"]], where
                        seen_mappings += 1
        queries = " ".join(t["query"] for t in p["targets"])
        if 'AS "level"' in queries:  # severity as a number: shown through the level mappings
            assert panels.SEVERITY_LEVEL_MAPPINGS in list(_mappings(p)), where
        # a colour of the palette never stands for a count or a series that is no severity
        for o in p["fieldConfig"]["overrides"]:
            for prop in o["properties"]:
                if prop["id"] == "color" and prop["value"].get("fixedColor") in PALETTE.values():
                    assert any(s in str(o["matcher"]["options"]) for s in SEVERITIES) or (
                        "alignment" in aliases
                    ), where
        fixed = p["fieldConfig"]["defaults"]["color"].get("fixedColor")
        assert fixed not in PALETTE.values(), f"{where}: a severity colour as the panel colour"
    assert seen_overrides >= 10 and seen_mappings >= 5


def test_rate_thresholds_are_the_rules_defaults_coloured_by_severity() -> None:
    from monitor.config.cases import BounceRuleConfig, ComplaintRuleConfig, RateRuleConfig

    def percent(thresholds: Mapping[Any, float]) -> dict[str, float]:
        return {sev: round(rate * 100, 6) for sev, rate in thresholds.items()}

    assert percent(ComplaintRuleConfig().thresholds) == panels.COMPLAINT_THRESHOLDS
    assert panels.COMPLAINT_THRESHOLDS == {"medium": 0.1, "critical": 0.3}
    assert percent(BounceRuleConfig().thresholds) == panels.BOUNCE_THRESHOLDS
    assert RateRuleConfig().min_volume == panels.MIN_VOLUME
    complaint = [(PALETTE[s], v) for s, v in panels.COMPLAINT_THRESHOLDS.items()]
    bounce = [(PALETTE[s], v) for s, v in panels.BOUNCE_THRESHOLDS.items()]
    checked = 0
    for where, p in _all_panels():
        if p["type"] != "timeseries":
            continue
        queries = " ".join(t["query"] for t in p["targets"])
        rates = {
            "complaint": 'sum("complaint") / sum("sent")' in queries,
            "bounce": 'sum("hard_bounce") / sum("sent")' in queries,
        }
        assert not all(rates.values()), f"{where}: complaint and bounce rates share an axis"
        if not any(rates.values()):
            continue
        steps = [
            (s["color"], s["value"]) for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]
        ]
        assert steps[1:] == (complaint if rates["complaint"] else bounce), where
        assert p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off", where
        checked += 1
    assert checked >= 8


# --- tables -----------------------------------------------------------------------------------
def _display(p: dict[str, Any], column: str, value: Any) -> str:
    """The text Grafana shows for ``value`` in ``column`` (value mappings of its override)."""
    for o in p["fieldConfig"]["overrides"]:
        if o["matcher"] == {"id": "byName", "options": column}:
            for prop in o["properties"]:
                if prop["id"] != "mappings":
                    continue
                for m in prop["value"]:
                    if m["type"] == "value" and str(value) in m["options"]:
                        return str(m["options"][str(value)]["text"])
                    if m["type"] == "regex" and re.fullmatch(m["options"]["pattern"], str(value)):
                        return str(m["options"]["result"]["text"])
    return str(value)


def _table(
    server: InfluxDB1, end: dt.datetime, board: dict[str, Any], p: dict[str, Any]
) -> list[dict[str, Any]]:
    query = sample_run.expand(
        p["targets"][0]["query"], values_for(board), end - dt.timedelta(days=2), end
    )
    result = server.query(query)
    assert "error" not in result, result
    return [
        dict(zip(s["columns"], row, strict=True)) for s in result["series"] for row in s["values"]
    ]


def _overridden(p: dict[str, Any]) -> set[str]:
    return {o["matcher"]["options"] for o in p["fieldConfig"]["overrides"]}


def test_every_feedback_table_has_volume_rates_pool_and_customer(
    influx: tuple[InfluxDB1, dt.datetime],
) -> None:
    server, end = influx
    needed = {"sent", "complaint_rate", "hard_bounce_rate", "pool", "customer"}
    tables = 0
    for board in BOARDS.values():
        for p in board["panels"]:
            if p["type"] != "table" or 'FROM "feedback"' not in p["targets"][0]["query"]:
                continue
            rows = _table(server, end, board, p)
            assert rows and needed <= set(rows[0]), (
                f"{p['title']}: {set(rows[0]) if rows else rows}"
            )
            assert any(r["complaint_rate"] > 0 for r in rows), p["title"]  # not integer division
            assert all(r["sent"] >= panels.MIN_VOLUME for r in rows)
            assert needed <= _overridden(p)
            (organize,) = [t for t in p["transformations"] if t["id"] == "organize"]
            assert not needed & set(organize["options"]["excludeByName"])
            tables += 1
    assert tables >= 5


def _delist_link(p: dict[str, Any], row: dict[str, Any]) -> str:
    """The delist column's data link for ``row``, interpolated as Grafana does: a
    ``${__data.fields.X}`` is field X's display text (after value mappings)."""
    (link,) = [
        prop["value"][0]
        for o in p["fieldConfig"]["overrides"]
        if o["matcher"]["options"] == "delist"
        for prop in o["properties"]
        if prop["id"] == "links"
    ]
    return re.sub(
        r"\$\{__data\.fields\.(\w+)(?::raw)?\}",
        lambda m: _display(p, m.group(1), row[m.group(1)]),
        link["url"],
    )


def test_the_ip_zone_table_tells_listings_their_age_and_delist_links(
    influx: tuple[InfluxDB1, dt.datetime],
) -> None:
    server, end = influx
    board = BOARDS["overview"]
    (p,) = [p for p in board["panels"] if "IP × zone" in p["title"]]
    assert p["type"] == "table"
    rows = {(r["target"], r["zone"]): r for r in _table(server, end, board, p)}
    # the run's listings now: .21 on barracuda (high) since hour 20, .22 on zen (critical) since
    # hour 40; .11 on spamcop cleared at hour 30; the last sweep is at hour 47
    assert set(rows) == {
        ("198.51.100.21", "b.barracudacentral.org"),
        ("198.51.100.22", "zen.spamhaus.org"),
    }
    for key, sev, hours in [
        (("198.51.100.21", "b.barracudacentral.org"), "high", 27),
        (("198.51.100.22", "zen.spamhaus.org"), "critical", 7),
    ]:
        row = rows[key]
        assert _display(p, "severity", row["severity"]) == sev
        assert abs(row["age"] - hours * 3600) <= 300, row
        assert (row["pool"], row["customer"]) == ("bulk-b", "globex")
    zones = {z.label: z for z in CATALOGUE}
    assert _delist_link(p, rows[("198.51.100.22", "zen.spamhaus.org")]) == zones[
        "zen.spamhaus.org"
    ].delist_url("198.51.100.22")
    assert _delist_link(p, rows[("198.51.100.21", "b.barracudacentral.org")]) == (
        zones["b.barracudacentral.org"].delist + "#198.51.100.21"
    )
    # every catalogue zone with a delist page links to it, with the target in it or after it
    for zone in CATALOGUE:
        if zone.delist:
            link = _delist_link(p, {"delist_url": zone.label, "target": "192.0.2.1"})
            assert link in (zone.delist_url("192.0.2.1"), zone.delist + "#192.0.2.1")
    assert _delist_link(p, {"delist_url": "own.zone.example", "target": "192.0.2.1"}) == (
        "#192.0.2.1"
    )
    # the columns an analyst reads, named, with severity coloured and the age a duration
    assert {"target", "zone", "severity", "age", "pool", "customer", "delist"} <= _overridden(p)
    (domains,) = [p for p in board["panels"] if "Which of our domains" in p["title"]]
    (row,) = _table(server, end, board, domains)
    assert (row["target"], row["zone"], _display(domains, "severity", row["severity"])) == (
        "globex.example",
        "dbl.spamhaus.org",
        "high",
    )
    assert abs(row["age"] - 3 * 3600) <= 300


def test_a_timeout_neither_ends_a_listing_nor_makes_it_new(
    influx: tuple[InfluxDB1, dt.datetime],
) -> None:
    """The IP x zone table's "now" is the last *known* answer: a listed pair whose latest
    answer is unknown stays listed, with its age (written here one sweep later)."""
    server, end = influx
    from checks.result import CheckResult
    from monitor.timeseries.schema import check_points

    at = end - dt.timedelta(seconds=30)
    late = CheckResult("198.51.100.22", "dnsbl", "zen.spamhaus.org", "unknown", error="timeout")
    server.write(check_points([late], at, sample_run.owners()))
    board = BOARDS["overview"]
    (p,) = [p for p in board["panels"] if "IP × zone" in p["title"]]
    rows = {(r["target"], r["zone"]): r for r in _table(server, end, board, p)}
    row = rows[("198.51.100.22", "zen.spamhaus.org")]
    assert _display(p, "severity", row["severity"]) == "critical"
    assert abs(row["age"] - 7 * 3600) <= 300


# --- variables and links ------------------------------------------------------------------------
def _variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board["templating"]["list"]}


def test_customer_and_pool_variables() -> None:
    for name in ("overview", "feedback", "domains", "customer"):
        assert "customer" in _variables(BOARDS[name]), name
    for name in ("overview", "feedback", "pool"):
        assert "pool" in _variables(BOARDS[name]), name
    for name in ("overview", "feedback"):
        variables = _variables(BOARDS[name])
        for var in ("customer", "pool"):
            assert variables[var]["multi"] and variables[var]["includeAll"], (name, var)
            assert variables[var]["hide"] == 0
        # every feedback / listing query is filtered by both
        for p in BOARDS[name]["panels"]:
            for t in p["targets"]:
                if 'FROM "feedback"' in t["query"] or "listed" in t["query"]:
                    assert "$customer" in t["query"] and "$pool" in t["query"], p["title"]


def _links(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, url) of every link: the header's, each panel's and each column's data links."""
    for link in board["links"]:
        if link["type"] == "link":
            yield f"{board['uid']} header", link["url"]
    for p in board["panels"]:
        for link in p["fieldConfig"]["defaults"]["links"]:
            yield f"{board['uid']} / {p['title']}", link["url"]
        for o in p["fieldConfig"]["overrides"]:
            for prop in o["properties"]:
                if prop["id"] == "links":
                    for link in prop["value"]:
                        yield (
                            f"{board['uid']} / {p['title']} / {o['matcher']['options']}",
                            link["url"],
                        )


def test_links_land_on_existing_dashboards_and_variables() -> None:
    by_uid = {b["uid"]: b for b in BOARDS.values()}
    edges: set[tuple[str, str]] = set()
    for board in BOARDS.values():
        defined = set(_variables(board))
        for where, url in _links(board):
            for name in re.findall(r"\$\{(\w+)\}", url):
                assert name in defined or name == "__url_time_range", f"{where}: ${name}"
            if not url.startswith("/d/"):
                assert "__data.fields.delist_url" in url, f"{where}: {url}"
                continue
            uid = url.split("/")[2]
            assert uid in by_uid, f"{where}: no dashboard {uid}"
            for var in re.findall(r"[?&]var-(\w+)=", url):
                assert var in _variables(by_uid[uid]), f"{where}: {uid} has no ${var}"
            edges.add((board["uid"], uid))
    # the drill-down: overview -> pool -> IP -> customer, and back to pools from a customer
    for edge in [
        ("repmon-overview", "repmon-pool"),
        ("repmon-pool", "repmon-sending-ip"),
        ("repmon-sending-ip", "repmon-customer"),
        ("repmon-sending-ip", "repmon-pool"),
        ("repmon-customer", "repmon-pool"),
        ("repmon-overview", "repmon-customer"),
        ("repmon-overview", "repmon-sending-ip"),
        ("repmon-feedback", "repmon-sending-ip"),
    ]:
        assert edge in edges, edge


# --- the mailbox providers (SNDS, Postmaster Tools) ---------------------------------------------
def test_provider_thresholds_and_verdicts_are_the_collectors_coloured_by_severity() -> None:
    """Gmail's spam-rate lines and the auth line are [postmaster]'s defaults; SNDS colours and
    Gmail reputations take the palette colour of the severity of the case they open."""
    from collectors.postmaster import PostmasterConfig
    from collectors.postmaster.collect import REPUTATION_SEVERITY
    from collectors.snds.collect import RED_SEVERITY, YELLOW_SEVERITY

    pm = PostmasterConfig()
    assert {
        "medium": round(pm.spam_rate_medium * 100, 6),
        "high": round(pm.spam_rate_high * 100, 6),
    } == panels.GMAIL_SPAM_THRESHOLDS
    assert round(pm.auth_min_ratio * 100, 6) == panels.AUTH_MIN_PERCENT
    spam = [(PALETTE[s], v) for s, v in panels.GMAIL_SPAM_THRESHOLDS.items()]
    gmail = 0
    for where, p in _all_panels():
        queries = " ".join(t["query"] for t in p["targets"])
        if 'max("spam_rate")' in queries:
            steps = [
                (s["color"], s["value"])
                for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]
            ]
            assert steps[1:] == spam, where
            gmail += 1
    assert gmail >= 2
    filters = build.FILTER_MAPPINGS[0]["options"]
    assert filters["1"] == {"text": "YELLOW", "color": PALETTE[YELLOW_SEVERITY], "index": 1}
    assert filters["2"]["color"] == PALETTE[RED_SEVERITY]
    assert filters["0"]["color"] == panels.OK_COLOR
    reputations = {o["text"]: o["color"] for o in build.REPUTATION_MAPPINGS[0]["options"].values()}
    for name, severity in REPUTATION_SEVERITY.items():
        assert reputations[name] == PALETTE[severity]
    assert reputations["HIGH"] == panels.OK_COLOR


def _rows(server: InfluxDB1, end: dt.datetime, board: str, title: str, ref: int = 0) -> list[Any]:
    (p,) = [p for p in BOARDS[board]["panels"] if p["title"].startswith(title)]
    query = sample_run.expand(
        p["targets"][ref]["query"], values_for(BOARDS[board]), end - dt.timedelta(days=2), end
    )
    result = server.query(query)
    assert "error" not in result, result
    return [
        (s.get("tags", {}), dict(zip(s["columns"], row, strict=True)))
        for s in result.get("series", [])
        for row in s["values"]
    ]


def test_the_providers_dashboard_tells_the_story_of_the_run(
    influx: tuple[InfluxDB1, dt.datetime],
) -> None:
    """What the synthetic run's SNDS and Postmaster Tools data were built to show."""
    server, end = influx
    board = BOARDS["providers"]
    rows = _rows(server, end, "providers", "How many of our IPs does Outlook.com block")
    assert rows[0][1]["blocked IPs"] == 1
    ranges = _rows(server, end, "providers", "How many ranges does SNDS block")[0][1]
    assert (ranges["blocked ranges"], ranges["not in the inventory"]) == (2, 1)
    blocked = {r["target"] for _, r in _rows(server, end, "providers", "Which of our IPs does")}
    assert blocked == {"198.51.100.23", "100.64.0.0/30"}

    # our rates (query A) merged in Grafana with what SNDS says (query B) on IP, pool, customer
    (p,) = [p for p in board["panels"] if p["title"].startswith("Which IPs does Outlook.com")]
    assert p["transformations"][0]["id"] == "merge"
    ours = {r["sending_ip"]: r for r in _table(server, end, board, p)}
    snds = {r["sending_ip"]: r for _, r in _rows(server, end, "providers", p["title"], ref=1)}
    red = ours["198.51.100.21"] | snds["198.51.100.21"]
    assert _display(p, "filter", red["filter"]) == "RED" and red["traps"] >= 4
    assert red["snds_rate"] > 0.1 and red["complaint_rate"] > 0
    assert (red["pool"], red["customer"]) == ("bulk-b", "globex")
    # "< 0.1%" only: no figure, the bound apart; the stranger IP has SNDS rows, no volume of ours
    assert snds["192.0.2.10"]["snds_rate"] is None and snds["192.0.2.10"]["snds_under"] == 0.1
    assert sample_run.SNDS_STRANGER in snds and sample_run.SNDS_STRANGER not in ours
    assert set(snds) - {sample_run.SNDS_STRANGER} <= set(ours)
    assert {"filter", "traps", "snds_rate", "snds_under", "complaint_rate"} <= _overridden(p)

    spam = _rows(server, end, "providers", "Is each domain's Gmail spam rate")
    globex = [r["max"] for t, r in spam if t["domain"] == "globex.example"]
    assert globex and max(globex) >= 0.3
    assert all(r["max"] < 0.1 for t, r in spam if t["domain"] == "acme.example")
    levels = _rows(server, end, "providers", "What reputation does Gmail give")
    last = [r["max"] for t, r in levels if t["domain"] == "globex.example" and r["max"] is not None]
    assert last[-1] == sample_run_level("LOW")
    ips = _rows(server, end, "providers", "How many of each domain's sending IPs")
    assert any(t["domain"] == "globex.example" and r["BAD (high)"] == 1 for t, r in ips)
    health = _rows(server, end, "providers", "Do the SNDS and Postmaster Tools fetches")
    shares = {(t["kind"], v) for t, r in health for k, v in r.items() if k != "time"}
    assert ("snds", 100) in shares and ("snds", 0) in shares  # the refused fetch, the others
    assert ("postmaster", 0) in shares and ("postmaster", 100) not in shares
    # the one-IP view: SNDS beside our own rate for the IP of the sending-IP dashboard
    ours = _rows(server, end, "sending-ip", "Is $ip's complaint rate at Outlook.com")
    theirs = _rows(server, end, "sending-ip", "Is $ip's complaint rate at Outlook.com", ref=1)
    assert ours and theirs and theirs[-1][1]["max"] > 0


def sample_run_level(name: str) -> int:
    from monitor.timeseries.providers import REPUTATION_LEVELS

    return REPUTATION_LEVELS[name]

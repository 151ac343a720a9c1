"""The pieces the dashboards are built from: panels, variables, thresholds (see build.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

DATASOURCE = {"type": "influxdb", "uid": "repmon-influxdb"}

#: complaint rate (user-reported spam) limits: Gmail / Yahoo keep < 0.1 %, never 0.3 %
COMPLAINT_STEPS: list[tuple[str, float | None]] = [("green", None), ("orange", 0.1), ("red", 0.3)]
#: hard-bounce limits: Amazon SES reviews at 5 %, pauses at 10 %
BOUNCE_STEPS: list[tuple[str, float | None]] = [("green", None), ("orange", 5), ("red", 10)]
STATE_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "ok", "color": "green", "index": 0},
            "1": {"text": "unknown", "color": "yellow", "index": 1},
            "2": {"text": "problem", "color": "red", "index": 2},
        },
    }
]
LISTED_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "not listed", "color": "green", "index": 0},
            "1": {"text": "listed", "color": "red", "index": 1},
        },
    }
]


def target(query: str, alias: str = "", ref: str = "A", table: bool = False) -> dict[str, Any]:
    return {
        "refId": ref,
        "datasource": DATASOURCE,
        "query": " ".join(query.split()),
        "rawQuery": True,
        "resultFormat": "table" if table else "time_series",
        "alias": alias,
    }


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    grid: tuple[int, int, int, int],
    unit: str = "short",
    steps: Sequence[tuple[str, float | None]] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    interval: str | None = None,
    stack: bool = False,
    bars: bool = False,
) -> dict[str, Any]:
    """One panel; ``grid`` is (x, y, w, h) on Grafana's 24-column grid."""
    x, y, w, h = grid
    threshold_steps = steps or [("green", None)]
    defaults: dict[str, Any] = {
        "unit": unit,
        "min": 0,
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": c, "value": v} for c, v in threshold_steps],
        },
        "mappings": mappings or [],
        "color": {"mode": "thresholds" if kind in ("stat", "bargauge") else "palette-classic"},
    }
    options: dict[str, Any] = {}
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "bars" if bars else "line",
            "lineWidth": 1,
            "fillOpacity": 60 if bars else 10,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "spanNulls": False,
            "thresholdsStyle": {"mode": "line" if steps else "off"},
        }
        options = {
            "legend": {
                "showLegend": True,
                "displayMode": "table",
                "placement": "right",
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif kind == "state-timeline":
        defaults["color"] = {"mode": "thresholds"}
        defaults["custom"] = {"fillOpacity": 80, "lineWidth": 0}
        options = {
            "showValue": "never",
            "mergeValues": True,
            "rowHeight": 0.8,
            "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
        }
    elif kind == "stat":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value_and_name",
        }
    elif kind == "bargauge":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "basic",
            "showUnfilled": True,
        }
    elif kind == "table":
        options = {"showHeader": True, "footer": {"show": False}}
    out: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": targets,
    }
    if interval:
        out["interval"] = interval
    return out


def query_variable(name: str, label: str, query: str, multi: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,  # on time-range change: new IPs and domains show up
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {},
        "options": [],
        "hide": 0,
    }


def constant(name: str, value: str, description: str) -> dict[str, Any]:
    return {"name": name, "type": "constant", "query": value, "hide": 2, "description": description}


LISTING_WINDOW = constant(
    "listing_window",
    "75m",
    "How far back 'right now' looks for the last blocklist answer: a bit more than "
    "[schedule] dnsbl_sweep (1h by default). Raise it with the sweep interval.",
)


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[dict[str, Any]],
    variables: list[dict[str, Any]],
    time_from: str = "now-2d",
) -> dict[str, Any]:
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["repmon"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "5m",
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["repmon"], "asDropdown": True, "title": "repmon"}
        ],
        "panels": panels,
    }


def render_json(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2) + "\n"

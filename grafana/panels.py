"""The pieces the dashboards are built from: panels, variables, colours, links (see build.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

DATASOURCE = {"type": "influxdb", "uid": "repmon-influxdb"}

# --- colours -------------------------------------------------------------------------------
#: THE severity palette: every panel that shows a severity colours it with these (through
#: field overrides or value mappings); rate thresholds take the severity of the case repmon's
#: rule opens at that line. Besides severities only two states reuse a colour: a failed check
#: or DMARC alignment ("problem", "fail") is red like critical.
SEVERITY_COLORS: dict[str, str] = {
    "critical": "#e02f44",  # red
    "high": "#ff9830",  # orange
    "medium": "#fade2a",  # yellow
    "low": "#5794f2",  # blue
    "info": "#8e8e8e",  # grey
}
#: not listed / check ok / DMARC pass
OK_COLOR = "#56a64b"
#: check problem / DMARC fail
PROBLEM_COLOR = SEVERITY_COLORS["critical"]
#: an answer that could not be had (timeout, SERVFAIL, refused): not a severity, never "clean"
UNKNOWN_COLOR = "#a352cc"
#: counts that carry no severity (how many listings, how many sweeps ...)
NEUTRAL_COLOR = "text"

#: a listing's severity as a number, so InfluxQL can take the worst (max) and the last one;
#: 0 is "not listed". A listing without a severity tag counts as medium (the zone default).
SEVERITY_LEVELS: dict[str, int] = {"critical": 5, "high": 4, "medium": 3, "low": 2, "info": 1}

#: -1: every answer in the interval was unknown (only the listing timelines use it)
UNKNOWN_LEVEL = -1

SEVERITY_LEVEL_MAPPINGS = [
    {
        "type": "value",
        "options": {
            str(UNKNOWN_LEVEL): {"text": "unknown", "color": UNKNOWN_COLOR, "index": 7},
            "0": {"text": "not listed", "color": OK_COLOR, "index": 0},
            **{
                str(level): {"text": sev, "color": SEVERITY_COLORS[sev], "index": 6 - level}
                for sev, level in SEVERITY_LEVELS.items()
            },
        },
    }
]
SEVERITY_NAME_MAPPINGS = [
    {
        "type": "value",
        "options": {
            sev: {"text": sev, "color": SEVERITY_COLORS[sev], "index": i}
            for i, sev in enumerate(SEVERITY_COLORS)
        },
    }
]
STATE_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "ok", "color": OK_COLOR, "index": 0},
            "1": {"text": "unknown", "color": UNKNOWN_COLOR, "index": 1},
            "2": {"text": "problem", "color": PROBLEM_COLOR, "index": 2},
        },
    }
]
STATE_STEPS: list[tuple[str, float | None]] = [
    (OK_COLOR, None),
    (UNKNOWN_COLOR, 1),
    (PROBLEM_COLOR, 2),
]

# --- rate thresholds: the defaults of repmon's rules (monitor/config/cases.py) --------------
#: [rules.complaints]: medium at 0.1 %, critical at 0.3 % (Gmail / Yahoo bulk-sender limits)
COMPLAINT_THRESHOLDS: dict[str, float] = {"medium": 0.1, "critical": 0.3}
#: [rules.bounces]: hard bounces, medium at 5 %, critical at 10 % (Amazon SES review / pause)
BOUNCE_THRESHOLDS: dict[str, float] = {"medium": 5.0, "critical": 10.0}
#: [rules.*] min_volume: below this many messages sent a rate is not judged
MIN_VOLUME = 1000


def rate_steps(thresholds: Mapping[str, float]) -> list[tuple[str, float | None]]:
    """Threshold steps coloured by the severity of the case the rule opens at each line."""
    ordered = sorted(thresholds.items(), key=lambda item: item[1])
    return [(OK_COLOR, None)] + [(SEVERITY_COLORS[sev], value) for sev, value in ordered]


COMPLAINT_STEPS = rate_steps(COMPLAINT_THRESHOLDS)
BOUNCE_STEPS = rate_steps(BOUNCE_THRESHOLDS)

# --- the mailbox providers' verdicts (SNDS, Postmaster Tools) -------------------------------
#: Gmail's bulk-sender spam-rate thresholds in percent, coloured by the severity of the
#: ``gmail-spam-rate`` case ([postmaster] spam_rate_medium / spam_rate_high): 0.1 % medium,
#: 0.3 % high
GMAIL_SPAM_THRESHOLDS: dict[str, float] = {"medium": 0.1, "high": 0.3}
GMAIL_SPAM_STEPS = rate_steps(GMAIL_SPAM_THRESHOLDS)
#: [postmaster] auth_min_ratio in percent: SPF, DKIM and DMARC pass ratios below it open a
#: medium ``gmail-auth`` case, so below is yellow and at or above green
AUTH_MIN_PERCENT = 95.0
AUTH_STEPS: list[tuple[str, float | None]] = [
    (SEVERITY_COLORS["medium"], None),
    (OK_COLOR, AUTH_MIN_PERCENT),
]
#: Gmail MEDIUM reputation: fine (no case), a shade lighter than HIGH
FAIR_COLOR = "#96d98d"


def level_mappings(levels: Mapping[str, int], colors: Mapping[str, str]) -> list[dict[str, Any]]:
    """Value mappings from a provider's verdict as a number (``filter_level``,
    ``reputation_level``: higher is worse) back to its name, coloured by the severity of the
    case repmon opens on it (green: none)."""
    return [
        {
            "type": "value",
            "options": {
                str(level): {"text": name, "color": colors[name], "index": level}
                for name, level in levels.items()
            },
        }
    ]


def fixed_color(color: str) -> dict[str, Any]:
    return {"id": "color", "value": {"mode": "fixed", "fixedColor": color}}


def severity_overrides(pattern: str = "/^{sev}$/") -> list[dict[str, Any]]:
    """One override per severity: series whose display name matches ``pattern`` (``{sev}``
    replaced) get the palette's colour. For series named by alias, e.g. ``$tag_severity``."""
    return [
        {
            "matcher": {"id": "byRegexp", "options": pattern.format(sev=sev)},
            "properties": [fixed_color(color)],
        }
        for sev, color in SEVERITY_COLORS.items()
    ]


#: DMARC alignment series (alias ending in ``$tag_alignment``): pass green, fail red
ALIGNMENT_OVERRIDES = [
    {"matcher": {"id": "byRegexp", "options": f"/(^| ){state}$/"}, "properties": [fixed_color(c)]}
    for state, c in (("pass", OK_COLOR), ("fail", PROBLEM_COLOR))
]


# --- links ---------------------------------------------------------------------------------
def dashboard_url(uid: str, **params: str) -> str:
    """``/d/<uid>/<uid>?var-x=...&<time range>``: what a link to another repmon dashboard is."""
    query = "".join(f"var-{k}={v}&" for k, v in params.items())
    return f"/d/{uid}/{uid}?{query}${{__url_time_range}}"


def data_link(title: str, url: str, new_tab: bool = False) -> dict[str, Any]:
    return {"title": title, "url": url, "targetBlank": new_tab}


def dashboard_link(title: str, uid: str, **params: str) -> dict[str, Any]:
    """A link in the dashboard's header (variables in ``params`` are interpolated)."""
    query = "&".join(f"var-{k}={v}" for k, v in params.items())
    url = f"/d/{uid}/{uid}" + (f"?{query}" if query else "")
    return {
        "type": "link",
        "title": title,
        "url": url,
        "keepTime": True,
        "includeVars": False,
        "targetBlank": False,
        "icon": "dashboard",
        "asDropdown": False,
        "tags": [],
    }


def column(
    name: str,
    display: str | None = None,
    unit: str | None = None,
    links: list[dict[str, Any]] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    hidden: bool = False,
    background: bool = False,
    width: int | None = None,
    decimals: int | None = None,
) -> dict[str, Any]:
    """A table column's override, matched by the field's name (the query's column)."""
    props: list[dict[str, Any]] = []
    if display:
        props.append({"id": "displayName", "value": display})
    if unit:
        props.append({"id": "unit", "value": unit})
    if decimals is not None:
        props.append({"id": "decimals", "value": decimals})
    if links:
        props.append({"id": "links", "value": links})
    if mappings:
        props.append({"id": "mappings", "value": mappings})
    if hidden:
        props.append({"id": "custom.hidden", "value": True})
    if background:
        props.append({"id": "custom.cellOptions", "value": {"type": "color-background"}})
    if width:
        props.append({"id": "custom.width", "value": width})
    return {"matcher": {"id": "byName", "options": name}, "properties": props}


def organize(order: Sequence[str]) -> dict[str, Any]:
    """Transformation: drop the Time column (aggregates over a range carry the range start)
    and put the columns in ``order``."""
    return {
        "id": "organize",
        "options": {
            "excludeByName": {"Time": True},
            "indexByName": {name: i for i, name in enumerate(order)},
            "renameByName": {},
        },
    }


# --- queries -------------------------------------------------------------------------------
def target(query: str, alias: str = "", ref: str = "A", table: bool = False) -> dict[str, Any]:
    return {
        "refId": ref,
        "datasource": DATASOURCE,
        "query": " ".join(query.split()),
        "rawQuery": True,
        "resultFormat": "table" if table else "time_series",
        "alias": alias,
    }


def severity_levels(where: str, unknown: bool = False) -> str:
    """A FROM clause: every known ``dnsbl`` answer matching ``where`` as a field ``level``
    (0 not listed, else :data:`SEVERITY_LEVELS` of its severity tag), one subquery per
    severity. Grouped by tags in the outer query, ``last("level")`` is the current state and
    ``max("level")`` the worst; unknown answers have no ``listed``, so no ``level`` -- unless
    ``unknown``: then they are :data:`UNKNOWN_LEVEL`, below every known answer, so that
    ``max("level")`` per interval is unknown only when no answer in it was known (for
    timelines; never for "listed now", where a timeout must keep the last known state)."""
    named = "|".join(s for s in SEVERITY_LEVELS if s != "medium")
    branches = []
    for sev, level in SEVERITY_LEVELS.items():
        if sev == "medium":
            cond = f""""severity" !~ /^({named})$/"""
        else:
            cond = f""""severity" = '{sev}'"""
        branches.append(
            f"""(SELECT "listed" * {level} AS "level" FROM "dnsbl" WHERE {cond} AND {where})"""
        )
    if unknown:
        branches.append(
            f"""(SELECT "unknown" * {UNKNOWN_LEVEL} AS "level" FROM "dnsbl"
            WHERE "unknown" = 1 AND {where})"""
        )
    return ", ".join(branches)


_PAIR = """GROUP BY "target", "zone", "pool", "customer" """


def listings_query(where: str) -> str:
    """(target, zone) pairs listed now (last known answer within ``$listing_window``), with the
    severity level of that answer and the listing's age in seconds, one row each.

    Age: from the last not-listed -> listed change in the time range (or, when the pair was
    listed for the whole range, its first answer in the range) to the last sweep. InfluxDB
    takes a union's field list from its first source, so every source names both fields.
    """
    g = _PAIR
    since = f"""SELECT "d" AS "x" FROM (SELECT last("d") AS "d" FROM
        (SELECT difference("listed") AS "d" FROM "dnsbl" WHERE {where} AND $timeFilter {g}),
        (SELECT first("listed") AS "d" FROM "dnsbl" WHERE {where} AND $timeFilter {g})
        WHERE "d" <> 0 {g}) WHERE "d" > 0 {g}"""
    latest = f"""SELECT last("listed") AS "x" FROM "dnsbl"
        WHERE {where} AND time > now() - $listing_window {g}"""
    age = f"""SELECT elapsed("x", 1s) AS "age" FROM ({since}), ({latest}) {g}"""
    level = f"""SELECT last("level") AS "level"
        FROM {severity_levels(where + " AND time > now() - $listing_window")} {g}"""
    final = f"""SELECT max("age") AS "age", max("level") AS "level"
        FROM (SELECT "age", "age" * 0 AS "level" FROM ({age})), ({level}) {g}"""
    return f"""SELECT "target", "zone", "level" AS "severity", "age", "pool", "customer",
        "zone" AS "delist", "zone" AS "delist_url" FROM ({final}) WHERE "level" > 0"""


def rate_table_query(
    where: str, key: str, by: str = "complaint_rate", limit: int | None = 10
) -> str:
    """Per ``key`` (``sending_ip`` or ``pool``): messages sent, complaints, hard bounces and
    both rates in percent over the time range, with pool and customer, for rows that sent at
    least :data:`MIN_VOLUME` messages; with ``limit``, only the ``limit`` highest ``by``.

    ``100.0 *`` first: inside a subquery InfluxDB 1.x types sum(int) / sum(int) as an
    integer (every rate would read 0)."""
    inner = f"""SELECT sum("sent") AS "sent", sum("complaint") AS "complaints",
        100.0 * sum("complaint") / sum("sent") AS "complaint_rate",
        sum("hard_bounce") AS "hard_bounces",
        100.0 * sum("hard_bounce") / sum("sent") AS "hard_bounce_rate"
        FROM "feedback" WHERE {where} AND $timeFilter GROUP BY "{key}", "pool", "customer" """
    fields = ["sent", "complaints", "complaint_rate", "hard_bounces", "hard_bounce_rate"]
    tags = list(dict.fromkeys([key, "pool", "customer"]))
    first = f'top("{by}", {limit}) AS "{by}"' if limit else f'"{by}"'
    cols = ", ".join([first, *(f'"{c}"' for c in fields + tags if c != by)])
    return f"""SELECT {cols} FROM ({inner}) WHERE "sent" >= {MIN_VOLUME}"""


# --- panels --------------------------------------------------------------------------------
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
    overrides: list[dict[str, Any]] | None = None,
    links: list[dict[str, Any]] | None = None,
    transformations: list[dict[str, Any]] | None = None,
    sort_by: tuple[str, bool] | None = None,
    color: str | None = None,
    soft_max: float | None = None,
    by_threshold: bool = False,
) -> dict[str, Any]:
    """One panel; ``grid`` is (x, y, w, h) on Grafana's 24-column grid.

    ``color``: one fixed colour for every series / value (overrides may still set others);
    else stat and bar gauge colour by ``steps``, the rest by Grafana's classic palette (which
    tells series apart and means nothing). ``by_threshold``: a time series' lines take the
    colour of the threshold step each value is in (rates: green, then the severity of the
    case the rule opens). ``soft_max`` keeps the top threshold line on the axis when every
    value is far below it.
    """
    x, y, w, h = grid
    threshold_steps = steps or [(OK_COLOR, None)]
    if color:
        color_cfg: dict[str, Any] = {"mode": "fixed", "fixedColor": color}
    elif by_threshold or kind in ("stat", "bargauge", "state-timeline"):
        color_cfg = {"mode": "thresholds"}
    else:
        color_cfg = {"mode": "palette-classic"}
    defaults: dict[str, Any] = {
        "unit": unit,
        "min": 0,
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": c, "value": v} for c, v in threshold_steps],
        },
        "mappings": mappings or [],
        "color": color_cfg,
        "links": links or [],
    }
    options: dict[str, Any] = {}
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "bars" if bars else "line",
            "lineWidth": 1,
            "fillOpacity": 60 if bars else 10,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "spanNulls": False,
            "thresholdsStyle": {"mode": "dashed" if steps else "off"},
            "gradientMode": "scheme" if by_threshold else "none",
        }
        if soft_max is not None:
            defaults["custom"]["axisSoftMax"] = soft_max
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
        defaults["custom"] = {"fillOpacity": 80, "lineWidth": 0, "spanNulls": False}
        options = {
            "showValue": "never",
            "mergeValues": True,
            "rowHeight": 0.8,
            "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
        }
    elif kind == "stat":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "none" if color == NEUTRAL_COLOR else "background",
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
        defaults["custom"] = {"align": "auto", "cellOptions": {"type": "auto"}}
        options = {"showHeader": True, "footer": {"show": False}}
        if sort_by:
            options["sortBy"] = [{"displayName": sort_by[0], "desc": sort_by[1]}]
    out: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options,
        "targets": targets,
    }
    if transformations:
        out["transformations"] = transformations
    if interval:
        out["interval"] = interval
    return out


# --- variables -----------------------------------------------------------------------------
def query_variable(
    name: str, label: str, query: str, multi: bool = False, hidden: bool = False
) -> dict[str, Any]:
    """A variable from a ``SHOW TAG VALUES`` query. ``multi`` adds "All" (regex ``.*``, so
    queries match it with ``=~ /^$name$/``); ``hidden`` ones are derived from another
    variable (the pool and customer of the IP shown) and feed links."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": " ".join(query.split()),
        "definition": " ".join(query.split()),
        "refresh": 2,  # on time-range change: new IPs and domains show up
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {},
        "options": [],
        "hide": 2 if hidden else 0,
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
    links: list[dict[str, Any]] | None = None,
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
            *(links or []),
            {
                "type": "dashboards",
                "tags": ["repmon"],
                "asDropdown": True,
                "title": "repmon",
                "keepTime": True,
                "includeVars": True,
            },
        ],
        "panels": panels,
    }


def render_json(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2) + "\n"

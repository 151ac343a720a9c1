"""Renders every dashboard's panels to PNG (``grafana/preview/``), laid out like Grafana's grid.

Starts an InfluxDB 1.x on a loopback port (as the tests do), loads the
synthetic run of ``sample_run.py``, runs each panel's InfluxQL and draws the
answer with matplotlib the way Grafana would show it: series colours from the
overrides (severity palette) or Grafana's classic palette, value mappings with
their colours, dashed threshold lines, tables with their column order, names,
units, coloured cells and links (blue, with the link's target written out for
the delist column). A preview without a Grafana: no Grafana is packaged for
Debian. Run from the repository root: ``python grafana/render.py [name ...]``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import sample_run  # noqa: E402

from tests.tsdb_servers import influxdb1  # noqa: E402

OUT = HERE / "preview"
VALUES = {
    "ip": "198.51.100.21",
    "domain": r"(acme\.example|globex\.example|initech\.example)",
    "pool": ".*",
    "customer": ".*",
    "listing_window": "75m",
    "provider_window": "7h",
}
#: the single-value variables of the one-pool / one-customer / one-IP dashboards
BOARD_VALUES = {
    "repmon-pool": {"pool": "bulk-b", "customer": "globex"},
    "repmon-customer": {"customer": "globex"},
    "repmon-sending-ip": {"pool": "bulk-b", "customer": "globex"},
}
#: Grafana's named colours used here, and its classic series palette (palette-classic)
NAMED = {"green": "#56a64b", "text": "#333333", "transparent": "none"}
CLASSIC = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9",
           "#705da0", "#508642", "#cca300"]  # fmt: skip
LINK = "#1f60c4"
ROW_INCHES = 0.36


def color(name: str) -> str:
    return NAMED.get(name, name)


Series = tuple[str, list[dt.datetime], list[float | None], list[list[Any]]]


def series_of(result: dict[str, Any], alias: str) -> list[Series]:
    """(label, times, values, raw rows) per series and value column, labelled like Grafana."""
    out: list[Series] = []
    for s in result.get("series", []):
        tags = s.get("tags", {})
        for i, col in enumerate(s["columns"][1:], start=1):
            label = alias or f"{s['name']}.{col}"
            for k, v in tags.items():
                label = label.replace(f"$tag_{k}", v)
            label = label.replace("$col", col)
            for k, v in VALUES.items():
                label = label.replace(f"${k}", v)
            times = [dt.datetime.fromtimestamp(r[0] / 1000, dt.UTC) for r in s["values"]]
            out.append((label, times, [r[i] for r in s["values"]], s["values"]))
    return out


def matches(matcher: dict[str, Any], name: str) -> bool:
    if matcher["id"] == "byName":
        return bool(matcher["options"] == name)
    if matcher["id"] == "byRegexp":
        pattern = matcher["options"]
        if pattern.startswith("/") and pattern.rfind("/") > 0:
            pattern = pattern[1 : pattern.rfind("/")]
        return re.search(pattern, name) is not None
    return False


def field_config(panel: dict[str, Any], name: str) -> dict[str, Any]:
    """The panel's defaults with the overrides that match field ``name`` applied."""
    cfg = {k: v for k, v in panel["fieldConfig"]["defaults"].items() if k != "custom"}
    cfg["custom"] = dict(panel["fieldConfig"]["defaults"].get("custom", {}))
    for o in panel["fieldConfig"]["overrides"]:
        if matches(o["matcher"], name):
            for prop in o["properties"]:
                if prop["id"].startswith("custom."):
                    cfg["custom"][prop["id"].removeprefix("custom.")] = prop["value"]
                else:
                    cfg[prop["id"]] = prop["value"]
    return cfg


def series_color(cfg: dict[str, Any], index: int, value: float | None = None) -> str:
    mode = cfg["color"]
    if mode["mode"] == "fixed":
        return color(mode["fixedColor"])
    if mode["mode"] == "thresholds" and value is not None:
        return threshold_color(cfg, value)
    return CLASSIC[index % len(CLASSIC)]


def threshold_color(cfg: dict[str, Any], value: float) -> str:
    out = cfg["thresholds"]["steps"][0]["color"]
    for step in cfg["thresholds"]["steps"][1:]:
        if value >= step["value"]:
            out = step["color"]
    return color(out)


def mapped(cfg: dict[str, Any], value: Any) -> tuple[str, str | None] | None:
    """(text, colour) of the value mapping that matches ``value``, as Grafana applies them."""
    for m in cfg.get("mappings", []):
        if m["type"] == "value":
            key = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
            hit = m["options"].get(key)
            if hit:
                return hit.get("text", key), hit.get("color")
        elif m["type"] == "regex" and re.fullmatch(m["options"]["pattern"], str(value)):
            result = m["options"]["result"]
            return result.get("text", str(value)), result.get("color")
    return None


def formatted(cfg: dict[str, Any], value: Any) -> tuple[str, str | None]:
    """(display text, colour or None) of one value: mapping first, then the unit."""
    if value is None:
        return "", None
    hit = mapped(cfg, value)
    if hit:
        return hit[0], color(hit[1]) if hit[1] else None
    unit = cfg.get("unit", "short")
    if isinstance(value, str):
        return value, None
    col = threshold_color(cfg, value) if cfg["color"]["mode"] == "thresholds" else None
    if unit == "percent":
        return f"{value:.{cfg.get('decimals', 2)}f} %", col
    if unit == "dtdurations":
        days, rest = divmod(int(value), 86400)
        hours, rest = divmod(rest, 3600)
        parts = [f"{days} day{'s' * (days != 1)}"] if days else []
        parts += [f"{hours} hour{'s' * (hours != 1)}"] if hours or not days else []
        return ", ".join(parts), col
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}", col


def draw(ax: Any, panel: dict[str, Any], results: list[tuple[dict[str, Any], str]]) -> None:
    kind = panel["type"]
    defaults = panel["fieldConfig"]["defaults"]
    unit = {"percent": "%", "s": "s"}.get(defaults["unit"], "")
    series = [s for result, alias in results for s in series_of(result, alias)]
    title = panel["title"]
    for k, v in VALUES.items():
        title = title.replace(f"${k}", v)
    ax.set_title(title, fontsize=9, loc="left", fontweight="bold")
    links = [lk["title"] for lk in defaults.get("links", [])]
    if links:
        ax.annotate("click a series: " + "; ".join(links), (0, 1), xycoords="axes fraction",
                    xytext=(0, 2), textcoords="offset points", fontsize=6, color=LINK)  # fmt: skip
    if kind == "timeseries":
        stacked = defaults["custom"]["stacking"]["mode"] == "normal"
        bottom: dict[dt.datetime, float] = {}
        top = 0.0
        daily = defaults["custom"]["drawStyle"] == "bars" and any(
            "time(1d)" in t["query"] for t in panel["targets"]
        )
        for i, (label, times, values, _) in enumerate(series):
            c = series_color(field_config(panel, label), i)
            ys = [v or 0.0 for v in values]
            if daily:  # one bar a day (a single day is no area between two points)
                base = [bottom.get(t, 0.0) if stacked else 0.0 for t in times]
                ax.bar(times, ys, width=0.8, bottom=base, label=label, color=c, alpha=0.8)
                for t, b, y in zip(times, base, ys, strict=True):
                    bottom[t] = b + y
                top = max([top, *bottom.values()])
            elif stacked:
                base = [bottom.get(t, 0.0) for t in times]
                ax.fill_between(times, base, [b + y for b, y in zip(base, ys, strict=True)],
                                step="mid", alpha=0.8, label=label, color=c)  # fmt: skip
                for t, b, y in zip(times, base, ys, strict=True):
                    bottom[t] = b + y
                top = max([top, *bottom.values()])
            elif defaults["custom"].get("gradientMode") == "scheme":
                draw_by_threshold(ax, field_config(panel, label), times, values, label, i)
                top = max([top, *(v for v in values if v is not None)])
            else:
                ax.plot(times, [v if v is not None else float("nan") for v in values],
                        label=label, color=c, lw=1.2)  # fmt: skip
                top = max([top, *(v for v in values if v is not None)])
        if defaults["custom"]["thresholdsStyle"]["mode"] != "off":
            for step in defaults["thresholds"]["steps"]:
                if step["value"] is not None and color(step["color"]) != "none":
                    ax.axhline(step["value"], color=color(step["color"]), ls="--", lw=1.2)
        soft_max = defaults["custom"].get("axisSoftMax")
        ax.set_ylim(0, max(top, soft_max or 0) * 1.05 or 1)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %H:%M"))
        ax.tick_params(labelsize=7)
        ax.set_ylabel(unit, fontsize=7)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    elif kind == "state-timeline":
        for row, (label, times, values, _raw) in enumerate(series):
            cfg = field_config(panel, label)
            for i, (t, state) in enumerate(zip(times, values, strict=True)):
                if state is None:
                    continue
                t_next = times[i + 1] if i + 1 < len(times) else t + dt.timedelta(hours=1)
                c = formatted(cfg, state)[1] or "#cccccc"
                ax.barh(row, mdates.date2num(t_next) - mdates.date2num(t),
                        left=mdates.date2num(t), color=c, height=0.8)  # fmt: skip
        ax.set_yticks(range(len(series)), [s[0] for s in series], fontsize=7)
        ax.invert_yaxis()
        ax.xaxis_date()
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %H:%M"))
        ax.tick_params(axis="x", labelsize=7)
        legend = [
            (o["text"], color(o["color"]))
            for m in defaults["mappings"]
            for o in sorted(m["options"].values(), key=lambda o: o["index"])
        ]
        ax.text(1.0, 1.02, "   ".join(f"■ {t}" for t, _ in legend), ha="right", fontsize=7,
                transform=ax.transAxes, color="#555555")  # fmt: skip
    elif kind == "stat":
        ax.axis("off")
        parts = []
        for label, _, values, _ in series:
            parts.append(f"{label}: {formatted(field_config(panel, label), values[-1])[0]}")
        ax.text(0.5, 0.4, "   ".join(parts) or "—", ha="center", va="center", fontsize=16,
                transform=ax.transAxes)  # fmt: skip
    elif kind == "bargauge":
        labels = [s[0] for s in series]
        values = [s[2][-1] or 0 for s in series]
        colors = [
            series_color(field_config(panel, s[0]), i, s[2][-1]) for i, s in enumerate(series)
        ]
        neutral = [c if c != NAMED["text"] else "#8e8e8e" for c in colors]
        ax.barh(range(len(series)), values, color=neutral)
        ax.set_yticks(range(len(series)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=7)
    elif kind == "table":
        draw_table(ax, panel, results)


def draw_by_threshold(
    ax: Any, cfg: dict[str, Any], times: list[dt.datetime], values: list[float | None],
    label: str, index: int,
) -> None:  # fmt: skip
    """A line whose segments take the colour of the threshold step they are in (Grafana's
    gradient mode "scheme" with colours from thresholds); a marker tells the series apart."""
    marker = "osv^Dp*"[index % 7]
    points = list(zip(times, values, strict=True))
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        if v0 is not None and v1 is not None:
            ax.plot([t0, t1], [v0, v1], color=threshold_color(cfg, max(v0, v1)), lw=1.4)
    known = [(t, v) for t, v in zip(times, values, strict=True) if v is not None]
    ax.plot([t for t, _ in known][::6], [v for _, v in known][::6], ls="none", marker=marker,
            ms=3, color="#555555", label=label)  # fmt: skip


def draw_table(ax: Any, panel: dict[str, Any], results: list[tuple[dict[str, Any], str]]) -> None:
    ax.axis("off")
    result = results[0][0]
    if not result.get("series"):
        ax.text(0.5, 0.5, "No data", ha="center", va="center", transform=ax.transAxes)
        return
    s = result["series"][0]
    columns = ["Time" if c == "time" else c for c in s["columns"]]
    rows = s["values"]
    if any(t["id"] == "merge" for t in panel.get("transformations", [])):
        columns, rows = merge([r for r, _ in results])
    for t in panel.get("transformations", []):
        if t["id"] == "organize":
            keep = [c for c in columns if not t["options"]["excludeByName"].get(c)]
            order = t["options"]["indexByName"]
            keep.sort(key=lambda c: order.get(c, len(order)))
            idx = [columns.index(c) for c in keep]
            columns, rows = keep, [[r[i] for i in idx] for r in rows]
    cfgs = [field_config(panel, c) for c in columns]
    shown = [i for i, cfg in enumerate(cfgs) if not cfg["custom"].get("hidden")]
    names = [cfgs[i].get("displayName", columns[i]) for i in shown]
    sort = panel["options"].get("sortBy")
    if sort and sort[0]["displayName"] in names:
        col = shown[names.index(sort[0]["displayName"])]
        rows = sorted(rows, key=lambda r: (r[col] is None, r[col]), reverse=sort[0]["desc"])
    texts, colours = [], []
    for r in rows:
        line, fill = [], []
        for i in shown:
            text, c = formatted(cfgs[i], r[i])
            links = cfgs[i].get("links") or []
            if links and columns[i] == "delist":
                text = f"{text}  {resolve_link(links[0]['url'], columns, r, cfgs)}"
            line.append(text)
            cell = cfgs[i]["custom"].get("cellOptions", {}).get("type")
            fill.append((c if cell == "color-background" else None, c if cell == "color-text"
                         else (LINK if links else None)))  # fmt: skip
        texts.append(line)
        colours.append(fill)
    table = ax.table(cellText=texts or [[""] * len(names)], colLabels=names, loc="upper center",
                     cellLoc="left", colLoc="left")  # fmt: skip
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.auto_set_column_width(list(range(len(names))))
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#dddddd")
        if row == 0:
            cell.set_text_props(fontweight="bold")
        elif row - 1 < len(colours):
            background, text = colours[row - 1][col]
            if background:
                cell.set_facecolor(background)
            if text:
                cell.get_text().set_color(text)


def merge(results: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Grafana's "merge" transformation: the tables of several queries as one, rows with the
    same values in the fields they share (text fields: IP, pool, customer) joined."""
    frames = []
    for result in results:
        for s in result.get("series", [])[:1]:
            cols = ["Time" if c == "time" else c for c in s["columns"]]
            frames.append([dict(zip(cols, row, strict=True)) for row in s["values"]])
    columns = list(dict.fromkeys(c for frame in frames for row in frame[:1] for c in row))
    shared = [
        c
        for c in columns
        if c != "Time"
        and all(frame and c in frame[0] for frame in frames)
        and all(isinstance(row.get(c), str) for frame in frames for row in frame)
    ]
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for frame in frames:
        for row in frame:
            joined = merged.setdefault(tuple(row[c] for c in shared), {})
            for k, v in row.items():
                if v is not None or k not in joined:
                    joined[k] = v
    return columns, [[row.get(c) for c in columns] for row in merged.values()]


def resolve_link(url: str, columns: list[str], row: list[Any], cfgs: list[dict[str, Any]]) -> str:
    """A data link's URL for one table row: ``${__data.fields.X}`` is field X's display text."""

    def field(m: re.Match[str]) -> str:
        i = columns.index(m.group(1))
        return formatted(cfgs[i], row[i])[0]

    return re.sub(r"\$\{__data\.fields\.(\w+)(?::raw)?\}", field, url)


def render(board: dict[str, Any], server: Any, end: dt.datetime) -> Path:
    # the dashboard's own time range ("now-2d", "now-30d" ...)
    days = re.fullmatch(r"now-(\d+)d", board["time"]["from"])
    start = end - dt.timedelta(days=int(days.group(1)) if days else 2)
    VALUES.update(BOARD_VALUES.get(board["uid"], {}))
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
    fig = plt.figure(figsize=(18, height * ROW_INCHES + 0.5))
    links = "   ".join(lk["title"] for lk in board["links"] if lk["type"] == "link")
    for k, v in VALUES.items():
        links = links.replace(f"${{{k}}}", v)
    fig.suptitle(f"{board['title']}    {links}", x=0.01, ha="left", fontsize=12,
                 fontweight="bold")  # fmt: skip
    top = 1 - 0.5 / (height * ROW_INCHES + 0.5)
    for p in board["panels"]:
        g = p["gridPos"]
        has_legend = p["type"] == "timeseries"
        left = g["x"] / 24 + (0.035 if p["type"] not in ("stat", "table") else 0.005)
        width = g["w"] / 24 - (0.05 + (0.09 if has_legend else 0.0))
        if p["type"] in ("state-timeline", "bargauge"):
            left, width = left + 0.06, width - 0.06
        # margins in inches (a fraction of a tall dashboard would eat a small panel)
        inches = height * ROW_INCHES + 0.5
        bottom = top * (1 - (g["y"] + g["h"]) / height) + 0.5 / inches
        ax = fig.add_axes((left, bottom, width, top * g["h"] / height - 1.1 / inches))
        # a panel's own relative time range (Grafana's "timeFrom"), else the dashboard's
        own = re.fullmatch(r"(\d+)d", p.get("timeFrom", ""))
        since = end - dt.timedelta(days=int(own.group(1))) if own else start
        results = [
            (server.query(sample_run.expand(t["query"], VALUES, since, end)), t["alias"])
            for t in p["targets"]
        ]
        draw(ax, p, results)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{board['uid'].removeprefix('repmon-')}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    for k in BOARD_VALUES.get(board["uid"], {}):
        VALUES[k] = ".*"
    return path


def main() -> None:
    end = dt.datetime.now(dt.UTC)
    only = set(sys.argv[1:])
    with influxdb1("repmon") as server:
        server.write(sample_run.lines(end))
        for f in sorted((HERE / "dashboards").glob("*.json")):
            if not only or f.stem in only:
                print(render(json.loads(f.read_text()), server, end))


if __name__ == "__main__":
    main()

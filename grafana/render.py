"""Renders every dashboard's panels to PNG (``grafana/preview/``), laid out like Grafana's grid.

Starts an InfluxDB 1.x on a loopback port (as the tests do), loads the
synthetic run of ``sample_run.py``, runs each panel's InfluxQL and draws the
answer with matplotlib: a preview of what the dashboards show, without a
Grafana. Run from the repository root: ``python grafana/render.py``.
"""

from __future__ import annotations

import datetime as dt
import json
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
    "listing_window": "75m",
}
COLORS = {"green": "#56a64b", "orange": "#ff9830", "red": "#e02f44", "yellow": "#fade2a"}
ROW_INCHES = 0.36


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
            times = [dt.datetime.fromtimestamp(r[0] / 1000, dt.UTC) for r in s["values"]]
            out.append((label, times, [r[i] for r in s["values"]], s["values"]))
    return out


def draw(ax: Any, panel: dict[str, Any], results: list[tuple[dict[str, Any], str]]) -> None:
    kind = panel["type"]
    defaults = panel["fieldConfig"]["defaults"]
    unit = {"percent": "%", "s": "s"}.get(defaults["unit"], "")
    series = [s for result, alias in results for s in series_of(result, alias)]
    ax.set_title(panel["title"], fontsize=9, loc="left", fontweight="bold")
    if kind == "timeseries":
        stacked = defaults["custom"]["stacking"]["mode"] == "normal"
        bottom: dict[dt.datetime, float] = {}
        for label, times, values, _ in series:
            ys = [v or 0.0 for v in values]
            if stacked:
                base = [bottom.get(t, 0.0) for t in times]
                ax.fill_between(times, base, [b + y for b, y in zip(base, ys, strict=True)],
                                step="mid", alpha=0.7, label=label)  # fmt: skip
                for t, b, y in zip(times, base, ys, strict=True):
                    bottom[t] = b + y
            else:
                ax.plot(times, [v if v is not None else float("nan") for v in values], label=label)
        for step in defaults["thresholds"]["steps"]:
            if step["value"] is not None and defaults["custom"]["thresholdsStyle"]["mode"] != "off":
                ax.axhline(step["value"], color=COLORS[step["color"]], ls="--", lw=1)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %H:%M"))
        ax.tick_params(labelsize=7)
        ax.set_ylabel(unit, fontsize=7)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    elif kind == "state-timeline":
        mapping = defaults["mappings"][0]["options"]
        for row, (_, times, values, _raw) in enumerate(series):
            for i, (t, v) in enumerate(zip(times, values, strict=True)):
                if v is None:
                    continue
                t_next = times[i + 1] if i + 1 < len(times) else t + dt.timedelta(hours=1)
                color = COLORS[mapping.get(str(int(v)), {"color": "yellow"})["color"]]
                ax.barh(row, mdates.date2num(t_next) - mdates.date2num(t),
                        left=mdates.date2num(t), color=color, height=0.8)  # fmt: skip
        ax.set_yticks(range(len(series)), [s[0] for s in series], fontsize=7)
        ax.xaxis_date()
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %H:%M"))
        ax.tick_params(axis="x", labelsize=7)
    elif kind == "stat":
        ax.axis("off")
        text = "   ".join(f"{label}: {values[-1]:g}" for label, _, values, _ in series) or "—"
        ax.text(0.5, 0.4, text, ha="center", va="center", fontsize=16, transform=ax.transAxes)
    elif kind == "bargauge":
        labels = [s[0] for s in series]
        values = [s[2][-1] or 0 for s in series]
        ax.barh(range(len(series)), values, color=COLORS["orange"])
        ax.set_yticks(range(len(series)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=7)
    elif kind == "table":
        ax.axis("off")
        rows = [[str(c) for c in r[1:]] for _, _, _, raw in series[:1] for r in raw]
        columns = results[0][0]["series"][0]["columns"][1:] if series else []
        if rows:
            table = ax.table(cellText=rows, colLabels=columns, loc="upper center")
            table.set_fontsize(7)


def render(board: dict[str, Any], server: Any, end: dt.datetime) -> Path:
    start = end - dt.timedelta(days=2)
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
    fig = plt.figure(figsize=(18, height * ROW_INCHES + 0.5))
    fig.suptitle(board["title"], x=0.01, ha="left", fontsize=12, fontweight="bold")
    top = 1 - 0.5 / (height * ROW_INCHES + 0.5)
    for p in board["panels"]:
        g = p["gridPos"]
        has_legend = p["type"] == "timeseries"
        left = g["x"] / 24 + (0.035 if p["type"] != "stat" else 0.005)
        width = g["w"] / 24 - (0.05 + (0.09 if has_legend else 0.0))
        if p["type"] in ("state-timeline", "bargauge"):
            left, width = left + 0.06, width - 0.06
        bottom = top * (1 - (g["y"] + g["h"]) / height) + 0.035
        ax = fig.add_axes((left, bottom, width, top * g["h"] / height - 0.075))
        results = [
            (server.query(sample_run.expand(t["query"], VALUES, start, end)), t["alias"])
            for t in p["targets"]
        ]
        draw(ax, p, results)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{board['uid'].removeprefix('repmon-')}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main() -> None:
    end = dt.datetime.now(dt.UTC)
    with influxdb1("repmon") as server:
        server.write(sample_run.lines(end))
        for f in sorted((HERE / "dashboards").glob("*.json")):
            print(render(json.loads(f.read_text()), server, end))


if __name__ == "__main__":
    main()

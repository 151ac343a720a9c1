"""``repmon status``: what is wrong now (listings and hygiene problems), since when, how to fix."""

from __future__ import annotations

import argparse
import datetime as dt

from collectors.registry import CHECKS
from monitor.cli.output import address_key, print_json, severity_rank, table
from monitor.config import load_config
from monitor.store import Store
from monitor.store.checks import current_problems, last_sweep
from monitor.store.jobs import job_table
from monitor.views import problem_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "status",
        parents=[common],
        help="show current listings and problems, the last sweeps, and the jobs of repmon run",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--check",
        action="append",
        default=[],
        choices=sorted(CHECKS),
        metavar="CHECK",
        help=f"only this check (repeatable): {', '.join(sorted(CHECKS))}",
    )
    p.set_defaults(func=run)


def _ago(t: dt.datetime, now: dt.datetime) -> str:
    s = int((now - t).total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit} ago"
    return f"{s}s ago"


def last_sweeps(store: Store) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for name in ("dnsbl", "hygiene"):
        row = last_sweep(store, name)
        if row is not None:
            out.append(
                {
                    "sweep": name,
                    "started_at": row.started_at.isoformat(),
                    "duration": round(row.duration, 3),
                    "targets": row.targets,
                    "ok": row.ok,
                    "problem": row.problem,
                    "unknown": row.unknown,
                    "unknown_by_source": row.unknown_by_source,
                }
            )
    return out


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = Store.open(config.store.url)
    try:
        # worst first, then by address in numeric order (not .10 before .8)
        problems = sorted(
            current_problems(store, args.check or None),
            key=lambda p: (severity_rank(p.severity), address_key(p.target), p.check, p.source),
        )
        sweeps = last_sweeps(store)
        jobs = job_table(store)
    finally:
        store.close()
    now = dt.datetime.now(dt.UTC)
    if args.json:
        print_json(
            {
                "problems": [problem_json(p) for p in problems],
                "sweeps": sweeps,
                "jobs": jobs,
            }
        )
        return 0
    if not problems:
        print("No problems recorded.")
    else:
        rows = [
            (
                p.target,
                p.check,
                p.source or "-",
                p.severity or "-",
                _ago(p.since, now),
                p.pool or "-",
                " | ".join(x for x in (p.detail, p.data.get("delist") or "") if x),
            )
            for p in problems
        ]
        table(rows, ("TARGET", "CHECK", "SOURCE", "SEVERITY", "SINCE", "POOL", "DETAIL"))
    for s in sweeps:
        print(
            f"last {s['sweep']} sweep: {s['started_at']} ({s['targets']} targets, "
            f"{s['problem']} problem, {s['unknown']} unknown, {s['duration']}s)"
        )
    if jobs:
        print()
        table(
            [
                (
                    j["job"],
                    j["instance"],
                    j["last_status"] or "-",
                    _when(j["last_end"] or j["last_start"], now),
                    _when(j["next_run"], now),
                    j["last_error"] or "",
                )
                for j in jobs
            ],
            ("JOB", "INSTANCE", "LAST", "LAST RUN", "NEXT RUN", "ERROR"),
        )
    return 0


def _when(t: dt.datetime | None, now: dt.datetime) -> str:
    if t is None:
        return "-"
    if t > now:
        s = int((t - now).total_seconds())
        return f"in {s // 60}m{s % 60:02d}s" if s >= 60 else f"in {s}s"
    return _ago(t, now)

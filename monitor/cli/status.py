"""``repmon status``: what is wrong now (listings and hygiene problems), since when, how to fix."""

from __future__ import annotations

import argparse
import datetime as dt

from collectors.registry import CHECKS
from monitor.cli.output import address_key, print_json, severity_rank, table
from monitor.config import load_config
from monitor.store import Store
from monitor.store.checks import Coverage, current_problems, last_coverage, last_sweep
from monitor.store.jobs import job_table
from monitor.store.providers import ProviderFetch, last_fetches
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


def coverage_json(c: Coverage) -> dict[str, object]:
    """What a bulk sweep covered on one zone: a pair it covered without a problem or an
    unknown recorded was answered ok."""
    return {
        "source": c.source,
        "scope": c.scope,
        "pools": c.pools,
        "complete": c.complete,
        "covered": c.covered,
        "listed": c.listed,
        "unknown": c.unknown,
        "selftest_ok": c.selftest_ok,
        "failed_chunks": c.failed_chunks,
        "error": c.error,
    }


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
                    "coverage": [coverage_json(c) for c in last_coverage(store, name)],
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
        providers = last_fetches(store)
    finally:
        store.close()
    now = dt.datetime.now(dt.UTC)
    if args.json:
        print_json(
            {
                "problems": [problem_json(p) for p in problems],
                "sweeps": sweeps,
                "jobs": jobs,
                "providers": [provider_json(f) for f in providers],
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
        for c in s["coverage"]:  # type: ignore[attr-defined]
            if c["unknown"] or not c["selftest_ok"]:  # the zones that did not answer for all
                why = "" if c["selftest_ok"] else f"; not trusted in {c['failed_chunks']}"
                why += "" if c["selftest_ok"] else f" chunk(s): {c['error']}"
                print(f"  {c['source']}: {c['unknown']:,} of {c['covered']:,} unknown{why}")
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
    print_providers(providers, now)
    return 0


def _when(t: dt.datetime | None, now: dt.datetime) -> str:
    if t is None:
        return "-"
    if t > now:
        s = int((t - now).total_seconds())
        return f"in {s // 60}m{s % 60:02d}s" if s >= 60 else f"in {s}s"
    return _ago(t, now)


# --- the mailbox providers' fetches (SNDS, Postmaster Tools) ---------------------------------


def provider_json(f: ProviderFetch) -> dict[str, object]:
    """A provider collector's last fetch: when, what came out, what went wrong."""
    return {
        "provider": f.collector,
        "fetched_at": f.fetched_at.isoformat(),
        "last_success_at": f.last_success_at.isoformat() if f.last_success_at else None,
        "rows": f.rows,
        "ok": f.ok,
        "problem": f.problem,
        "unknown": f.unknown,
        "errors": f.errors,
        "detail": f.detail,
        "fetches": f.fetches,
        "failures": f.failures,
    }


def _provider_data(f: ProviderFetch) -> str:
    d = f.detail
    if f.collector == "snds":
        parts = [f"day {d['day']}" if d.get("day") else "no recent day"]
        if d.get("missing_days"):
            parts.append("missing " + ", ".join(d["missing_days"]))
        if d.get("blocked_ranges"):
            parts.append(f"{d['blocked_ranges']} blocked ranges")
        return ", ".join(parts)
    judged = d.get("judged") or {}
    parts = [f"{len(judged)} of {len(d.get('registered') or [])} domains judged"]
    if judged:
        parts.append(f"newest {max(judged.values())}")
    if d.get("missing"):
        parts.append(f"{len(d['missing'])} with missing days")
    return ", ".join(parts)


def print_providers(fetches: list[ProviderFetch], now: dt.datetime) -> None:
    """The last fetch of each mailbox provider, and its errors ("renew the SNDS key" ...)."""
    if not fetches:
        return
    print()
    table(
        [
            (
                f.collector,
                _ago(f.fetched_at, now),
                _when(f.last_success_at, now) if f.last_success_at else "never",
                str(f.rows),
                f"{f.ok}/{f.problem}/{f.unknown}",
                _provider_data(f),
                " | ".join(f.errors) or "-",
            )
            for f in fetches
        ],
        ("PROVIDER", "LAST FETCH", "LAST OK", "ROWS", "OK/PROBLEM/UNKNOWN", "DATA", "ERRORS"),
    )

"""``repmon reports list|show|reclassify|export``: the abuse reports and their review queue.

``list`` shows reports newest first (``--review``: the review queue, oldest first);
``show`` one report with its attribution; ``reclassify`` records an analyst's category (who,
when), moves the report's counts, notes it on the cases concerned and runs the rules so that
the cases follow; ``export`` writes the reclassified reports as labelled JSON lines. Exit
status: 0 done, 1 no such report, 2 usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
from typing import Any

from checks.errors import UsageError
from collectors.abuse.model import CATEGORIES
from monitor.abuse_intake import AbuseSeries, ReportNotFound, labelled, reclassify_report
from monitor.cli.output import print_json, table
from monitor.config import load_config, parse_duration
from monitor.store import Store, utcnow
from monitor.store.abuse import ReportRow, count_reports, find_reports, report_with_addresses
from monitor.timeseries import open_writer


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "reports",
        parents=[common],
        help="abuse reports: list, show, reclassify, export; the review queue",
        description="Exit status: 0 done, 1 no such report, 2 usage.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    ls = verbs.add_parser("list", parents=[common], help="reports, newest first")
    ls.add_argument("--review", action="store_true", help="the review queue, oldest first")
    ls.add_argument("--category", choices=CATEGORIES)
    ls.add_argument("--customer", help="reports naming this customer's addresses")
    ls.add_argument("--reporter", help="reports of this reporter (as shown)")
    ls.add_argument("--since", metavar="DURATION", help="received within, e.g. 7d")
    ls.add_argument("--json", action="store_true", help="print a JSON array")
    shown = ls.add_mutually_exclusive_group()
    shown.add_argument("--limit", type=int, default=50, help="reports shown (default 50)")
    shown.add_argument("--all", action="store_true", help="every matching report")
    ls.set_defaults(func=_list)
    show = verbs.add_parser("show", parents=[common], help="one report with its attribution")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)
    rc = verbs.add_parser(
        "reclassify", parents=[common], help="set a report's category (an analyst's decision)"
    )
    rc.add_argument("id", type=int)
    rc.add_argument("category", choices=CATEGORIES)
    rc.add_argument("--by", help="who decides (default: the login name)")
    rc.add_argument(
        "--no-evaluate", action="store_true", help="do not run the rules now (the daemon will)"
    )
    rc.add_argument("--json", action="store_true")
    rc.set_defaults(func=_reclassify)
    ex = verbs.add_parser(
        "export", parents=[common], help="the reclassified reports as labelled JSON lines"
    )
    ex.add_argument("--since", metavar="DURATION", help="reclassified within, e.g. 30d")
    ex.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    ex.set_defaults(func=_export)


def _since(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return utcnow() - dt.timedelta(seconds=parse_duration(text))
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1 and not args.all:
        raise UsageError("--limit: expected 1 or more (or --all)")
    since = _since(args.since)
    store = Store.open(load_config(args.config).store.url)
    filters: dict[str, Any] = {
        "review": args.review,
        "category": args.category,
        "customer": args.customer,
        "reporter": args.reporter,
        "since": since,
    }
    try:
        found = find_reports(
            store, **filters, limit=None if args.all else args.limit, oldest_first=args.review
        )
        total = count_reports(store, **filters)
    finally:
        store.close()
    if args.json:
        print_json([r.to_json() for r in found])
        return 0
    rows = [
        (
            str(r.id),
            r.received_at.strftime("%Y-%m-%d %H:%M"),
            r.category + ("*" if r.reclassified_at else ""),
            f"{r.confidence:.2f}",
            r.severity,
            r.reporter or "-",
            ",".join(r.customers) or "-",
            str(r.ips),
            str(r.count),
            (r.subject or r.reason)[:200],
        )
        for r in found
    ]
    table(
        rows,
        ("ID", "RECEIVED", "CATEGORY", "CONF", "SEVERITY", "REPORTER", "CUSTOMERS", "IPS",
         "COUNT", "SUBJECT"),
    )  # fmt: skip
    what = "report" + ("s" if total != 1 else "") + (" waiting for review" if args.review else "")
    marked = "; * reclassified by an analyst" if any(r.reclassified_at for r in found) else ""
    if total > len(found):
        print(f"{len(found)} of {total} {what} shown (--limit N or --all for more){marked}")
    else:
        print(f"{total} {what}{marked}")
    return 0


def _print_report(r: ReportRow) -> None:
    print(f"report {r.id}  [{r.severity}]  {r.category}  ({r.kind}, {r.format})")
    if r.reclassified_at:
        print(
            f"  reclassified from {r.original_category} by {r.reclassified_by} "
            f"at {r.reclassified_at.isoformat()}"
        )
    print(f"  confidence {r.confidence:.2f}: {r.reason}")
    if r.in_review:
        print("  WAITING FOR REVIEW: repmon reports reclassify ID CATEGORY")
    elif r.needs_review and not r.reclassified_at:
        print("  needs review, but names nothing of ours: not in the queue")
    if r.muted:
        print("  reporter muted ([abuse] mute_reporters): no case")
    print(f"  reporter  {r.reporter or '-'}")
    print(f"  subject   {r.subject or '-'}")
    when = r.reported_at.isoformat() if r.reported_at else "-"
    print(f"  reported  {when}  received {r.received_at.isoformat()}")
    print(
        f"  named     {r.ips} addresses ({r.ours} of ours, {r.not_ours} not ours"
        + (f", {r.ignored} own networks" if r.ignored else "")
        + f"), {r.url_count} URLs, {r.count} incidents"
        + (" (truncated)" if r.truncated else "")
    )
    for x in r.addresses:
        whose = f"customer {x.customer}" if x.ours else "not ours"
        pools = f" pools {','.join(x.pools)}" if x.pools else ""
        sample = " ".join(x.sample[:10] + x.sample_urls[:5])
        print(f"    {whose}: {x.addresses} addresses, {x.urls} URLs{pools}  {sample}")
    if r.urls:
        print(f"  urls      {' '.join(r.urls[:10])}")
    if r.excerpt:
        print("  excerpt")
        for line in r.excerpt.splitlines()[:30]:
            print(f"    {line}")
    print(f"  message   {r.message_hash} #{r.report_index}")


def _show(args: argparse.Namespace) -> int:
    store = Store.open(load_config(args.config).store.url)
    try:
        report = report_with_addresses(store, args.id)
    finally:
        store.close()
    if report is None:
        print(f"repmon: no abuse report {args.id}", file=sys.stderr)
        return 1
    if args.json:
        print_json(report.to_json())
    else:
        _print_report(report)
    return 0


def _actor(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _reclassify(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = Store.open(config.store.url)
    try:
        done = reclassify_report(
            store,
            config,
            args.id,
            args.category,
            _actor(args.by),
            run_rules=not args.no_evaluate,
        )
        if config.influxdb is not None:
            writer = open_writer(config.influxdb, name="reports")
            try:
                AbuseSeries(store, writer, lookback=dt.timedelta(minutes=10)).export()
            finally:
                writer.close()
    except ReportNotFound as exc:
        print(f"repmon: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.json:
        print_json(done.to_json())
        return 0
    r = done.report
    print(f"report {r.id}: {done.previous} -> {r.category} by {r.reclassified_by}")
    if done.noted_cases:
        print(f"noted on case(s) {', '.join(str(c) for c in done.noted_cases)}")
    if done.evaluation is not None:
        print("rules: " + ", ".join(f"{k} {v}" for k, v in done.evaluation.items()))
    return 0


def _export(args: argparse.Namespace) -> int:
    since = _since(args.since)
    store = Store.open(load_config(args.config).store.url)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    n = 0
    try:
        for item in labelled(store, since):
            out.write(json.dumps(item, ensure_ascii=False, default=str) + "\n")
            n += 1
    finally:
        store.close()
        if out is not sys.stdout:
            out.close()
    if args.output:
        print(f"{n} labelled reports written to {args.output}", file=sys.stderr)
    return 0

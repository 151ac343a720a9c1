"""``repmon feedback``: volume, bounces, complaints and their rates per IP, pool or customer."""

from __future__ import annotations

import argparse
import datetime as dt

from checks.errors import UsageError
from monitor.cli.output import add_format_option, print_csv, print_json, table
from monitor.config import load_config, parse_duration
from monitor.inventory import Inventory
from monitor.reputation import GROUPS, Reputation, reputation
from monitor.store import Store

COLUMNS = (
    "subject",
    "pool",
    "customer",
    "volume",
    "complaints",
    "unauthenticated_reports",
    "complaint_rate",
    "complaint_level",
    "hard",
    "soft",
    "block",
    "hard_bounce_rate",
    "bounce_level",
    "top_receiving_domains",
)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "feedback",
        parents=[common],
        help="bounces, complaints and their rates per sending IP, pool or customer",
        description="What the mailbox providers told us, per subject, worst first: volume "
        "(the rate rules' denominator), hard/soft/block bounces, complaints, the rates "
        "against the rules' thresholds, and the receiving domains with most feedback.",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--ip", help="one sending IP")
    group.add_argument("--pool", help="one pool (grouped by pool)")
    group.add_argument("--customer", help="one customer (grouped by customer)")
    p.add_argument("--by", choices=GROUPS, help="group by (default: ip, or what is filtered)")
    p.add_argument("--since", default=None, help="window, e.g. 24h, 7d (default: the rule's)")
    p.add_argument("--limit", type=int, default=50, help="rows shown (default 50; 0 = all)")
    add_format_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    by = args.by or ("pool" if args.pool else "customer" if args.customer else "ip")
    subject = args.ip or args.pool or args.customer
    try:
        since = parse_duration(args.since) if args.since else None
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    if args.limit < 0:
        raise UsageError("--limit: expected 0 (all) or more")
    store = Store.open(config.store.url)
    try:
        found = reputation(
            store,
            config,
            Inventory.from_config(config),
            by=by,
            since=dt.timedelta(seconds=since) if since is not None else None,
            subject=subject,
        )
    finally:
        store.close()
    shown = found[: args.limit] if args.limit else found
    rows = [r.to_json() for r in shown]
    if args.format == "json":
        print_json(rows)
    elif args.format == "csv":
        print_csv([_flat(r) for r in shown], COLUMNS)
    else:
        _print_table(shown, by)
        if len(found) > len(shown):
            print(f"\n… {len(found) - len(shown)} more (--limit 0 shows all)")
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def _flat(r: Reputation) -> dict[str, object]:
    row = r.to_json()
    row.update(row.pop("bounces"))
    row["top_receiving_domains"] = " ".join(
        f"{d['domain']}:{d['events']}" for d in row["top_receiving_domains"]
    )
    return row


def _print_table(found: list[Reputation], by: str) -> None:
    if not found:
        print("No volume or feedback in the window.")
        return
    rows = [
        (
            r.subject,
            r.pool or "-" if by == "ip" else r.customer or "-",
            f"{r.volume:,}",
            f"{r.complaints} ({_pct(r.rate(r.complaints))} {r.complaint_level})"
            + (f", {r.unauthenticated} unauthenticated" if r.unauthenticated else ""),
            f"{r.hard}/{r.soft}/{r.block} ({_pct(r.rate(r.hard))} {r.bounce_level})",
            " ".join(f"{d}:{n}" for d, n in r.domains.most_common(3)) or "-",
        )
        for r in found
    ]
    owner = "POOL" if by == "ip" else "CUSTOMER"
    headers = (by.upper(), owner, "VOLUME", "COMPLAINTS", "HARD/SOFT/BLOCK", "TOP DOMAINS")
    table(rows, headers)

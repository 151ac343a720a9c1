"""``repmon cases list|show|ack|resolve|note``: work the case queue from the terminal."""

from __future__ import annotations

import argparse
import sys

from checks.result import SEVERITIES
from monitor.cases import (
    Case,
    CaseNotFound,
    CaseStateError,
    acknowledge,
    add_note,
    count_matching,
    get_case,
    list_cases,
    resolve,
)
from monitor.cli import UsageError
from monitor.cli.output import print_json, table
from monitor.config import load_config
from monitor.store import Store
from monitor.store.cases import STATES


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "cases",
        parents=[common],
        help="list, show, acknowledge, resolve and annotate cases",
        description="Exit status: 0 done, 1 no such case or a move the case does not allow.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    ls = verbs.add_parser("list", parents=[common], help="cases not resolved (or --state)")
    ls.add_argument("--state", choices=[*STATES, "all"], help="default: every state but resolved")
    ls.add_argument("--severity", choices=SEVERITIES)
    ls.add_argument("--type", dest="case_type", metavar="TYPE", help="blocklisting, complaints …")
    ls.add_argument("--json", action="store_true", help="print a JSON array")
    shown = ls.add_mutually_exclusive_group()
    shown.add_argument(
        "--limit", type=int, default=50, help="cases shown, worst first (default 50)"
    )
    shown.add_argument("--all", action="store_true", help="every matching case")
    ls.set_defaults(func=_list)
    show = verbs.add_parser("show", parents=[common], help="one case with evidence and timeline")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)
    ack = verbs.add_parser("ack", parents=[common], help="acknowledge: someone is on it")
    ack.add_argument("id", type=int)
    ack.set_defaults(func=_ack)
    res = verbs.add_parser("resolve", parents=[common], help="resolve by hand, with a note")
    res.add_argument("id", type=int)
    res.add_argument("--note", required=True, help="why it is resolved")
    res.set_defaults(func=_resolve)
    note = verbs.add_parser("note", parents=[common], help="add a note to the timeline")
    note.add_argument("id", type=int)
    note.add_argument("text")
    note.set_defaults(func=_note)


def _store(args: argparse.Namespace) -> Store:
    return Store.open(load_config(args.config).store.url)


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1 and not args.all:
        raise UsageError("--limit: expected 1 or more (or --all)")
    store = _store(args)
    limit = None if args.all else args.limit
    try:
        found = list_cases(
            store, state=args.state, severity=args.severity, case_type=args.case_type, limit=limit
        )
        total = count_matching(store, args.state, args.severity, args.case_type)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    finally:
        store.close()
    if args.json:
        print_json([c.to_json() for c in found])
        return 0
    rows = [
        (
            str(c.id),
            c.state,
            c.severity,
            c.type,
            c.subject,
            c.customer or "-",
            c.opened_at.strftime("%Y-%m-%d %H:%M"),
            c.summary,
        )
        for c in found
    ]
    table(rows, ("ID", "STATE", "SEVERITY", "TYPE", "SUBJECT", "CUSTOMER", "OPENED", "SUMMARY"))
    if total > len(found):
        print(f"{len(found)} of {total} cases shown, worst first (--limit N or --all for more)")
    else:
        print(f"{total} cases")
    return 0


def _print_case(c: Case) -> None:
    print(f"case {c.id}  [{c.severity}]  {c.state}  {c.type} / {c.rule}")
    print(f"  {c.summary}")
    print(f"  subject   {c.subject_kind} {c.subject}" + (f"  ({c.source})" if c.source else ""))
    print(f"  owner     pool {c.pool or '-'}, customer {c.customer or '-'}")
    if c.numerator is not None:
        rate = f" = {c.rate * 100:.3f} %" if c.rate is not None else ""
        window = f" over {c.window_seconds / 3600:g}h" if c.window_seconds else ""
        print(f"  numbers   {c.numerator} / {c.denominator}{rate}{window}")
    for key in ("codes", "meaning", "reason", "delist", "volume_basis"):
        if c.evidence.get(key):
            value = c.evidence[key]
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            print(f"  {key:<9} {value}")
    print(f"  opened    {c.opened_at.isoformat()}  last seen {c.last_seen_at.isoformat()}")
    if c.resolved_at:
        print(f"  resolved  {c.resolved_at.isoformat()} ({c.resolution})")
    if c.samples:
        print("  samples")
        for s in c.samples:
            what = s.get("feedback_type") or s.get("category") or s.get("kind")
            print(
                f"    {s.get('received_at', '')}  {what}  {s.get('recipient', '')}  "
                f"{s.get('status', '')}  {s.get('diagnostic', '')[:100]}"
            )
    print("  timeline")
    for e in c.events:
        sev = f" [{e.severity}]" if e.severity else ""
        print(f"    {e.at.strftime('%Y-%m-%d %H:%M:%S')}  {e.kind}{sev}  {e.actor}: {e.text}")


def _with_case(args: argparse.Namespace, action: str) -> int:
    config = load_config(args.config)
    store = Store.open(config.store.url)
    try:
        if action == "show":
            c = get_case(store, args.id)
        elif action == "ack":
            c = acknowledge(store, args.id)
        elif action == "resolve":
            c = resolve(store, args.id, args.note, config=config)
        else:
            c = add_note(store, args.id, args.text)
    except (CaseNotFound, CaseStateError) as exc:
        print(f"repmon: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if getattr(args, "json", False):
        print_json(c.to_json())
    elif action == "show":
        _print_case(c)
    else:
        print(f"case {c.id}: {c.state}")
    return 0


def _show(args: argparse.Namespace) -> int:
    return _with_case(args, "show")


def _ack(args: argparse.Namespace) -> int:
    return _with_case(args, "ack")


def _resolve(args: argparse.Namespace) -> int:
    return _with_case(args, "resolve")


def _note(args: argparse.Namespace) -> int:
    return _with_case(args, "note")

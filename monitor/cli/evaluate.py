"""``repmon evaluate``: run the rules once over the store, then deliver pending notifications."""

from __future__ import annotations

import argparse

from monitor.cases import deliver_notifications, evaluate
from monitor.cli.output import print_json
from monitor.config import load_config
from monitor.store import Store


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "evaluate",
        parents=[common],
        help="run the threshold rules once, open/update/resolve cases, send notifications",
        description="Exit status: 0 no case open afterwards, 1 cases are open, "
        "2 usage or config error. Notifications that could not be sent stay queued.",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-notify", action="store_true", help="leave notifications queued")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = Store.open(config.store.url)
    try:
        summary = evaluate(store, config)
        delivery = None if args.no_notify else deliver_notifications(store, config)
    finally:
        store.close()
    if args.json:
        print_json({"cases": summary.to_json(), "notifications": delivery and delivery.to_json()})
    else:
        print(f"cases: {summary}")
        if delivery is not None:
            print(f"notifications: {delivery}")
    return 1 if summary.open else 0

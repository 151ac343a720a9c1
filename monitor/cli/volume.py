"""``repmon volume add|import-postfix``: report how many messages each sending IP sent."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

from collectors.volume.postfix_log import read_log
from collectors.volume.sent import VolumeError, sent_count, sent_counts
from monitor.cli import UsageError
from monitor.config import load_config
from monitor.store import Store, utcnow
from monitor.store.volume import add_sent


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "volume",
        parents=[common],
        help="record sent message counts per IP (the denominator of rate rules)",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", parents=[common], help="add COUNT messages sent by IP")
    add.add_argument("ip")
    add.add_argument("count", type=int)
    add.add_argument("--at", metavar="ISO", help="when (default now; naive times are UTC)")
    add.add_argument("--source", default="cli", help="who reports it (default: cli)")
    add.set_defaults(func=_add)
    imp = verbs.add_parser(
        "import-postfix",
        parents=[common],
        help="count status=sent smtp deliveries per IP from a Postfix log",
        description="Tags map to IPs through [rules.volume] postfix_ips and --map. "
        "With --state, a later run reads only what was appended since.",
    )
    imp.add_argument("logfile")
    imp.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="TAG=IP",
        help="syslog tag or instance to IP, e.g. postfix-out1/smtp=203.0.113.7 (repeatable)",
    )
    imp.add_argument("--state", metavar="FILE", help="remember the read position here")
    imp.add_argument("--tz", default="UTC", help="zone of classic syslog stamps (default UTC)")
    imp.set_defaults(func=_import)


def _time(text: str | None) -> dt.datetime:
    if not text:
        return utcnow()
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at {text!r}: expected an ISO time such as 2026-05-01T10:00Z") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _add(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    at = _time(args.at)
    store = Store.open(config.store.url)
    try:
        add_sent(store, [sent_count(args.ip, args.count, at, args.source)])
    except VolumeError as exc:
        raise UsageError(str(exc)) from None
    finally:
        store.close()
    print(f"recorded {args.count} sent by {args.ip} in the hour of {at.isoformat()}")
    return 0


def _mapping(config_map: dict[str, str], pairs: list[str]) -> dict[str, str]:
    out = dict(config_map)
    for pair in pairs:
        tag, sep, ip = pair.partition("=")
        if not sep or not tag or not ip:
            raise UsageError(f"--map {pair!r}: expected TAG=IP")
        out[tag.strip()] = ip.strip()
    return out


def _load_state(path: Path, log: Path) -> int:
    """The saved offset if it belongs to this very file (same inode), else 0."""
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as exc:
        raise UsageError(f"--state {path}: unreadable ({exc}); remove it to start over") from None
    if saved.get("inode") != os.stat(log).st_ino:
        return 0  # rotated: a new file starts at the beginning
    return int(saved.get("offset", 0))


def _import(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    mapping = _mapping(dict(config.rules.volume.postfix_ips), args.map)
    log = Path(args.logfile)
    state = Path(args.state) if args.state else None
    try:
        offset = _load_state(state, log) if state else 0
        found = read_log(log, mapping, utcnow(), offset=offset, tz=args.tz)
    except OSError as exc:
        raise UsageError(f"{log}: cannot read: {exc.strerror}") from None
    except Exception as exc:  # ZoneInfoNotFoundError and friends: a bad --tz
        raise UsageError(f"--tz {args.tz!r}: {exc}") from None
    store = Store.open(config.store.url)
    try:
        buckets = add_sent(store, sent_counts(dict(found.counts), "postfix-log"))
    except VolumeError as exc:
        raise UsageError(f"mapping: {exc}") from None
    finally:
        store.close()
    if state:
        state.write_text(json.dumps({"inode": os.stat(log).st_ino, "offset": found.end_offset}))
    recorded = sum(found.counts.values())
    print(f"{found.sent_lines} sent deliveries read, {recorded} recorded in {buckets} IP-hours")
    for tag, n in found.unmapped.most_common():
        print(f"  {n} from {tag}: no IP mapped (add it to [rules.volume] postfix_ips or --map)")
    if found.bad_time:
        print(f"  {found.bad_time} with an unreadable time stamp")
    return 3 if found.unmapped or found.bad_time else 0

"""``repmon run``: the always-on monitor (sink, scheduled sweeps and rules, HTTP API)."""

from __future__ import annotations

import argparse
import asyncio
import ssl

from checks.errors import InventoryError
from monitor.config import ConfigError, load_config
from monitor.daemon import Monitor


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        parents=[common],
        help="run the monitor: sink, scheduled sweeps, rules and the HTTP API",
        description="Runs until SIGTERM or SIGINT, then stops cleanly (exit 0). Without a "
        "config it runs on the built-in defaults: SQLite file repmon.db, sink on "
        "127.0.0.1:2525, API on 127.0.0.1:8025.",
    )
    p.add_argument("--instance", help="name of this instance (default: host-pid)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        monitor = Monitor(config, args.instance)
    except InventoryError as exc:
        raise ConfigError(str(exc)) from None
    except (ValueError, ssl.SSLError) as exc:
        raise ConfigError(f"[sink]: {exc}") from None
    try:
        asyncio.run(monitor.run_until_signal())
    except OSError as exc:
        raise ConfigError(f"cannot start: {exc}") from None
    return 0

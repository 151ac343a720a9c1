"""``repmon sweep``: every inventory IP and domain through the blocklist and hygiene checks."""

from __future__ import annotations

import argparse
import asyncio
import sys

from collectors.registry import sweeps
from collectors.unit import SweepContext
from monitor.cli import UsageError
from monitor.config import Config, load_config
from monitor.inventory import Inventory, InventoryError
from monitor.recorder import StoreRecorder
from monitor.store import Store
from monitor.timeseries import PointWriter
from monitor.timeseries import open_writer as _open


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "sweep",
        parents=[common],
        help="check the whole inventory once and record the results",
    )
    p.add_argument(
        "--only", choices=[c.name for c in sweeps()], help="run one collector's sweep only"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def open_writer(config: Config) -> PointWriter | None:
    """The time-series writer of ``[influxdb]``, or None when it is not configured."""
    if config.influxdb is None:
        return None
    # its own buffer sub-directory: a running `repmon run` holds the main one
    return _open(config.influxdb, name="sweep")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        inventory = Inventory.from_config(config)
    except InventoryError as exc:
        raise UsageError(str(exc)) from None
    if not inventory.config.pools and not inventory.config.domains:
        print(
            "repmon: the inventory is empty: add [[inventory.pools]] to the config", file=sys.stderr
        )
        return 0
    store = Store.open(config.store.url)
    writer = open_writer(config)
    recorder = StoreRecorder(store, inventory, writer)
    progress = False if args.no_progress else None
    try:
        for unit in sweeps():
            if args.only not in (None, unit.name) or unit.sweep is None:
                continue
            section = unit.config_of(config)
            ctx = SweepContext(section, config.resolver, inventory, recorder, progress)
            print(asyncio.run(unit.sweep(ctx)).line())
    finally:
        if writer is not None:
            writer.flush()
            writer.close()
        store.close()
    for c in recorder.changes:
        print(
            f"  {c.check} {c.target} {c.source or '-'}: {c.old_status or 'new'} -> {c.new_status}"
        )
    return 0

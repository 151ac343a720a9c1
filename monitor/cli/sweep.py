"""``repmon sweep``: every inventory IP and domain through the blocklist and hygiene checks.

Prints each sweep's summary and at most :data:`SHOWN_CHANGES` of its state changes (the rest
counted): a sweep of millions of addresses may change thousands of states at once, and each
change is printed once (the recorder does not log them one by one).
"""

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

#: state changes printed per sweep; the rest are counted
SHOWN_CHANGES = 20


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
    recorder = StoreRecorder(store, inventory, writer, keep_changes=SHOWN_CHANGES)
    progress = False if args.no_progress else None
    try:
        for unit in sweeps():
            if args.only not in (None, unit.name) or unit.sweep is None:
                continue
            section = unit.config_of(config)
            ctx = SweepContext(section, config.resolver, inventory, recorder, progress)
            print(asyncio.run(unit.sweep(ctx)).line())
            shown, total = recorder.take_changes(unit.name)
            for c in shown:
                old = c.old_status or "new"
                print(f"  {c.check} {c.target} {c.source or '-'}: {old} -> {c.new_status}")
            if total > len(shown):
                print(
                    f"  … and {total - len(shown):,} more changes "
                    "(repmon status shows everything listed or wrong now)"
                )
    finally:
        if writer is not None:
            writer.flush()
            writer.close()
        store.close()
    return 0

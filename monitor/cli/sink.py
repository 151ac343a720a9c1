"""``repmon sink``: run the SMTP feedback sink standalone, feeding the intake pipeline.

Listens on ``[sink] listen``, spools every accepted message durably, and processes the
spool in order with the feedback pipeline into ``[store] url``. Stops cleanly on SIGTERM or
SIGINT (exit 0). A crash loses nothing: the next start processes what was left.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from typing import Any

from collectors.sink import Sink, run_until_signal
from monitor.config import ConfigError, load_config
from monitor.intake import make_process, sink_config
from monitor.store import Store


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "sink",
        parents=[common],
        help="run the SMTP feedback sink (bounces, complaints, reports)",
        description="Accept feedback mail over SMTP, spool it durably, and ingest it.",
    )
    p.set_defaults(func=run_sink)


def run_sink(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = Store.open(config.store.url)
    try:
        process = make_process(config, store)
        try:
            sink = Sink(sink_config(config), process)  # [sink] and [abuse] recipients
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"[sink]: cannot set up spool or TLS: {exc}") from None
        try:
            asyncio.run(run_until_signal(sink))
        except OSError as exc:
            raise ConfigError(f"[sink]: cannot start on {config.sink.listen}: {exc}") from None
    finally:
        store.close()
    return 0

"""``repmon sink``: run the SMTP feedback sink standalone, feeding the intake pipeline.

Listens on ``[sink] listen``, spools every accepted message durably, and processes the
spool in order with the feedback pipeline into ``[store] url``. Stops cleanly on SIGTERM or
SIGINT (exit 0). A crash loses nothing: the next start processes what was left.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
from typing import Any

import sqlalchemy as sa

from collectors.sink import RetryLater, Sink, SpooledMessage, run_until_signal
from monitor.config import Config, ConfigError, load_config
from monitor.store import Store, StoreError

log = logging.getLogger("repmon.sink")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "sink",
        parents=[common],
        help="run the SMTP feedback sink (bounces, complaints, reports)",
        description="Accept feedback mail over SMTP, spool it durably, and ingest it.",
    )
    p.set_defaults(func=run_sink)


def make_process(config: Config, store: Store) -> Any:
    """The processor callback: ``ingest_spooled`` in a thread, or None if not installed.

    Store connection failures become :class:`RetryLater` (the message waits in the spool);
    any other error quarantines the message.
    """
    try:
        from collectors.feedback.pipeline import ingest_spooled
    except ImportError as exc:
        log.warning("feedback pipeline unavailable (%s): messages are spooled only", exc)
        return None
    from monitor.inventory import Inventory

    inventory = Inventory.from_config(config)

    async def process(msg: SpooledMessage, raw: bytes) -> None:
        # Where the message will be once processed: the evidence link kept in the store.
        final_path = str(msg.path.parent.parent / "done" / msg.path.name)
        rcpts = msg.envelope.get("rcpt_tos")
        envelope_to = [str(r) for r in rcpts] if isinstance(rcpts, list) else []
        try:
            await asyncio.to_thread(
                ingest_spooled,
                store,
                config,
                inventory,
                raw,
                msg.message_hash,
                msg.received_at,
                final_path,
                envelope_to=envelope_to,
            )
        except (StoreError, sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise RetryLater(f"store unavailable: {exc}") from exc

    return process


def run_sink(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = Store.open(config.store.url)
    try:
        process = make_process(config, store)
        try:
            sink = Sink(config.sink, process)
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

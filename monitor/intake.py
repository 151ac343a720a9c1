"""The intake behind every sink: spooled messages → the feedback intake → the store.

:func:`make_process` gives the spool processor its batch callback. With more than one CPU,
parsing and storing run in one worker process with its own store connection, so the SMTP
side keeps its own core; a worker that dies fails its batch, and a message that keeps
killing it ends in quarantine. Used by ``repmon sink`` and ``repmon run``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from checks.errors import StoreError, StoreUnavailable
from collectors.sink import BatchProcess, Rejected, RetryLater, SpooledMessage
from collectors.sink.processor import reason_text
from monitor.config import Config
from monitor.store import Store

if TYPE_CHECKING:
    from collectors.feedback.pipeline import SpooledItem

log = logging.getLogger("repmon.sink")


def make_process(config: Config, store: Store) -> BatchProcess | None:
    """The processor callback: ``ingest_batch``, or None if the pipeline is not installed.

    Each batch is one transaction. A message that cannot be parsed is quarantined alone;
    store connection failures become :class:`RetryLater` (the whole batch waits in the
    spool, nothing of it committed). With more than one CPU and a store another process
    can open, batches run in a worker process (see :class:`IntakeWorker`), so parsing does
    not share the SMTP side's interpreter lock; otherwise in a thread, on ``store``.
    """
    try:
        from monitor.feedback_intake import ingest_batch
    except ImportError as exc:
        log.warning("feedback pipeline unavailable (%s): messages are spooled only", exc)
        return None
    from monitor.inventory import Inventory

    if (os.cpu_count() or 1) > 1 and not _in_memory(config.store.url):
        worker = IntakeWorker(config)
        return BatchProcess(worker.run, close=worker.close)

    inventory = Inventory.from_config(config)

    async def run(batch: Sequence[tuple[SpooledMessage, bytes]]) -> list[BaseException | None]:
        items = [_item(msg, raw) for msg, raw in batch]
        try:
            results = await asyncio.to_thread(ingest_batch, store, config, inventory, items)
        except STORE_DOWN as exc:
            raise RetryLater(f"store unavailable: {exc}") from exc
        return [r if isinstance(r, Exception) else None for r in results]

    return BatchProcess(run)


#: what a store that cannot be reached raises (the store translates its driver's errors):
#: the batch waits, it is not the messages' fault
STORE_DOWN = (StoreUnavailable,)


def _item(msg: SpooledMessage, raw: bytes) -> SpooledItem:
    from collectors.feedback.pipeline import SpooledItem

    # The evidence link kept in the store: the segment that holds the message, where it will be
    # once processed (segments move to done/ whole); Spool.evidence(hash) reads the message out.
    final_path = str(msg.path.parent.parent / "done" / msg.path.name)
    rcpts = msg.envelope.get("rcpt_tos")
    envelope_to = [str(r) for r in rcpts] if isinstance(rcpts, list) else []
    return SpooledItem(raw, msg.message_hash, msg.received_at, final_path, envelope_to)


def _in_memory(url: str) -> bool:
    """An SQLite database no other process can open (``sqlite://``, ``:memory:``)."""
    return url.startswith("sqlite") and (
        url.rstrip("/") in ("sqlite:", "sqlite://") or ":memory:" in url or "mode=memory" in url
    )


class IntakeWorker:
    """One worker process that parses and stores batches (``ingest_batch``).

    It opens its own store connection from ``config``. The exactly-once rule is unchanged:
    the worker commits a batch, the sink moves its files to ``done/`` only after the
    worker answered. A worker that dies (killed, crashed on a message) fails the batch
    with an error that is not :class:`RetryLater`: the processor then retries the
    messages one at a time in a new worker, so only a message that kills it every time
    ends in quarantine.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the sink's process has threads (and the daemon a scheduler)
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_start,
                initargs=(self.config,),
            )
        return self._pool

    async def run(
        self, batch: Sequence[tuple[SpooledMessage, bytes]]
    ) -> list[BaseException | None]:
        items = [_item(msg, raw) for msg, raw in batch]
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), _worker_ingest, items)
        except BrokenProcessPool as exc:
            self.close()
            raise RuntimeError(f"intake worker process died: {exc}") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


#: the worker process's own store, config and inventory (set by _worker_start)
_WORKER: dict[str, Any] = {}


def _worker_start(config: Config) -> None:
    from monitor.inventory import Inventory

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _WORKER["config"] = config
    _WORKER["inventory"] = Inventory.from_config(config)
    _WORKER["store"] = None


def _worker_ingest(items: list[SpooledItem]) -> list[BaseException | None]:
    """In the worker: ingest a batch; per-message failures come back as :class:`Rejected`
    (their reason written here, where the traceback is), store outages as RetryLater."""
    from monitor.feedback_intake import ingest_batch

    try:
        if _WORKER["store"] is None:
            try:
                _WORKER["store"] = Store.open(_WORKER["config"].store.url)
            except StoreError as exc:  # not opened yet, whatever the reason: try later
                raise StoreUnavailable(str(exc)) from None
        results = ingest_batch(_WORKER["store"], _WORKER["config"], _WORKER["inventory"], items)
    except STORE_DOWN as exc:
        raise RetryLater(f"store unavailable: {exc}") from None
    return [Rejected(reason_text(r)) if isinstance(r, Exception) else None for r in results]

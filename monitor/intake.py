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
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from checks.errors import StoreError, StoreUnavailable
from collectors.sink import BatchProcess, Rejected, RetryLater, SinkConfig, SpooledMessage
from collectors.sink.limits import die_with_parent
from collectors.sink.processor import reason_text
from monitor.config import Config
from monitor.inventory import Inventory
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

    del ingest_batch  # imported to know the pipeline is there; ingest_routed routes
    if (os.cpu_count() or 1) > 1 and not _in_memory(config.store.url):
        worker = IntakeWorker(config)
        return _with_series(config, store, BatchProcess(worker.run, close=worker.close))

    inventory = Inventory.from_config(config)

    async def run(batch: Sequence[tuple[SpooledMessage, bytes]]) -> list[BaseException | None]:
        items = [_item(msg, raw) for msg, raw in batch]
        try:
            results = await asyncio.to_thread(ingest_routed, store, config, inventory, items)
        except STORE_DOWN as exc:
            raise RetryLater(f"store unavailable: {exc}") from exc
        return [r if isinstance(r, Exception) else None for r in results]

    return _with_series(config, store, BatchProcess(run))


#: what a store that cannot be reached raises (the store translates its driver's errors):
#: the batch waits, it is not the messages' fault
STORE_DOWN = (StoreUnavailable,)


def _item(msg: SpooledMessage, raw: bytes) -> SpooledItem:
    from collectors.feedback.pipeline import SpooledItem
    from collectors.feedback.trust import Envelope

    # The evidence link kept in the store: the segment that holds the message, where it will be
    # once processed (segments move to done/ whole); Spool.evidence(hash) reads the message out.
    final_path = str(msg.path.parent.parent / "done" / msg.path.name)
    rcpts = msg.envelope.get("rcpt_tos")
    envelope_to = [str(r) for r in rcpts] if isinstance(rcpts, list) else []
    # Received by SMTP: its trust is judged by the session (MAIL FROM, client IP, HELO).
    smtp = Envelope(
        mail_from=str(msg.envelope.get("mail_from") or ""),
        peer=str(msg.envelope.get("peer") or ""),
        helo=str(msg.envelope.get("helo") or ""),
    )
    return SpooledItem(raw, msg.message_hash, msg.received_at, final_path, envelope_to, smtp)


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
    die_with_parent()  # exit at once if the sink's process is SIGKILLed: no orphan on the store
    # Ctrl-C reaches the whole process group: the parent stops the worker, quietly
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _WORKER["config"] = config
    _WORKER["inventory"] = Inventory.from_config(config)
    _WORKER["store"] = None


def _worker_ingest(items: list[SpooledItem]) -> list[BaseException | None]:
    """In the worker: ingest a batch; per-message failures come back as :class:`Rejected`
    (their reason written here, where the traceback is), store outages as RetryLater."""
    try:
        if _WORKER["store"] is None:
            try:
                _WORKER["store"] = Store.open(_WORKER["config"].store.url)
            except StoreError as exc:  # not opened yet, whatever the reason: try later
                raise StoreUnavailable(str(exc)) from None
        results = ingest_routed(_WORKER["store"], _WORKER["config"], _WORKER["inventory"], items)
    except STORE_DOWN as exc:
        raise RetryLater(f"store unavailable: {exc}") from None
    return [Rejected(reason_text(r)) if isinstance(r, Exception) else None for r in results]


# --- routing: the feedback intake and the abuse intake behind one sink -----------------------
#
# The sink accepts the union of the ``[sink]`` and ``[abuse]`` recipients (:func:`sink_config`);
# each spooled message goes by its envelope recipients: to the abuse intake when one of them
# is the abuse desk's, to the feedback intake when one is not, to both when both (each intake
# claims the message's hash in its own table, so a retry stores nothing twice in either).


def sink_config(config: Config) -> SinkConfig:
    """``[sink]`` with the ``[abuse]`` recipients added: what the sink accepts."""
    from monitor.abuse_intake import abuse_section

    abuse = abuse_section(config)
    if not (abuse.accept_domains or abuse.accept_addresses):
        return config.sink
    sink = config.sink
    return sink.model_copy(
        update={
            "accept_domains": list(dict.fromkeys([*sink.accept_domains, *abuse.accept_domains])),
            "accept_addresses": list(
                dict.fromkeys([*sink.accept_addresses, *abuse.accept_addresses])
            ),
        }
    )


class Router:
    """Which intake a recipient is for. An address listed in ``[abuse] accept_addresses`` is
    the abuse desk's; else one listed in ``[sink] accept_addresses`` is feedback's; else an
    address in an ``[abuse] accept_domains`` domain is the abuse desk's; everything else
    (the ``[sink]`` domains) is feedback's. A message without recipients (saved, or spooled
    by an older version) is feedback."""

    def __init__(self, config: Config) -> None:
        from monitor.abuse_intake import abuse_section

        abuse = abuse_section(config)
        self.abuse_addresses = frozenset(x.strip().lower() for x in abuse.accept_addresses)
        self.abuse_domains = frozenset(d.strip().lower().rstrip(".") for d in abuse.accept_domains)
        self.feedback_addresses = frozenset(x.strip().lower() for x in config.sink.accept_addresses)

    @property
    def active(self) -> bool:
        return bool(self.abuse_addresses or self.abuse_domains)

    def is_abuse(self, recipient: str) -> bool:
        address = recipient.strip().strip("<>").lower()
        if address in self.abuse_addresses:
            return True
        if address in self.feedback_addresses:
            return False
        return address.rpartition("@")[2].rstrip(".") in self.abuse_domains

    def routes(self, recipients: Sequence[str]) -> tuple[bool, bool]:
        """(to the feedback intake, to the abuse intake)."""
        if not self.active or not recipients:
            return True, False
        abuse = [self.is_abuse(r) for r in recipients]
        return not all(abuse), any(abuse)


def ingest_routed(
    store: Store, config: Config, inventory: Inventory, items: Sequence[SpooledItem]
) -> list[BaseException | None]:
    """Ingest a batch, each message into the intake(s) its recipients name; one entry per
    item: None when stored (or already stored), else why it could not be read. A message
    for both intakes fails only when both fail (the reasons joined); a store error
    propagates (the whole batch is retried, and what was stored is a duplicate then)."""
    from monitor.abuse_intake import ingest_batch as ingest_abuse
    from monitor.feedback_intake import ingest_batch as ingest_feedback

    router = Router(config)
    routes = [router.routes(item.envelope_to) for item in items]
    errors: list[list[BaseException]] = [[] for _ in items]
    for lane, ingest in ((0, ingest_feedback), (1, ingest_abuse)):
        chosen = [i for i, route in enumerate(routes) if route[lane]]
        if not chosen:
            continue
        results = ingest(store, config, inventory, [items[i] for i in chosen])
        for i, result in zip(chosen, results, strict=True):
            if isinstance(result, Exception):
                errors[i].append(result)
    out: list[BaseException | None] = []
    for (feedback, abuse), failed in zip(routes, errors, strict=True):
        if not failed or len(failed) < feedback + abuse:
            for exc in failed:  # the other intake took it: say so, keep it
                log.warning("a message for both intakes could not be read by one: %s", exc)
            out.append(None)
        elif len(failed) == 1:
            out.append(failed[0])
        else:
            out.append(Rejected("; ".join(f"{type(e).__name__}: {e}" for e in failed)))
    return out


def _with_series(config: Config, store: Store, process: BatchProcess) -> BatchProcess:
    """``process``, and the ``abuse`` measurement exported in the background of this process
    when there is an ``[influxdb]`` and an abuse desk (``monitor.abuse_intake.SeriesThread``)."""
    from monitor.abuse_intake import AbuseSeries, SeriesThread
    from monitor.timeseries import BufferBusy, open_writer

    router = Router(config)
    if config.influxdb is None or not router.active:
        return process
    try:
        writer = open_writer(config.influxdb, name="abuse")
    except BufferBusy as exc:  # another process exports the same store: it covers this one
        log.warning("abuse series not exported by this process: %s", exc)
        return process
    series = SeriesThread(AbuseSeries(store, writer))
    run, close = process.run, process.close

    async def routed(batch: Sequence[tuple[SpooledMessage, bytes]]) -> list[BaseException | None]:
        results = list(await run(batch))
        rcpts = [m.envelope.get("rcpt_tos") for m, _ in batch]
        if any(router.routes([str(x) for x in r])[1] for r in rcpts if isinstance(r, list)):
            series.poke()
        return results

    def closed() -> None:
        if close is not None:
            close()
        series.close()

    return BatchProcess(routed, process.max_batch, closed)

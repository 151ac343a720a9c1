"""The spool processor: hands spooled messages to the intake, in order, exactly once.

It takes the oldest pending messages, up to a batch at a time, and gives them to the
process callback. Order of effects: the callback commits the batch's hashes and events to
the store (one transaction), then each message of it is copied to ``done/`` and settled; a
segment is deleted once all of its messages are settled. A crash between the two leaves the
messages in their segment in ``new/``; they are processed again after the restart and the
store's hash check makes that a no-op. So a message is counted once however the process dies.

Two kinds of callback:

- :data:`Process`, ``process(msg, raw)`` for one message: returns → ``done/``; raises
  :class:`RetryLater` → it stays in ``new/`` and the processor backs off; raises anything
  else (``ParseError`` or a bug) → ``quarantine/`` with the error and a traceback summary
  in ``<hash>.reason``, and the loop goes on.
- :class:`BatchProcess`, ``run([(msg, raw), ...])`` for many: returns one result per
  message, ``None`` (→ ``done/``) or the exception that message alone is quarantined for.
  Raising :class:`RetryLater` keeps the whole batch in ``new/`` (nothing of it was
  committed) and backs off. Raising anything else is a bug outside any single message: the
  batch is retried one message at a time, so only the message that triggers it ends in
  quarantine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from checks.errors import InputError, RepmonError
from collectors.sink.spool import Spool, SpooledMessage

log = logging.getLogger("repmon.sink")

#: what the processor calls for one message: parse, attribute, store (one transaction)
Process = Callable[[SpooledMessage, bytes], Awaitable[None]]
#: what it calls for a batch: one result per message, None = stored, an exception = quarantine
ProcessBatch = Callable[
    [Sequence[tuple[SpooledMessage, bytes]]], Awaitable[Sequence[BaseException | None]]
]

MAX_BACKOFF = 60.0
#: messages per batch when the callback takes batches: enough to share a transaction's
#: cost, few enough that a batch is done in well under a second
DEFAULT_BATCH = 200
#: message bytes per listing (so per batch) at most, whatever the count; a single message
#: larger than this is still taken, alone. With the segment being read (at most
#: MAX_GROUP_BYTES, 32 MiB, or one message) this bounds what the processor holds,
#: however large the backlog in new/ (a store outage lets it grow without limit on disk).
DEFAULT_BATCH_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class BatchProcess:
    """A process callback that takes up to ``max_batch`` messages at once.

    ``close``, when given, is called once the processor has stopped (to end a worker).
    """

    run: ProcessBatch
    max_batch: int = DEFAULT_BATCH
    close: Callable[[], None] | None = None


class RetryLater(RepmonError):
    """Processing failed for a reason outside the message (store down): keep it, retry."""


class Rejected(InputError):
    """A message's failure found elsewhere (in a worker process), with its reason text
    already written: the processor quarantines the message with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason.partition("\n")[0])
        self.reason = reason

    def __reduce__(self) -> tuple[type[Rejected], tuple[str]]:
        return (Rejected, (self.reason,))  # pickled back from the worker whole


@dataclass
class ProcessorStats:
    processed: int = 0
    quarantined: int = 0
    retries: int = 0
    #: calls of the process callback (messages per batch = processed / batches, roughly)
    batches: int = 0


def reason_text(exc: BaseException) -> str:
    """``Type: message`` and the last frames of the traceback, for a ``.reason`` file."""
    if isinstance(exc, Rejected):
        return exc.reason
    head = f"{type(exc).__name__}: {exc}"
    frames = traceback.format_tb(exc.__traceback__)[-4:]
    return head + "\n\nTraceback (most recent call last, last frames):\n" + "".join(frames)


class SpoolProcessor:
    """Takes ``spool.pending()`` oldest first and processes it, a batch at a time.

    With ``process=None`` it does nothing and messages stay spooled. Each pass lists at
    most one batch's worth (``max_batch`` messages, ``max_batch_bytes`` bytes) and holds
    nothing of the spool between passes.
    """

    def __init__(
        self,
        spool: Spool,
        process: Process | BatchProcess | None,
        *,
        poll_interval: float = 1.0,
        max_batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> None:
        self.spool = spool
        self.process = process
        self.batch: BatchProcess | None
        if process is None or isinstance(process, BatchProcess):
            self.batch = process
        else:
            self.batch = BatchProcess(_one_by_one(process), max_batch=1)
        self.poll_interval = poll_interval
        self.max_batch_bytes = max_batch_bytes
        self.stats = ProcessorStats()
        self._wake = asyncio.Event()
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self._backoff = 0.0

    def wake(self) -> None:
        """A message arrived: look at the spool now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        if self.batch is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spool")

    async def stop(self, drain_timeout: float) -> None:
        """Process what is pending (up to ``drain_timeout`` seconds), then stop.

        What is left stays in ``new/`` for the next start.
        """
        try:
            await self._drain(drain_timeout)
        finally:
            if self.batch is not None and self.batch.close is not None:
                await asyncio.to_thread(self.batch.close)

    async def _drain(self, drain_timeout: float) -> None:
        if self._task is None:
            return
        self._draining = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), drain_timeout)
        except TimeoutError:
            log.warning("spool: drain took longer than %.0f s; the rest waits", drain_timeout)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        assert self.batch is not None
        # A fresh listing per batch, so new arrivals join the next one; single-message
        # callbacks take a batch's worth per listing (the listing reads the bytes).
        limit = DEFAULT_BATCH if self.batch.max_batch == 1 else self.batch.max_batch
        while True:
            self._wake.clear()
            try:
                waiting = await asyncio.to_thread(self.spool.pending, limit, self.max_batch_bytes)
            except OSError as exc:
                log.error("spool: cannot list %s: %s", self.spool.new, exc)
                waiting = []
            if not waiting:
                if self._draining:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                continue
            size = self.batch.max_batch
            for i in range(0, len(waiting), size):
                if not await self._batch(waiting[i : i + size]):
                    if self._draining:
                        return  # the store is down: the rest waits for the next start
                    await self._pause()
                    break

    async def _batch(self, msgs: Sequence[SpooledMessage]) -> bool:
        """Process one batch; False when the processor should back off and retry."""
        assert self.batch is not None
        try:
            loaded = await asyncio.to_thread(self.spool.read_many, msgs)
        except OSError as exc:
            log.error("spool: cannot read a message of %s: %s", self.spool.new, exc)
            return False
        if not loaded:
            return True
        try:
            self.stats.batches += 1
            results = list(await self.batch.run(loaded))
            if len(results) != len(loaded):
                raise RuntimeError(f"{len(results)} results for a batch of {len(loaded)}")
        except RetryLater as exc:
            self.stats.retries += 1
            log.warning("spool: %d message(s) deferred: %s", len(loaded), exc)
            return False
        except Exception as exc:
            if len(loaded) == 1:
                results = [exc]
            else:
                # A bug outside any one message's parse: find the culprit one at a time.
                log.warning(
                    "spool: batch failed (%s: %s); retrying singly", type(exc).__name__, exc
                )
                for msg, _ in loaded:
                    if not await self._batch([msg]):
                        return False
                return True
        for (msg, _), result in zip(loaded, results, strict=True):
            if result is not None:
                log.warning(
                    "spool: %s quarantined: %s: %s",
                    msg.message_hash[:16],
                    type(result).__name__,
                    result,
                )
        return await self._finish(loaded, results)

    async def _finish(
        self,
        loaded: Sequence[tuple[SpooledMessage, bytes]],
        results: Sequence[BaseException | None],
    ) -> bool:
        moves = [
            (msg, None if result is None else reason_text(result))
            for (msg, _), result in zip(loaded, results, strict=True)
        ]
        ok = await asyncio.to_thread(self._settle, moves)
        if ok:
            self._backoff = 0.0
        return ok

    def _settle(self, moves: Sequence[tuple[SpooledMessage, str | None]]) -> bool:
        """Copy each message to ``done/`` or ``quarantine/`` and settle it in its segment;
        False if one could not be."""
        ok = True
        for msg, reason in moves:
            try:
                if reason is None:
                    self.spool.done(msg)
                    self.stats.processed += 1
                else:
                    self.spool.quarantine(msg, reason)
                    self.stats.quarantined += 1
            except FileNotFoundError:
                pass  # its segment is gone: a duplicate copy already settled it
            except OSError as exc:
                # Still in new/: it will be offered again, and processing is idempotent.
                log.error("spool: cannot settle %s: %s", msg.message_hash[:16], exc)
                ok = False
        return ok

    async def _pause(self) -> None:
        self._backoff = min(max(self._backoff * 2, 1.0), MAX_BACKOFF)
        await asyncio.sleep(self._backoff)


def _one_by_one(process: Process) -> ProcessBatch:
    """A single-message callback as a batch callback (used with batches of one)."""

    async def run(batch: Sequence[tuple[SpooledMessage, bytes]]) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        for msg, raw in batch:
            try:
                await process(msg, raw)
            except RetryLater:
                raise
            except Exception as exc:
                results.append(exc)
            else:
                results.append(None)
        return results

    return run

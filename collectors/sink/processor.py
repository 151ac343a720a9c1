"""The spool processor: hands each spooled message to the intake, in order, exactly once.

Order of effects per message: ``process(msg, raw)`` (which commits the message's hash and
events to the store in one transaction), then ``spool.done(msg)``. A crash between the two
leaves the message in ``new/``; it is processed again after the restart and the store's
hash check makes that a no-op. So a message is counted once however the process dies.

Outcomes of ``process``:

- returns: the message moves to ``done/``;
- raises :class:`RetryLater` (store unreachable, ...): the message stays in ``new/`` and the
  processor backs off, so an outage delays data and never quarantines it;
- raises anything else (``ParseError`` or a bug): the message moves to ``quarantine/`` with
  the error and a traceback summary in ``<hash>.reason``; the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from collectors.sink.spool import Spool, SpooledMessage

log = logging.getLogger("repmon.sink")

#: what the processor calls for each message: parse, attribute, store (one transaction)
Process = Callable[[SpooledMessage, bytes], Awaitable[None]]

MAX_BACKOFF = 60.0


class RetryLater(Exception):
    """Processing failed for a reason outside the message (store down): keep it, retry."""


@dataclass
class ProcessorStats:
    processed: int = 0
    quarantined: int = 0
    retries: int = 0


def reason_text(exc: BaseException) -> str:
    """``Type: message`` and the last frames of the traceback, for a ``.reason`` file."""
    head = f"{type(exc).__name__}: {exc}"
    frames = traceback.format_tb(exc.__traceback__)[-4:]
    return head + "\n\nTraceback (most recent call last, last frames):\n" + "".join(frames)


class SpoolProcessor:
    """Takes ``spool.pending()`` oldest first and processes each message.

    With ``process=None`` it does nothing and messages stay spooled.
    """

    def __init__(
        self, spool: Spool, process: Process | None, *, poll_interval: float = 1.0
    ) -> None:
        self.spool = spool
        self.process = process
        self.poll_interval = poll_interval
        self.stats = ProcessorStats()
        self._wake = asyncio.Event()
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self._backoff = 0.0

    def wake(self) -> None:
        """A message arrived: look at the spool now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        if self.process is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spool")

    async def stop(self, drain_timeout: float) -> None:
        """Process what is pending (up to ``drain_timeout`` seconds), then stop.

        What is left stays in ``new/`` for the next start.
        """
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
        while True:
            self._wake.clear()
            try:
                batch = await asyncio.to_thread(self.spool.pending)
            except OSError as exc:
                log.error("spool: cannot list %s: %s", self.spool.new, exc)
                batch = []
            if not batch:
                if self._draining:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                continue
            for msg in batch:
                if not await self._one(msg):
                    if self._draining:
                        return  # the store is down: the rest waits for the next start
                    await self._pause()
                    break

    async def _one(self, msg: SpooledMessage) -> bool:
        """Process one message; False when the processor should back off and retry."""
        assert self.process is not None
        try:
            raw = await asyncio.to_thread(self.spool.read, msg)
        except FileNotFoundError:
            return True  # already moved (a re-delivery raced with its first copy)
        except OSError as exc:
            log.error("spool: cannot read %s: %s", msg.path, exc)
            return False
        try:
            await self.process(msg, raw)
        except RetryLater as exc:
            self.stats.retries += 1
            log.warning("spool: %s deferred: %s", msg.message_hash[:16], exc)
            return False
        except Exception as exc:
            log.warning(
                "spool: %s quarantined: %s: %s", msg.message_hash[:16], type(exc).__name__, exc
            )
            return await self._finish(msg, reason_text(exc))
        return await self._finish(msg, None)

    async def _finish(self, msg: SpooledMessage, reason: str | None) -> bool:
        try:
            if reason is None:
                await asyncio.to_thread(self.spool.done, msg)
                self.stats.processed += 1
            else:
                await asyncio.to_thread(self.spool.quarantine, msg, reason)
                self.stats.quarantined += 1
        except FileNotFoundError:
            pass  # a duplicate copy already moved it
        except OSError as exc:
            # Still in new/: it will be offered again, and processing is idempotent.
            log.error("spool: cannot move %s: %s", msg.path, exc)
            return False
        self._backoff = 0.0
        return True

    async def _pause(self) -> None:
        self._backoff = min(max(self._backoff * 2, 1.0), MAX_BACKOFF)
        await asyncio.sleep(self._backoff)

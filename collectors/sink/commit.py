"""Group commit: SMTP sessions whose DATA completes at about the same time share one fsync.

:class:`GroupCommit` hands every message whose DATA completed while the previous group was
being written to one :meth:`Spool.accept_many` call, in one thread: the whole group goes
into **one** segment file, which is fsynced, renamed into ``new/``, and the directory
fsynced once. Each session's ``accept`` returns only when that call, covering its own
message, has returned; so no 250 is ever sent before its message is durable.

One thread per group rather than one per message: the disk serialises fsyncs anyway (a
journal commit each), and a thread per session costs a hand-off and a fight for the GIL
per message, which on a small machine took more CPU than the SMTP dialogue itself.

Nobody waits to form a group: a message that finds no write running starts one at once,
and groups only grow while the disk is busy, which is exactly when sharing pays.

Memory: the messages waiting here are still counted in their sessions' DATA budget
(``max_data_bytes_in_flight``, :class:`collectors.sink.limits.DataBudget`) until ``accept``
returns, and a segment is written from its pieces with ``writev``, never joined into a copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from collectors.sink.spool import Spool, SpooledMessage, SpoolError

#: a message as the session hands it over: raw bytes and envelope
Pending = tuple[bytes, Mapping[str, object]]

#: messages per segment at most (bounds the latency of the last one in a group)
MAX_GROUP = 256
#: bytes per segment at most (bounds the memory a segment's reader needs); a single
#: message larger than this still gets a segment of its own
MAX_GROUP_BYTES = 32 * 1024 * 1024


class GroupCommit:
    """Durable spool writes for concurrent SMTP sessions, one directory fsync per group.

    Use from one event loop. ``accept`` has the contract of :meth:`Spool.accept`.
    """

    def __init__(self, spool: Spool, max_group: int = MAX_GROUP) -> None:
        self.spool = spool
        self.max_group = max_group
        self._waiting: list[tuple[Pending, asyncio.Future[SpooledMessage]]] = []
        self._publisher: asyncio.Task[None] | None = None
        #: how many publish calls (directory fsyncs) and messages so far, for the benchmark
        self.groups = 0
        self.messages = 0

    async def accept(self, raw: bytes, envelope: Mapping[str, object]) -> SpooledMessage:
        """Store ``raw`` durably in a segment in ``new/``; returns once it is (see
        :meth:`Spool.accept`).

        Raises :class:`SpoolError` when it could not be stored: answer 451.
        """
        done: asyncio.Future[SpooledMessage] = asyncio.get_running_loop().create_future()
        self._waiting.append(((raw, envelope), done))
        if self._publisher is None:
            self._publisher = asyncio.get_running_loop().create_task(self._publish())
        return await done

    async def _publish(self) -> None:
        group: list[tuple[Pending, asyncio.Future[SpooledMessage]]] = []
        try:
            while self._waiting:
                size = total = 0
                for (raw, _), _ in self._waiting[: self.max_group]:
                    if size and total + len(raw) > MAX_GROUP_BYTES:
                        break
                    size, total = size + 1, total + len(raw)
                group = self._waiting[:size]
                del self._waiting[:size]
                try:
                    results = await asyncio.to_thread(self.spool.accept_many, [m for m, _ in group])
                except Exception as exc:  # not an OSError (those come back per message)
                    error = SpoolError(None, f"spool write failed: {exc}")
                    results = [error for _ in group]
                self.groups += 1
                self.messages += len(group)
                for (_, done), result in zip(group, results, strict=True):
                    if done.done():  # the session went away meanwhile
                        continue
                    if isinstance(result, SpoolError):
                        done.set_exception(result)
                    else:
                        done.set_result(result)
                group = []
        finally:
            self._publisher = None
            # Cancelled (the loop is closing): whoever still waits gets a 451, never a 250.
            for _, done in group + self._waiting:
                if not done.done():
                    done.set_exception(SpoolError(None, "spool write interrupted"))
            self._waiting.clear()

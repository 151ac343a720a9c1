"""Which instance runs the scheduled sweeps and rules: a PostgreSQL advisory lock, kept alive.

Every instance runs a sink; only the holder of the lock runs the jobs that
must not run twice (sweeps, rule evaluation, notifications, housekeeping).
The lock is held by one dedicated session (:class:`monitor.store.leases.AdvisoryLock`):
when its instance dies, the connection drops, PostgreSQL releases the lock and another
instance takes it at its next attempt. On SQLite there is one instance, always the leader.

A leader that is alive but makes no progress (SIGSTOP, a wedged process) would keep the
session, and the lock, for ever. So the leader writes a heartbeat from the lock's session at
every refresh (every ``LEADER_REFRESH_SECONDS``, 5 s, in ``monitor/daemon/monitor.py``), and
an instance that cannot take the lock ends the holder's session when that heartbeat is older
than :data:`HEARTBEAT_STALE_SECONDS` (by the database's clock), then takes the lock:

- a leader that stops making progress loses the lead within ``HEARTBEAT_STALE_SECONDS``
  + one refresh interval + :data:`RETAKE_SECONDS` = 20 + 5 + 3 = **28 s** of its last
  heartbeat (docs/operations.md, "Leadership");
- the wedged instance, once it runs again, finds its session gone at its next refresh, and
  before that it runs no leader job: :meth:`Leadership.check` re-confirms the lock whenever
  the last confirmation is older than :data:`FRESH_SECONDS` (a process that was stopped
  always is, by the monotonic clock).
"""

from __future__ import annotations

import logging
import threading
import time

from checks.errors import StoreError
from monitor.store import Store
from monitor.store.cases import LOCK_KEY as EVALUATION_LOCK
from monitor.store.leases import AdvisoryLock
from monitor.store.series import EXPORT_LOCK

log = logging.getLogger("repmon.leader")

#: the advisory lock's key: "repmon" in ASCII
LEADER_LOCK = 0x7265706D6F6E
#: a heartbeat older than this (seconds, the database's clock) is a leader making no progress
HEARTBEAT_STALE_SECONDS = 20.0
#: a leader job runs without re-confirming the lock only this long after the last confirmation
FRESH_SECONDS = 8.0
#: how long a new leader waits for PostgreSQL to release the lock of a session it ended
RETAKE_SECONDS = 3.0


class Leadership:
    def __init__(
        self, store: Store, instance: str, stale_after: float = HEARTBEAT_STALE_SECONDS
    ) -> None:
        self.store = store
        self.instance = instance
        self.stale_after = stale_after
        self._lock = AdvisoryLock(store, LEADER_LOCK)
        self.is_leader = store.dialect != "postgresql"
        #: monotonic time of the last confirmed lock and heartbeat
        self._confirmed_at = 0.0
        #: the lock session is used from the refresh loop and from job runners: one at a time
        self._mutex = threading.Lock()

    def refresh(self) -> bool:
        """Take (or confirm) the lock and write the heartbeat; end a stale holder's session
        first when needed. Return whether this instance leads now."""
        if self.store.dialect != "postgresql":
            return True
        with self._mutex:
            return self._refresh()

    def _refresh(self) -> bool:
        was = self.is_leader
        try:
            if self.is_leader:
                self._lock.confirm()
            else:
                self.is_leader = self._lock.try_take() or self._take_from_stale()
            if self.is_leader:
                self._lock.beat(self.instance)
                self._confirmed_at = time.monotonic()
        except StoreError as exc:
            log.warning("leader lock connection lost: %s", exc)
            self._lock.drop()
            self.is_leader = False
        if self.is_leader != was:
            log.info(
                "instance %s %s",
                self.instance,
                "is now the leader" if self.is_leader else "lost leadership",
            )
        return self.is_leader

    def _take_from_stale(self) -> bool:
        """End the holder's session if its heartbeat is stale, then take the lock."""
        ended = self._lock.break_stale(self.stale_after, also=(EVALUATION_LOCK, EXPORT_LOCK))
        if not ended:
            return False
        log.warning(
            "the leader made no progress for over %.0fs: ended its sessions %s",
            self.stale_after,
            ", ".join(map(str, ended)),
        )
        deadline = time.monotonic() + RETAKE_SECONDS
        while True:
            if self._lock.try_take():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def check(self) -> bool:
        """Whether this instance may run a leader job now.

        The lock is re-confirmed (with a heartbeat) when the last confirmation is older than
        :data:`FRESH_SECONDS`: after a stop, the process learns that it lost the lead before
        it runs anything.
        """
        if self.store.dialect != "postgresql":
            return True
        with self._mutex:
            if not self.is_leader:
                return False
            if time.monotonic() - self._confirmed_at > FRESH_SECONDS:
                return self._refresh()
            return True

    def release(self) -> None:
        with self._mutex:
            if self.is_leader:
                self._lock.release()
            self._lock.drop()
            self.is_leader = self.store.dialect != "postgresql"

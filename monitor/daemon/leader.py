"""Which instance runs the scheduled sweeps and rules: a PostgreSQL advisory lock.

Every instance runs a sink; only the holder of the lock runs the jobs that
must not run twice (sweeps, rule evaluation, notifications, housekeeping).
The lock is held by one dedicated session (:class:`monitor.store.leases.AdvisoryLock`):
when its instance dies, the connection drops, PostgreSQL releases the lock and another
instance takes it at its next attempt. On SQLite there is one instance, always the leader.
"""

from __future__ import annotations

import logging

from checks.errors import StoreError
from monitor.store import Store
from monitor.store.leases import AdvisoryLock

log = logging.getLogger("repmon.leader")

#: the advisory lock's key: "repmon" in ASCII
LEADER_LOCK = 0x7265706D6F6E


class Leadership:
    def __init__(self, store: Store, instance: str) -> None:
        self.store = store
        self.instance = instance
        self._lock = AdvisoryLock(store, LEADER_LOCK)
        self.is_leader = store.dialect != "postgresql"

    def refresh(self) -> bool:
        """Try to take (or confirm) the lock; return whether this instance leads now."""
        if self.store.dialect != "postgresql":
            return True
        was = self.is_leader
        try:
            if self.is_leader:
                self._lock.confirm()
            else:
                self.is_leader = self._lock.try_take()
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

    def release(self) -> None:
        if self.is_leader:
            self._lock.release()
        self._lock.drop()
        self.is_leader = self.store.dialect != "postgresql"

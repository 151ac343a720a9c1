"""Which instance runs the scheduled sweeps and rules: a PostgreSQL advisory lock.

Every instance runs a sink; only the holder of the lock runs the jobs that
must not run twice (sweeps, rule evaluation, notifications, housekeeping).
The lock is held by one dedicated session: when its instance dies, the
connection drops, PostgreSQL releases the lock and another instance takes it
at its next attempt. On SQLite there is one instance, always the leader.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from monitor.store import Store

log = logging.getLogger("repmon.leader")

#: the advisory lock's key: "repmon" in ASCII
LEADER_LOCK = 0x7265706D6F6E


class Leadership:
    def __init__(self, store: Store, instance: str) -> None:
        self.store = store
        self.instance = instance
        self._conn: sa.Connection | None = None
        self.is_leader = store.dialect != "postgresql"

    def refresh(self) -> bool:
        """Try to take (or confirm) the lock; return whether this instance leads now."""
        if self.store.dialect != "postgresql":
            return True
        was = self.is_leader
        try:
            if self._conn is None:
                self._conn = self.store.engine.connect()
            if self.is_leader:
                self._conn.execute(sa.text("SELECT 1"))
            else:
                got = self._conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK}
                ).scalar()
                self._conn.commit()
                self.is_leader = bool(got)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("leader lock connection lost: %s", exc.__class__.__name__)
            self._drop()
            self.is_leader = False
        if self.is_leader != was:
            log.info(
                "instance %s %s",
                self.instance,
                "is now the leader" if self.is_leader else "lost leadership",
            )
        return self.is_leader

    def release(self) -> None:
        if self._conn is not None and self.is_leader:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK})
                self._conn.commit()
            except sa.exc.SQLAlchemyError:
                pass
        self._drop()
        self.is_leader = self.store.dialect != "postgresql"

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except sa.exc.SQLAlchemyError:
                pass
            self._conn = None

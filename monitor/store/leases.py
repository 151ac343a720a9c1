"""Session-held PostgreSQL advisory locks: who among several instances does a thing.

An :class:`AdvisoryLock` holds one dedicated connection outside any transaction; the lock
lives as long as that session. When the instance dies, the connection drops, PostgreSQL
releases the lock and another instance takes it at its next attempt. A lost session raises
:class:`~checks.errors.StoreUnavailable` (the lock is gone with it), never a driver error.

An instance that is alive but makes no progress (stopped, wedged) keeps its session and so
the lock. Against that, the holder writes a heartbeat (``leader_heartbeat``, the database's
clock) from the lock's own session (:meth:`AdvisoryLock.beat`), and another instance that
finds it older than a bound ends that session (:meth:`AdvisoryLock.break_stale`,
``pg_terminate_backend``), which releases the lock.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from checks.errors import StoreError
from monitor.store.db import Store, translated
from monitor.store.schema import leader_heartbeat

#: the sessions holding a (session- or transaction-level) advisory lock on a bigint key
_HOLDERS = """
SELECT l.pid, a.state, EXTRACT(EPOCH FROM (clock_timestamp() - a.state_change)) AS idle
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = :hi AND l.objid::bigint = :lo
"""


class AdvisoryLock:
    """A session-level ``pg_advisory_lock`` on ``key`` (PostgreSQL only)."""

    def __init__(self, store: Store, key: int) -> None:
        self.store = store
        self.key = key
        self._conn: Connection | None = None

    def _session(self) -> Connection:
        if self._conn is None:
            self._conn = self.store.engine.connect()
        return self._conn

    def try_take(self) -> bool:
        """Take the lock if it is free; ``False`` when another session holds it."""
        try:
            with translated(self.store.url):
                conn = self._session()
                got = conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}
                ).scalar()
                conn.commit()
        except StoreError:
            self.drop()
            raise
        return bool(got)

    def confirm(self) -> None:
        """Check that the session holding the lock is still alive; raises
        :class:`~checks.errors.StoreUnavailable` when it is lost (and the lock with it)."""
        try:
            with translated(self.store.url):
                conn = self._session()
                conn.execute(sa.text("SELECT 1"))
                conn.commit()
        except StoreError:
            self.drop()
            raise

    def beat(self, instance: str) -> None:
        """Record, from the session holding the lock, that its holder is making progress
        (``leader_heartbeat``: the session's backend pid and the database's clock)."""
        hb = leader_heartbeat.c
        stmt = postgresql.insert(leader_heartbeat).values(
            lock_key=self.key,
            instance=instance[:128],
            backend_pid=sa.func.pg_backend_pid(),
            beat_at=sa.func.clock_timestamp(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[hb.lock_key],
            set_={
                "instance": stmt.excluded.instance,
                "backend_pid": stmt.excluded.backend_pid,
                "beat_at": stmt.excluded.beat_at,
            },
        )
        try:
            with translated(self.store.url):
                conn = self._session()
                conn.execute(stmt)
                conn.commit()
        except StoreError:
            self.drop()
            raise

    def break_stale(self, older_than: float, also: Sequence[int] = ()) -> list[int]:
        """End the session holding the lock when its heartbeat is older than ``older_than``
        seconds (by the database's clock); return the backend pids terminated.

        With it, the holders of the transaction-scoped advisory locks ``also`` that sit idle
        in a transaction for longer than that (the same wedged instance, stopped inside an
        evaluation) are ended too, or the next leader would wait on them for ever. Nothing is
        ended when there is no heartbeat (a holder that does not write one cannot be judged)
        or when the recorded session no longer holds the lock.
        """
        hb = leader_heartbeat.c
        age = sa.extract("epoch", sa.func.clock_timestamp() - hb.beat_at)
        victims: list[int] = []
        with translated(self.store.url), self.store.engine.connect() as conn:
            row = conn.execute(
                sa.select(hb.backend_pid, age.label("age")).where(hb.lock_key == self.key)
            ).first()
            if row is None or float(row.age) <= older_than:
                return []
            holders = self._holders(conn, self.key)
            if int(row.backend_pid) not in holders:
                return []
            victims.append(int(row.backend_pid))
            for key in also:
                for pid, (state, idle) in self._holders(conn, key).items():
                    if state and state.startswith("idle in transaction") and idle > older_than:
                        victims.append(pid)
            for pid in dict.fromkeys(victims):
                conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            conn.commit()
        return list(dict.fromkeys(victims))

    @staticmethod
    def _holders(conn: Connection, key: int) -> dict[int, tuple[str, float]]:
        params = {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}
        return {
            int(pid): (str(state or ""), float(idle or 0))
            for pid, state, idle in conn.execute(sa.text(_HOLDERS), params)
        }

    def release(self) -> None:
        """Give the lock back and close the session; a session already lost is fine."""
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            except sa.exc.SQLAlchemyError:
                pass
        self.drop()

    def drop(self) -> None:
        """Close the session without unlocking (PostgreSQL releases a dropped session's locks)."""
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except sa.exc.SQLAlchemyError:
                pass
            self._conn = None

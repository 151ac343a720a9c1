"""Session-held PostgreSQL advisory locks: who among several instances does a thing.

An :class:`AdvisoryLock` holds one dedicated connection outside any transaction; the lock
lives as long as that session. When the instance dies, the connection drops, PostgreSQL
releases the lock and another instance takes it at its next attempt. A lost session raises
:class:`~checks.errors.StoreUnavailable` (the lock is gone with it), never a driver error.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from checks.errors import StoreError
from monitor.store.db import Store, translated


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

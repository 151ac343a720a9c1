"""The SQL store: one SQLAlchemy Core metadata, SQLite or PostgreSQL with the same code.

Tables are declared by the modules of this package on :data:`metadata`;
:meth:`Store.open` creates what is missing. Times are stored as UTC
timezone-aware datetimes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from checks.errors import StoreError

metadata = sa.MetaData()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on both engines (SQLite drops the zone otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def engine_url(url: str) -> str:
    """``postgresql://`` uses psycopg 3; sqlite URLs are kept."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Store:
    """A connection pool to the configured database with every table created."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        # import the table modules so that metadata knows every table
        from monitor.store import tables  # noqa: F401

        kwargs: dict[str, object] = {"future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
        try:
            engine = sa.create_engine(engine_url(url), **kwargs)
            if engine.dialect.name == "sqlite":
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            _create_tables(engine)
        except sa.exc.SQLAlchemyError as exc:
            safe = sa.engine.make_url(engine_url(url)).render_as_string(hide_password=True)
            cause = getattr(exc, "orig", None) or exc
            raise StoreError(f"store {safe}: {exc.__class__.__name__}: {cause}") from None
        return cls(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed on success, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()


#: advisory lock key serialising schema creation between instances starting at once
_SCHEMA_LOCK = 0x7265706D6F6F


def _create_tables(engine: sa.Engine) -> None:
    """Create missing tables; on PostgreSQL under an advisory lock, since two instances
    starting together would otherwise race on the catalog."""
    if engine.dialect.name != "postgresql":
        metadata.create_all(engine)
        return
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _SCHEMA_LOCK})
        try:
            metadata.create_all(conn)
            conn.commit()
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _SCHEMA_LOCK})
            conn.commit()


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()

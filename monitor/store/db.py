"""The SQL store: one engine on SQLite or PostgreSQL, its transactions, and its errors.

The tables are declared in :mod:`monitor.store.schema`; :meth:`Store.open` creates what is
missing and runs the migration steps (:mod:`monitor.store.migrate`). Every failure of the
database reaches the caller as one of repmon's own errors (:mod:`checks.errors`), never as a
SQLAlchemy exception:

- :class:`~checks.errors.StoreUnavailable`: the database cannot be reached now, the
  connection was lost, or it is locked or read-only (``OperationalError``,
  ``InterfaceError``, a DBAPI disconnect, a pool timeout): try again later;
- :class:`~checks.errors.StoreConflict`: a write collided with another writer on a unique
  key (``IntegrityError``): re-read and retry;
- :class:`~checks.errors.StoreError`: anything else the database refused.

The translation happens in :meth:`Store.open` and :meth:`Store.begin` (so in every query
function of this package, which all run inside one of them) and in :func:`translated` for
the few sessions held outside a transaction (:mod:`monitor.store.leases`). Messages name the
URL with its password hidden.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from checks.errors import StoreConflict, StoreError, StoreUnavailable
from collectors.config import mask_url
from monitor.store.migrate import upgrade

#: One open transaction of the store. Code outside ``monitor/store/`` only passes it on to
#: the store's functions (those that must share one transaction take it); it never runs
#: statements on it.
Tx: TypeAlias = Connection

#: sqlite3 messages of a database another writer holds or that cannot be written now
_UNAVAILABLE_TEXT = ("database is locked", "database table is locked", "readonly database")


def engine_url(url: str) -> str:
    """``postgresql://`` uses psycopg 3; sqlite URLs are kept."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def safe_url(url: str) -> str:
    """The URL as it may be shown: the password replaced by ``***`` wherever it is written
    (``user:pass@``, ``?password=``)."""
    return mask_url(url)


def _password(url: str) -> str | None:
    try:
        return sa.engine.make_url(engine_url(url)).password
    except Exception:
        return None


def store_error(exc: BaseException, url: str) -> StoreError:
    """The repmon error for a SQLAlchemy error raised while using the store at ``url``."""
    cause = getattr(exc, "orig", None) or exc
    text = f"store {safe_url(url)}: {exc.__class__.__name__}: {cause}".strip()
    password = _password(url)
    if password:
        text = text.replace(str(password), "***")
    if isinstance(exc, sa.exc.IntegrityError):
        return StoreConflict(text)
    invalidated = isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    if (
        invalidated
        or isinstance(
            exc,
            sa.exc.OperationalError
            | sa.exc.InterfaceError
            | sa.exc.DisconnectionError
            | sa.exc.TimeoutError,
        )
        or any(t in str(cause) for t in _UNAVAILABLE_TEXT)
    ):
        return StoreUnavailable(text)
    return StoreError(text)


@contextmanager
def translated(url: str) -> Iterator[None]:
    """Run a block whose SQLAlchemy errors become repmon's store errors (the cause kept)."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise store_error(exc, url) from exc


class Store:
    """A connection pool to the configured database with every table created."""

    def __init__(self, engine: Engine, url: str | None = None) -> None:
        self.engine = engine
        self.url = url if url is not None else str(engine.url)

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect, create missing tables and migrate; raises :class:`StoreUnavailable`
        (cannot reach or lock it) or :class:`StoreError` (cannot use it), never a SQLAlchemy
        error."""
        kwargs: dict[str, object] = {}
        if url.startswith("sqlite") and "timeout=" not in url:
            kwargs["connect_args"] = {"timeout": 30}
        try:
            engine = sa.create_engine(engine_url(url), **kwargs)
            if engine.dialect.name == "sqlite":
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            upgrade(engine)  # missing tables, then the migration steps (monitor/store/migrate.py)
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, url) from None
        return cls(engine, url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Tx]:
        """A transaction: committed on success, rolled back on error. SQLAlchemy errors,
        the commit's included, leave it as :class:`StoreUnavailable`, :class:`StoreConflict`
        or :class:`StoreError`."""
        with translated(self.url), self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()

"""Schema migrations: a ``schema_version`` table and ordered steps, run by ``Store.open``.

:func:`upgrade` creates the tables that are missing (new tables need no step) and then runs,
in order and each in its own transaction, every step newer than the version recorded in
``schema_version``. A database without that table is either new (no ``check_state``: it is
created whole and stamped with the latest version) or older than this framework (version 0:
every step runs). An up-to-date database is only read, so a read-only store still opens.

On PostgreSQL the whole upgrade runs under the schema's advisory lock, so instances starting
together neither race on the catalog nor run a step twice; on SQLite each step runs
``BEGIN IMMEDIATE`` (one writer) and re-reads the version first.

A step is a function of a connection inside the step's transaction. It names the columns it
touches with ``sa.table``/``sa.column`` of its own, not the tables of ``schema.py``, so a later
change to those declarations cannot change what an old step does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from monitor.store.schema import UtcDateTime, metadata, schema_version, sweep_coverage

#: advisory lock key serialising schema creation and migration between instances
SCHEMA_LOCK = 0x7265706D6F6F


@dataclass(frozen=True)
class Step:
    version: int
    title: str
    run: Callable[[sa.Connection], None]


def _v1_coverage(conn: sa.Connection) -> None:
    """State that grows with problems, not addresses: ``sweep_coverage`` records what each
    bulk sweep covered; the clean ``ok`` rows of ``dnsbl`` go.

    Kept: problems, rows with an unknown newer than their last answer, ok rows a case that is
    not resolved still reads (its clear verdict), every other check's rows, and all history
    (state changes, episodes, sweep runs). One ``migrated`` coverage row per zone is rebuilt
    from the rows as they were (how many pairs, listed, unknown, which pools, when), so that
    the first sweep after the upgrade knows the zones were covered.
    """
    sweep_coverage.create(conn, checkfirst=True)
    state = sa.table(
        "check_state",
        sa.column("target"),
        sa.column("check"),
        sa.column("source"),
        sa.column("status"),
        sa.column("pool"),
        sa.column("checked_at"),
        sa.column("last_unknown_at"),
    )
    runs = sa.table("sweep_runs", sa.column("id"), sa.column("sweep"), sa.column("started_at"))
    case = sa.table(
        "cases", sa.column("rule"), sa.column("subject"), sa.column("source"), sa.column("state")
    )
    c = state.c
    dnsbl = c.check == "dnsbl"
    pending = sa.and_(c.last_unknown_at.is_not(None), c.last_unknown_at > c.checked_at)
    per_zone = conn.execute(
        sa.select(
            c.source,
            sa.func.count().label("covered"),
            sa.func.sum(sa.case((c.status == "problem", 1), else_=0)).label("listed"),
            sa.func.sum(sa.case((pending, 1), else_=0)).label("unknown"),
            sa.func.min(c.checked_at).label("first"),
            sa.func.max(c.checked_at).label("last"),
        )
        .where(dnsbl)
        .group_by(c.source)
    ).all()
    pools: dict[str, list[str]] = {}
    for row in conn.execute(sa.select(c.source, c.pool).where(dnsbl).distinct()):
        if row.pool:
            pools.setdefault(row.source, []).append(row.pool)
    run_id = conn.execute(
        sa.select(runs.c.id)
        .where(runs.c.sweep == "dnsbl")
        .order_by(runs.c.started_at.desc())
        .limit(1)
    ).scalar()
    coverage = sa.table(
        "sweep_coverage",
        *(sa.column(n) for n in ("run_id", "check", "source", "scope", "complete", "covered")),
        *(sa.column(n) for n in ("listed", "unknown", "selftest_ok", "failed_chunks", "error")),
        sa.column("pools", sa.JSON()),
        sa.column("started_at", UtcDateTime()),
        sa.column("finished_at", UtcDateTime()),
    )
    if per_zone:
        conn.execute(
            coverage.insert(),
            [
                {
                    "run_id": run_id,
                    "check": "dnsbl",
                    "source": row.source,
                    "scope": "migrated",
                    "pools": sorted(pools.get(row.source, [])),
                    "started_at": _aware(row.first),
                    "finished_at": _aware(row.last),
                    "complete": True,
                    "covered": int(row.covered),
                    "listed": int(row.listed or 0),
                    "unknown": int(row.unknown or 0),
                    "selftest_ok": True,
                    "failed_chunks": 0,
                    "error": None,
                }
                for row in per_zone
            ],
        )
    case_open = (
        sa.select(sa.literal(1))
        .select_from(case)
        .where(
            case.c.rule == "dnsbl",
            case.c.subject == c.target,
            case.c.source == c.source,
            case.c.state != "resolved",
        )
        .exists()
    )
    conn.execute(state.delete().where(dnsbl, c.status == "ok", ~pending, ~case_open))


def _aware(value: object) -> dt.datetime:
    """A datetime read through ``sa.table`` (no type: SQLite gives text) as aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


#: every step, oldest first; append only (a step, once released, is never edited)
STEPS: tuple[Step, ...] = (
    Step(1, "sweep coverage; dnsbl keeps rows for problems and unknowns only", _v1_coverage),
)
LATEST = STEPS[-1].version


def current_version(conn: sa.Connection) -> int | None:
    """The recorded version; ``None`` when the database has no ``schema_version`` row."""
    if not sa.inspect(conn).has_table("schema_version"):
        return None
    return conn.execute(
        sa.select(schema_version.c.version).where(schema_version.c.id == 1)
    ).scalar()


def upgrade(engine: sa.Engine) -> list[int]:
    """Create missing tables and run the steps the database lacks; return the versions run."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK})
            conn.commit()
            try:
                return _upgrade(conn)
            finally:
                conn.rollback()
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK})
                conn.commit()
        return _upgrade(conn)


def _upgrade(conn: sa.Connection) -> list[int]:
    present = set(sa.inspect(conn).get_table_names())  # one query, not one per table
    existed = "check_state" in present
    versioned = "schema_version" in present
    conn.rollback()
    missing = [t for t in metadata.sorted_tables if t.name not in present]
    if missing:  # an up-to-date database is only read
        metadata.create_all(conn, tables=missing)
        conn.commit()
    version = current_version(conn) if versioned else None
    conn.rollback()
    if version is not None and version >= LATEST:
        return []
    done: list[int] = []
    while True:
        _lock(conn)
        version = current_version(conn)
        if version is None:
            version = 0 if existed else LATEST
            _stamp(conn, version, insert=True)
            if version == LATEST:
                conn.commit()
                return done
        step = next((s for s in STEPS if s.version > version), None)
        if step is None:
            conn.commit()
            return done
        try:
            step.run(conn)
            _stamp(conn, step.version)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        done.append(step.version)


def _lock(conn: sa.Connection) -> None:
    """Begin the step's transaction; on SQLite as the one writer (``BEGIN IMMEDIATE``)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _stamp(conn: sa.Connection, version: int, insert: bool = False) -> None:
    now = dt.datetime.now(dt.UTC)
    if insert:
        conn.execute(schema_version.insert().values(id=1, version=version, updated_at=now))
    else:
        conn.execute(
            schema_version.update()
            .where(schema_version.c.id == 1)
            .values(version=version, updated_at=now)
        )

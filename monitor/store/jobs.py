"""The scheduler's own record: last and next run of each job, per instance."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from monitor.store.db import Store
from monitor.store.schema import job_runs


def note_job(
    store: Store,
    job: str,
    instance: str,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    status: str = "",
    error: str | None = None,
    next_run: dt.datetime | None = None,
) -> None:
    """Upsert one job's row (only the given values change)."""
    values: dict[str, Any] = {}
    if start is not None:
        values["last_start"] = start
    if end is not None:
        values["last_end"] = end
        values["last_error"] = error
    if status:
        values["last_status"] = status
    if next_run is not None:
        values["next_run"] = next_run
    with store.begin() as conn:
        where = (job_runs.c.job == job) & (job_runs.c.instance == instance)
        if end is not None and status != "skipped":
            values["runs"] = job_runs.c.runs + 1
        n = conn.execute(job_runs.update().where(where).values(**values)).rowcount
        if n == 0:
            if "runs" in values:
                values["runs"] = 1
            try:
                with conn.begin_nested():
                    conn.execute(job_runs.insert().values(job=job, instance=instance, **values))
            except sa.exc.IntegrityError:
                conn.execute(job_runs.update().where(where).values(**values))


def job_table(store: Store) -> list[dict[str, Any]]:
    """Every job's row (job, instance, last_start, last_end, last_status, last_error,
    next_run, runs), by job then instance."""
    with store.begin() as conn:
        rows = conn.execute(sa.select(job_runs).order_by(job_runs.c.job, job_runs.c.instance))
        return [dict(r._mapping) for r in rows]

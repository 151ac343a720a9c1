"""Retention: what the housekeeping job deletes, and only that."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import sqlalchemy as sa

from monitor.config import Config, parse_duration
from monitor.store import Store, utcnow
from monitor.store.checks import problem_episodes, state_changes, sweep_runs
from monitor.store.feedback import dmarc_records, feedback_counts, feedback_events, sent_volume

log = logging.getLogger("repmon.housekeeping")


def housekeeping(store: Store, config: Config, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete rows and spooled files past ``[retention]``; return counts per kind."""
    now = now or utcnow()
    ret = config.retention
    fb = now - dt.timedelta(seconds=parse_duration(ret.feedback))
    hist = now - dt.timedelta(seconds=parse_duration(ret.history))
    out: dict[str, int] = {}
    with store.begin() as conn:
        for name, stmt in (
            ("feedback_events", feedback_events.delete().where(feedback_events.c.received_at < fb)),
            ("dmarc_records", dmarc_records.delete().where(dmarc_records.c.end < fb)),
            (
                "feedback_counts",
                feedback_counts.delete().where(feedback_counts.c.bucket_start < fb),
            ),
            ("sent_volume", sent_volume.delete().where(sent_volume.c.bucket_start < fb)),
            ("state_changes", state_changes.delete().where(state_changes.c.at < hist)),
            (
                "problem_episodes",
                problem_episodes.delete().where(
                    sa.and_(
                        problem_episodes.c.ended_at.is_not(None), problem_episodes.c.ended_at < hist
                    )
                ),
            ),
            ("sweep_runs", sweep_runs.delete().where(sweep_runs.c.started_at < hist)),
        ):
            out[name] = conn.execute(stmt).rowcount or 0
    out["spool_done_files"] = _prune_spool(
        Path(config.sink.spool) / "done", now - dt.timedelta(seconds=parse_duration(ret.spool_done))
    )
    log.info(
        "housekeeping: %s", ", ".join(f"{k}={v}" for k, v in out.items() if v) or "nothing to do"
    )
    return out


def _prune_spool(done: Path, before: dt.datetime) -> int:
    if not done.is_dir():
        return 0
    cutoff = before.timestamp()
    n = 0
    for entry in os.scandir(done):
        try:
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                n += 1
        except FileNotFoundError:
            continue
    return n

"""Retention: the rows the housekeeping job deletes, and only those.

Current state (``check_state``), open episodes, cases and the outbox are never deleted here.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from monitor.store.db import Store
from monitor.store.schema import (
    dmarc_records,
    feedback_counts,
    feedback_events,
    feedback_senders,
    postmaster_days,
    problem_episodes,
    sent_volume,
    snds_activity,
    snds_blocked_ranges,
    state_changes,
    sweep_runs,
)


def delete_expired(
    store: Store, feedback_before: dt.datetime, history_before: dt.datetime
) -> dict[str, int]:
    """Delete, in one transaction, feedback rows, counters, sent volume and the mailbox
    providers' daily rows older than ``feedback_before``, and history (state changes, ended
    episodes, sweep runs, cleared SNDS blocks) older than ``history_before``; return the rows
    deleted per table."""
    fb, hist = feedback_before, history_before
    ended = problem_episodes.c.ended_at
    out: dict[str, int] = {}
    with store.begin() as conn:
        for name, stmt in (
            ("feedback_events", feedback_events.delete().where(feedback_events.c.received_at < fb)),
            (
                "feedback_senders",
                feedback_senders.delete().where(feedback_senders.c.received_at < fb),
            ),
            ("dmarc_records", dmarc_records.delete().where(dmarc_records.c.end < fb)),
            (
                "feedback_counts",
                feedback_counts.delete().where(feedback_counts.c.bucket_start < fb),
            ),
            ("sent_volume", sent_volume.delete().where(sent_volume.c.bucket_start < fb)),
            ("state_changes", state_changes.delete().where(state_changes.c.at < hist)),
            (
                "problem_episodes",
                problem_episodes.delete().where(sa.and_(ended.is_not(None), ended < hist)),
            ),
            ("sweep_runs", sweep_runs.delete().where(sweep_runs.c.started_at < hist)),
            # the mailbox providers' daily data is feedback too; a cleared block is history
            ("snds_activity", snds_activity.delete().where(snds_activity.c.day < fb.date())),
            ("postmaster_days", postmaster_days.delete().where(postmaster_days.c.day < fb.date())),
            (
                "snds_blocked_ranges",
                snds_blocked_ranges.delete().where(
                    sa.and_(
                        snds_blocked_ranges.c.cleared_at.is_not(None),
                        snds_blocked_ranges.c.cleared_at < hist,
                    )
                ),
            ),
        ):
            out[name] = conn.execute(stmt).rowcount or 0
    return out

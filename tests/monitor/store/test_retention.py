"""Housekeeping deletes what is past the retention, the providers' daily rows included, and
nothing newer."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from monitor.store import Store
from monitor.store.retention import delete_expired
from monitor.store.schema import postmaster_days, snds_activity, snds_blocked_ranges

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def test_provider_rows_follow_the_retention(store: Store) -> None:
    old, new = dt.date(2025, 1, 1), dt.date(2026, 11, 29)
    with store.begin() as tx:
        for day in (old, new):
            tx.execute(
                snds_activity.insert().values(day=day, ip="192.0.2.1", seq=0, fetched_at=NOW)
            )
            tx.execute(postmaster_days.insert().values(domain="a.example", day=day, fetched_at=NOW))
        for first, cleared in (("192.0.2.8", NOW - dt.timedelta(days=500)), ("192.0.2.9", None)):
            tx.execute(
                snds_blocked_ranges.insert().values(
                    first=first, last=first, blocked=True, first_seen_at=NOW,
                    last_seen_at=NOW, cleared_at=cleared,
                )
            )  # fmt: skip
    cutoff = NOW - dt.timedelta(days=400)
    deleted = delete_expired(store, cutoff, cutoff)
    assert deleted["snds_activity"] == deleted["postmaster_days"] == 1
    assert deleted["snds_blocked_ranges"] == 1  # the still-blocked range stays
    with store.begin() as tx:
        assert tx.execute(sa.select(snds_activity.c.day)).scalars().all() == [new]
        assert tx.execute(sa.select(snds_blocked_ranges.c.first)).scalars().all() == ["192.0.2.9"]

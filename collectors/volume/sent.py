"""Sent volume: how many messages each sending IP sent, per hour (the rate rules' denominator).

An MTA (or anything that knows) reports counts with :func:`record_sent`;
the Postfix log reader (``collectors/postfix_log.py``), ``repmon volume add``
and the daemon's HTTP endpoint all call it. Counts add up within an hourly
bucket per (IP, source): reporting 10 then 5 for the same hour gives 15.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from checks.errors import UsageError
from monitor.store import Store
from monitor.store.feedback import BUCKET_SECONDS, sent_volume


class VolumeError(UsageError, ValueError):
    """A count that cannot be recorded: bad IP, negative count, naive time; says which."""


def bucket_of(at: dt.datetime) -> dt.datetime:
    """The start of the hourly bucket holding ``at`` (UTC)."""
    if at.tzinfo is None:
        raise VolumeError(f"time {at.isoformat()} has no timezone")
    ts = int(at.timestamp()) // BUCKET_SECONDS * BUCKET_SECONDS
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise VolumeError(f"{text!r} is not an IP address") from None


def record_sent(store: Store, ip: str, count: int, at: dt.datetime, source: str = "api") -> None:
    """Add ``count`` messages sent by ``ip`` in the hour holding ``at``, reported by ``source``.

    Raises :class:`VolumeError` for a bad IP, a negative count or a naive time.
    """
    record_many(store, {(_ip(ip), bucket_of(at)): count}, source)


def record_many(store: Store, counts: Mapping[tuple[str, dt.datetime], int], source: str) -> int:
    """Add many ``(ip, any time in the hour) -> count``; return the number of buckets touched."""
    merged: dict[tuple[str, dt.datetime], int] = {}
    for (ip, at), n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise VolumeError(f"count for {ip} must be a whole number >= 0, got {n!r}")
        key = (_ip(ip), bucket_of(at))
        merged[key] = merged.get(key, 0) + n
    if not source or len(source) > 32:
        raise VolumeError("source must be 1-32 characters")
    rows = [
        {"bucket_start": b, "sending_ip": ip, "source": source, "count": n}
        for (ip, b), n in merged.items()
    ]
    if not rows:
        return 0
    with store.begin() as conn:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(sent_volume)
        stmt = stmt.on_conflict_do_update(
            index_elements=["bucket_start", "sending_ip", "source"],
            set_={"count": sent_volume.c.count + stmt.excluded.count},
        )
        for row in rows:
            conn.execute(stmt, row)
    return len(rows)


def sent_total(store: Store, ip: str, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """source -> messages ``ip`` sent in ``[start, end)`` (whole buckets)."""
    q = (
        sa.select(sent_volume.c.source, sa.func.sum(sent_volume.c.count))
        .where(
            sent_volume.c.sending_ip == _ip(ip),
            sent_volume.c.bucket_start >= start,
            sent_volume.c.bucket_start < end,
        )
        .group_by(sent_volume.c.source)
    )
    with store.begin() as conn:
        return {src: int(n) for src, n in conn.execute(q)}

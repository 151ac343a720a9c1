"""Sent volume: how many messages each sending IP sent, per hour (the rate rules' denominator).

An MTA (or anything that knows) reports counts: ``repmon volume add``, the daemon's
``POST /v1/volume`` and the Postfix log reader (:mod:`collectors.volume.postfix_log`). This
module validates them and merges them into :class:`SentCount` rows, one per (hourly bucket,
IP, source); the application adds those to the store
(``monitor.store.volume.add_sent``), where counts add up within a bucket: reporting 10 then
5 for the same hour gives 15.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from checks.errors import UsageError

#: length of one bucket, in seconds (the store's ``BUCKET_SECONDS``: collectors cannot
#: import it, tests/monitor/store/test_schema.py checks that the two agree)
BUCKET_SECONDS = 3600


class VolumeError(UsageError, ValueError):
    """A count that cannot be recorded: bad IP, negative count, naive time; says which."""


@dataclass(frozen=True, slots=True)
class SentCount:
    """Messages ``sending_ip`` sent in the hour starting ``bucket_start``, per ``source``."""

    bucket_start: dt.datetime
    sending_ip: str
    source: str
    count: int


def bucket_of(at: dt.datetime) -> dt.datetime:
    """The start of the hourly bucket holding ``at`` (UTC)."""
    if at.tzinfo is None:
        raise VolumeError(f"time {at.isoformat()} has no timezone")
    ts = int(at.timestamp()) // BUCKET_SECONDS * BUCKET_SECONDS
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def normal_ip(text: str) -> str:
    """``text`` as an IP address in its normal form; raises :class:`VolumeError` if it is none."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise VolumeError(f"{text!r} is not an IP address") from None


#: messages one IP can be said to send in one hour: far above any real MTA, and within the
#: store's 32-bit counters
MAX_SENT = 10**9


def sent_count(ip: str, count: int, at: dt.datetime, source: str = "api") -> SentCount:
    """``count`` messages sent by ``ip`` in the hour holding ``at``, reported by ``source``.

    Raises :class:`VolumeError` for a bad IP, a negative count or a naive time.
    """
    [row] = sent_counts({(normal_ip(ip), bucket_of(at)): count}, source)
    return row


def sent_counts(counts: Mapping[tuple[str, dt.datetime], int], source: str) -> list[SentCount]:
    """Many ``(ip, any time in the hour) -> count``, merged into one row per IP and hour.

    Raises :class:`VolumeError` for a bad IP, count, time or source (1-32 characters).
    """
    merged: dict[tuple[str, dt.datetime], int] = {}
    for (ip, at), n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_SENT:
            raise VolumeError(
                f"count for {ip} must be a whole number from 0 to {MAX_SENT:,}, got {n!r}"
            )
        key = (normal_ip(ip), bucket_of(at))
        merged[key] = merged.get(key, 0) + n
        if merged[key] > MAX_SENT:
            raise VolumeError(f"{ip}: more than {MAX_SENT:,} messages in one hour")
    if not source or len(source) > 32:
        raise VolumeError("source must be 1-32 characters")
    return [SentCount(b, ip, source, n) for (ip, b), n in merged.items()]

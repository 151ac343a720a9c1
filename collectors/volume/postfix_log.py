"""Count Postfix ``status=sent`` deliveries per sending IP from its log, per hour.

Postfix does not log the local address a delivery left from, so the sending IP
comes from a mapping of the syslog tag: with one ``smtp`` transport per IP
(``-o smtp_bind_address=203.0.113.7 -o syslog_name=postfix-out1`` in
master.cf, or one Postfix instance per IP), the tag of each delivery line
(``postfix-out1/smtp``) says which IP sent it. ``[rules.volume] postfix_ips``
maps a full tag or an instance name (the tag without its last part) to an IP.

Lines read (classic syslog, RFC 3339 and journald short-iso stamps)::

    Nov 28 10:00:01 mx1 postfix-out1/smtp[4242]: 4Q1: to=<a@b.example>, ..., status=sent (250 ok)
    2026-11-28T10:00:01.5+00:00 mx1 postfix/out1/smtp[4242]: 4Q1: to=<...>, ..., status=sent (...)

Only the ``smtp`` service counts (``lmtp``, ``local``, ``virtual`` and ``pipe``
deliveries are not mail leaving a sending IP). A sent line whose tag has no
mapping is counted under ``unmapped`` and not recorded: guessing an IP would
put one IP's volume under another's rates. Classic syslog stamps carry no year
nor zone: they are read in ``tz`` (UTC by default) and the year that puts
them not after ``now`` (plus a day of clock skew).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

_LINE = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2}\s+\d{1,2}\s+\d\d:\d\d:\d\d|\d{4}-\d\d-\d\d[T ]\S+)\s+"
    r"(?P<host>\S+)\s+(?P<tag>[^\s\[]+)\[\d+\]:\s+[0-9A-Za-z]+:\s+to=<[^>]*>.*?"
    r"\bstatus=sent\b"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


@dataclass(slots=True)
class PostfixCounts:
    """What one read found; ``counts`` is ``(ip, hour) -> deliveries``."""

    counts: Counter[tuple[str, dt.datetime]] = field(default_factory=Counter)
    sent_lines: int = 0
    #: syslog tag -> sent lines with no IP mapping
    unmapped: Counter[str] = field(default_factory=Counter)
    bad_time: int = 0
    #: byte offset after the last complete line read (to resume from)
    end_offset: int = 0


def ip_for_tag(tag: str, mapping: Mapping[str, str]) -> str | None:
    """The IP of a syslog tag: the full tag first, then the instance (tag minus its service)."""
    if tag in mapping:
        return mapping[tag]
    instance = tag.rpartition("/")[0]
    return mapping.get(instance) if instance else None


def parse_time(text: str, now: dt.datetime, tz: dt.tzinfo = dt.UTC) -> dt.datetime | None:
    """A log stamp as an aware datetime; ``None`` when it cannot be read."""
    if text[:4].isdigit():
        try:
            t = dt.datetime.fromisoformat(text.replace(" ", "T"))
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=tz)
    parts = text.split()
    try:
        month = _MONTHS[parts[0]]
        day = int(parts[1])
        hh, mm, ss = (int(x) for x in parts[2].split(":"))
        t = dt.datetime(now.year, month, day, hh, mm, ss, tzinfo=tz)
    except (KeyError, ValueError, IndexError):
        return None
    if t > now + dt.timedelta(days=1):  # December lines read in January
        t = t.replace(year=now.year - 1)
    return t


def count_lines(
    lines: Iterable[str],
    mapping: Mapping[str, str],
    now: dt.datetime,
    tz: dt.tzinfo = dt.UTC,
    result: PostfixCounts | None = None,
) -> PostfixCounts:
    """Tally ``status=sent`` smtp deliveries per (IP, hour) from log lines."""
    out = result or PostfixCounts()
    for line in lines:
        m = _LINE.match(line)
        if m is None:
            continue
        tag = m.group("tag")
        if tag.rpartition("/")[2] != "smtp":
            continue
        out.sent_lines += 1
        ip = ip_for_tag(tag, mapping)
        if ip is None:
            out.unmapped[tag] += 1
            continue
        at = parse_time(m.group("ts"), now, tz)
        if at is None:
            out.bad_time += 1
            continue
        hour = at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
        out.counts[(ip, hour)] += 1
    return out


def read_log(
    path: str | os.PathLike[str],
    mapping: Mapping[str, str],
    now: dt.datetime,
    offset: int = 0,
    tz: str = "UTC",
) -> PostfixCounts:
    """Read ``path`` from byte ``offset`` (0 when the file is shorter: it was rotated).

    A last line without its newline is left for the next read. Raises OSError
    when the file cannot be read; undecodable bytes are replaced, not fatal.
    """
    zone: dt.tzinfo = dt.UTC if tz.upper() == "UTC" else ZoneInfo(tz)
    out = PostfixCounts()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if offset > size:
            offset = 0
        fh.seek(offset)
        pos = offset
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            pos += len(raw)
            count_lines([raw.decode("utf-8", "replace")], mapping, now, zone, out)
    out.end_offset = pos
    return out

"""The two SNDS automated-access exports, read from their published CSV layouts.

Data export (``data.aspx``): no header row, CRLF line ends, one row per IP with these
columns, in order::

    0 IP address          5 message recipients    10 trap hits
    1 activity start      6 filter result         11 sample HELO
    2 activity end        7 complaint rate        12 JMR P1 sender
    3 RCPT commands       8 trap period start     13 comments
    4 DATA commands       9 trap period end

IP status export (``ipStatus.aspx``): ``first IP, last IP, blocked (Yes/No), reason``.

A row that cannot be read makes the whole file unreadable (:class:`ParseError` naming the
line): a changed layout must show up as ``unknown``, never as half the data read as clean.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import re

from checks.errors import ParseError
from collectors.snds.model import BlockedRange, FilterResult, IpActivity

DATA_COLUMNS = 14
#: rows this short lack the trap-hit count; the three free-text columns may be cut off
MIN_DATA_COLUMNS = 11

_TIME_FORMATS = ("%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%m/%d/%Y")
_RATE = re.compile(r"^(?P<op>[<>]?)\s*(?P<a>\d+(?:\.\d+)?)(?:\s*-\s*(?P<b>\d+(?:\.\d+)?))?\s*%?$")
_COLOURS: dict[str, FilterResult] = {"GREEN": "GREEN", "YELLOW": "YELLOW", "RED": "RED"}


def looks_like_html(text: str) -> bool:
    """True for a web page (SNDS answers an expired key with its sign-in page)."""
    head = text.lstrip("\ufeff \t\r\n")[:512].lower()
    return head.startswith("<") or "<html" in head or "<!doctype" in head


def _rows(text: str, what: str) -> list[tuple[int, list[str]]]:
    if looks_like_html(text):
        raise ParseError(f"SNDS {what}: a web page, not CSV")
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    out = []
    for fields in reader:
        if not any(f.strip() for f in fields):
            continue
        out.append((reader.line_num, fields))
    return out


def _time(text: str, line: int, column: str) -> dt.datetime | None:
    if not text:
        return None
    for fmt in _TIME_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ParseError(
        f"SNDS data line {line}: {column} {text!r} is not a date such as 5/1/2024 3:00 PM"
    )


def _count(text: str, line: int, column: str) -> int | None:
    if not text:
        return None
    try:
        value = int(text.replace(",", ""))
    except ValueError:
        raise ParseError(f"SNDS data line {line}: {column} {text!r} is not a number") from None
    if value < 0:
        raise ParseError(f"SNDS data line {line}: {column} is negative")
    return value


def complaint_rate(text: str) -> tuple[float | None, bool]:
    """``"< 0.1%"`` -> (0.001, True); ``"0.3%"`` -> (0.003, False); ``"1-2%"`` -> (0.02, False).

    The ratio is the upper end of what was published (a bound for ``<`` and ranges) and the
    flag says the true value is below it. ``(None, False)`` when the column is empty or reads
    otherwise (``"-"``, ``"n/a"``).
    """
    m = _RATE.match(text.strip())
    if not m:
        return None, False
    upper = float(m["b"] or m["a"]) / 100
    return upper, m["op"] == "<"


def _ip(text: str, where: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ParseError(f"{where}: {text!r} is not an IP address") from None


def parse_activity(text: str, day: dt.date) -> list[IpActivity]:
    """Rows of one day's data export (``day`` is the date it was asked for)."""
    out = []
    for line, f in _rows(text, "data export"):
        if len(f) < MIN_DATA_COLUMNS:
            raise ParseError(f"SNDS data line {line}: {len(f)} columns, expected {DATA_COLUMNS}")
        if len(f) > DATA_COLUMNS:
            # an unquoted comma in the comments: keep it as text rather than fail the file
            f = [*f[: DATA_COLUMNS - 1], ",".join(f[DATA_COLUMNS - 1 :])]
        f = [v.strip() for v in f] + [""] * (DATA_COLUMNS - len(f))
        rate, below = complaint_rate(f[7])
        out.append(
            IpActivity(
                day=day,
                ip=_ip(f[0], f"SNDS data line {line}"),
                activity_start=_time(f[1], line, "activity start"),
                activity_end=_time(f[2], line, "activity end"),
                rcpt_commands=_count(f[3], line, "RCPT commands"),
                data_commands=_count(f[4], line, "DATA commands"),
                message_recipients=_count(f[5], line, "message recipients"),
                filter_result=_COLOURS.get(f[6].upper(), ""),
                complaint_rate=rate,
                complaint_rate_below=below,
                complaint_rate_text=f[7],
                trap_start=_time(f[8], line, "trap period start"),
                trap_end=_time(f[9], line, "trap period end"),
                trap_hits=_count(f[10], line, "trap hits") or 0,
                sample_helo=f[11],
                jmr_p1_sender=f[12],
                comments=f[13],
            )
        )
    return out


_YES = {"yes", "y", "true", "1", "blocked"}
_NO = {"no", "n", "false", "0"}


def parse_ip_status(text: str) -> list[BlockedRange]:
    """Ranges of the IP status export; an empty file means nothing is blocked."""
    out = []
    for line, f in _rows(text, "IP status export"):
        where = f"SNDS IP status line {line}"
        reason = ",".join(f[3:]).strip()
        f = [v.strip() for v in f]
        if len(f) < 3:
            raise ParseError(f"{where}: {len(f)} columns, expected 4")
        first, last = _ip(f[0], where), _ip(f[1], where)
        lo, hi = ipaddress.ip_address(first), ipaddress.ip_address(last)
        if lo.version != hi.version or int(lo) > int(hi):
            raise ParseError(f"{where}: {first}..{last} is not a range")
        flag = f[2].lower()
        if flag not in _YES | _NO:
            raise ParseError(f"{where}: blocked {f[2]!r} is neither Yes nor No")
        out.append(BlockedRange(first, last, flag in _YES, reason))
    return out

"""rbldnsd's special lines: $SOA, $NS, $TTL, $MAXRANGE4, $TIMESTAMP, ``$n`` and ``$=``.

A line starting with ``$`` (or ``#$``, ``;$``, ``:$`` — so that rbldns files work too) is a
special. Those about serving the zone (``$SOA``, ``$NS``, ``$TTL``) are checked for form and
otherwise ignored: they change nothing that is listed. The others matter:

* ``$MAXRANGE4 n`` / ``$MAXRANGE4 /len`` — later entries covering ``n`` addresses or more
  are refused; the limit can shrink, never grow;
* ``$TIMESTAMP stamp [expires|+duration]`` — rbldnsd refuses data stamped in the future and
  stops serving it after its expiry;
* ``$0``..``$9 text`` — TXT substitution variables, ``$= text`` the base TXT template; the
  first definition in a dataset wins, wherever in the file it stands.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass

from checks.dnsbl.mirror.answers import Values
from checks.dnsbl.mirror.syntax import SPACE

_TIME = re.compile(r"([0-9]+)([wWdDhHmMsS]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_STAMP = re.compile(
    r"([0-9]{1,4})[:-]?([0-9]{1,2})[:-]?([0-9]{1,2})"
    r"(?:[:-]?([0-9]{1,2})(?:[:-]?([0-9]{1,2})(?:[:-]?([0-9]{1,2}))?)?)?"
)


def duration(text: str) -> int | None:
    """Seconds in a time like ``3600``, ``1h``, ``2d`` or ``1w``; None if not one."""
    m = _TIME.fullmatch(text)
    if m is None:
        return None
    return int(m.group(1)) * _UNIT[m.group(2).lower()]


def stamp(text: str) -> float | None:
    """A ``$TIMESTAMP`` time (``yyyy:mm:dd[:hh[:mi[:ss]]]``, separators optional), in Unix
    seconds; 0 for "none" (``0`` or ``-``); None if not one."""
    if text in ("0", "-", ":"):
        return 0.0
    m = _STAMP.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    if not (1970 <= y <= 2038 and 1 <= mo <= 12 and h <= 23 and mi <= 59 and s <= 59):
        return None
    if not 1 <= d <= calendar.monthrange(y, mo)[1]:
        return None
    return float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))


@dataclass(slots=True)
class Specials:
    """What one dataset's special lines have set so far."""

    values: Values
    maxrange4: int = 0
    timestamp: float | None = None
    expires: float | None = None

    def read(self, body: str) -> tuple[bool, str | None]:
        """Take one special line (after its ``$``): (understood, a warning to report)."""
        head, rest = body, None
        for k, c in enumerate(body):
            if c in SPACE:
                head, rest = body[:k], body[k:].lstrip(SPACE)
                break
        word = head.lower()
        if rest is None:
            return False, None  # rbldnsd wants a blank and a value after the keyword
        if word in ("soa", "ns", "nameserver", "ttl"):
            fields = rest.split()
            ok = bool(fields) and duration(fields[0]) is not None
            if word == "soa":
                ok &= len(fields) == 8
            elif word == "ttl":
                ok &= len(fields) == 1
            return ok, None
        if word == "maxrange4":
            return self._maxrange(rest)
        if word == "timestamp":
            return self._timestamp(rest), None
        if len(head) == 1 and (head == "=" or (head.isdigit() and head.isascii())):
            if head == "=":
                self.values.base = self.values.base or rest
            elif self.values.variables[int(head)] is None:
                self.values.variables[int(head)] = rest
            return True, None
        return False, None  # $DATASET belongs to "combined" datasets, not read here

    def _maxrange(self, rest: str) -> tuple[bool, str | None]:
        cidr = rest.startswith("/")
        digits = rest[1:] if cidr else rest
        if not digits.isdigit() or not digits.isascii() or int(digits) == 0:
            return False, None
        limit = int(digits)
        if cidr:
            if limit > 32:
                return False, None
            limit = 1 << (32 - limit)
        if self.maxrange4 and self.maxrange4 < limit:
            return True, f"$MAXRANGE4 can only shrink ({self.maxrange4} kept)"
        self.maxrange4 = limit
        return True, None

    def _timestamp(self, rest: str) -> bool:
        parts = rest.split(None, 1)
        at = stamp(parts[0])
        if at is None:
            return False
        expires: float | None = 0.0
        if len(parts) > 1:
            if parts[1].startswith("+"):
                rel = duration(parts[1][1:])
                if not at or not rel:
                    return False
                expires = at + rel
            else:
                expires = stamp(parts[1])
                if expires is None:
                    return False
        if at:
            self.timestamp = at
        if expires and (self.expires is None or expires < self.expires):
            self.expires = expires
        return True

"""What the SNDS collector hands on: one row per IP and day, and the blocked ranges.

Parsers fill the numbers; :func:`collectors.snds.collect.attribute` adds pool and customer
from the inventory afterwards. IPs that are not in the inventory are kept (``watched`` False).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

FilterResult = Literal["GREEN", "YELLOW", "RED", ""]


@dataclass(frozen=True, slots=True)
class IpActivity:
    """One row of the SNDS data export: what Outlook.com saw from one IP on one day.

    Times are as SNDS writes them (it names no time zone), so they carry no tzinfo.
    ``complaint_rate`` is a ratio (0.001 = 0.1 %); a published ``"< 0.1%"`` becomes 0.001 with
    ``complaint_rate_below`` set: the true value is under that floor, not equal to it.
    """

    day: dt.date
    ip: str
    activity_start: dt.datetime | None
    activity_end: dt.datetime | None
    #: None when SNDS left the column empty
    rcpt_commands: int | None
    data_commands: int | None
    message_recipients: int | None
    #: "" when the column was empty or not one of the three colours
    filter_result: FilterResult
    complaint_rate: float | None
    complaint_rate_below: bool
    complaint_rate_text: str
    trap_start: dt.datetime | None
    trap_end: dt.datetime | None
    #: SNDS leaves the trap columns empty when no trap was hit: that is 0 here
    trap_hits: int
    sample_helo: str
    #: the envelope sender (P1 MAIL FROM) of a sample junk-mail report
    jmr_p1_sender: str
    comments: str
    pool: str = ""
    customer: str = ""
    #: the IP is in the inventory
    watched: bool = False


@dataclass(frozen=True, slots=True)
class BlockedRange:
    """One row of the IP status export: an inclusive range ``first``..``last``.

    Kept as its two ends: a blocked /16 is one object, never 65 536 rows. :meth:`networks`
    gives the same range as at most a few dozen CIDR blocks.
    """

    first: str
    last: str
    blocked: bool
    reason: str
    pool: str = ""
    customer: str = ""
    #: how many inventory IPs fall inside
    watched_ips: int = 0

    @property
    def bounds(self) -> tuple[IPAddress, IPAddress]:
        return ipaddress.ip_address(self.first), ipaddress.ip_address(self.last)

    @property
    def size(self) -> int:
        lo, hi = self.bounds
        return int(hi) - int(lo) + 1

    def networks(self) -> list[IPNetwork]:
        lo, hi = self.bounds
        return list(ipaddress.summarize_address_range(lo, hi))

    def __contains__(self, ip: object) -> bool:
        if isinstance(ip, str):
            ip = ipaddress.ip_address(ip)
        lo, hi = self.bounds
        return isinstance(ip, type(lo)) and int(lo) <= int(ip) <= int(hi)

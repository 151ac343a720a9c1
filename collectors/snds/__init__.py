"""Microsoft SNDS: what Outlook.com saw from each sending IP per day, and which IPs it blocks.

Config ``[snds]`` (:class:`SndsConfig`); the job calls :func:`collect_snds`, which returns an
:class:`SndsReport` (rows per IP and day, blocked ranges, ``snds`` and ``snds-blocked``
results). See README.md beside this file.
"""

from collectors.snds.collect import (
    CHECK,
    CHECK_BLOCKED,
    SndsReport,
    activity_results,
    blocked_results,
    collect_snds,
)
from collectors.snds.config import SndsConfig
from collectors.snds.model import BlockedRange, IpActivity
from collectors.snds.sweep import run
from collectors.unit import Collector

UNIT = Collector(
    name="snds",
    title="Microsoft SNDS: per-IP filter verdict, complaints, trap hits and blocks at Outlook.com",
    section="snds",
    config_model=SndsConfig,
    job="snds_fetch",
    # daily files that arrive at no fixed hour: asking four times a day picks a late one up
    # the same day, at two small requests a run
    interval="6h",
    sweep=run,
)

__all__ = [
    "CHECK",
    "CHECK_BLOCKED",
    "UNIT",
    "BlockedRange",
    "IpActivity",
    "SndsConfig",
    "SndsReport",
    "activity_results",
    "blocked_results",
    "collect_snds",
]

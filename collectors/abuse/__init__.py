"""Abuse reports: X-ARF, Shadowserver CSV, ACNS, ARF complaints and free-text abuse mail,
parsed into :class:`AbuseReport` objects and classified.

The parsing layer is pure: no I/O, no store, no network. ``prepare.py`` judges each report
with ``[abuse]`` (:class:`AbuseConfig`) and attributes its addresses through the
``Targets`` view; the application stores what it prepares. Messages come from the sink (mail
to the ``[abuse]`` recipients) and from ``repmon ingest``. See README.md beside this file and
docs/abuse.md for the formats, the categories and their severities, the confidence rules and
the limits.
"""

from collectors.abuse.config import AbuseConfig
from collectors.abuse.model import (
    CATEGORIES,
    REVIEW_THRESHOLD,
    SEVERITY,
    AbuseReport,
    Category,
    Severity,
)
from collectors.abuse.parse import MAX_INPUT_BYTES, parse_abuse
from collectors.unit import Collector

UNIT = Collector(
    name="abuse",
    title="abuse reports (X-ARF, Shadowserver, phishing, copyright, free text) to customers' cases",
    section="abuse",
    config_model=AbuseConfig,
    leader_only=False,
)

__all__ = [
    "CATEGORIES",
    "MAX_INPUT_BYTES",
    "REVIEW_THRESHOLD",
    "SEVERITY",
    "UNIT",
    "AbuseConfig",
    "AbuseReport",
    "Category",
    "Severity",
    "parse_abuse",
]

"""Blocklist zone mirrors: read a list's data files and answer as its DNS server would.

Operators checking millions of addresses take a blocklist's data feed (rbldnsd zone files,
Spamhaus DROP JSON) instead of asking DNS address by address. This package reads those files
(:func:`load` / :func:`parse`), answers single lookups exactly as rbldnsd would
(:meth:`Mirror.lookup`), and matches whole inventory ranges by interval arithmetic
(:meth:`Mirror.match_ranges`). :func:`check_with_mirrors` turns mirror answers into the same
CheckResults as DNS answers. Formats and semantics: ``docs/mirror-formats.md``.
"""

from checks.dnsbl.mirror.answers import Answer
from checks.dnsbl.mirror.dataset import FORMATS, load, parse
from checks.dnsbl.mirror.mirror import (
    AddressRange,
    Listing,
    LoadReport,
    Mirror,
    RangeMatch,
    UnusableMirror,
    address_range,
)
from checks.dnsbl.mirror.resolver import (
    MirrorResolver,
    check_with_mirrors,
    dns_answer,
    mirror_selftest,
)

__all__ = [
    "FORMATS",
    "AddressRange",
    "Answer",
    "Listing",
    "LoadReport",
    "Mirror",
    "MirrorResolver",
    "RangeMatch",
    "UnusableMirror",
    "address_range",
    "check_with_mirrors",
    "dns_answer",
    "load",
    "mirror_selftest",
    "parse",
]

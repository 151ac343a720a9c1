"""DNS blocklist checks: the zone catalogue, lookups and the bulk query engine."""

from checks.dnsbl.catalogue import CATALOGUE
from checks.dnsbl.lookup import Target, TargetError, check_targets, interpret, query_name
from checks.dnsbl.zones import Code, Zone

__all__ = [
    "CATALOGUE",
    "Code",
    "Target",
    "TargetError",
    "Zone",
    "check_targets",
    "interpret",
    "query_name",
]

"""The blocklist collector: every watched IP and domain against every active DNS blocklist zone.

Config ``[dnsbl]`` (:class:`DnsblConfig`), results are ``dnsbl`` check results, one per
(target, zone). See README.md beside this file.
"""

from collectors.dnsbl.config import DnsblConfig, ZoneConfig
from collectors.dnsbl.sweep import inventory_targets, run, sweep_dnsbl
from collectors.unit import Collector

UNIT = Collector(
    name="dnsbl",
    title="every watched IP and domain against the DNS blocklists",
    section="dnsbl",
    config_model=DnsblConfig,
    job="dnsbl_sweep",
    interval="1h",
    sweep=run,
)

__all__ = ["UNIT", "DnsblConfig", "ZoneConfig", "inventory_targets", "run", "sweep_dnsbl"]

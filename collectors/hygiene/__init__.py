"""The hygiene collector: SPF, DMARC, DKIM, MX, MTA-STS, TLS-RPT, BIMI, DNSSEC per sending
domain; PTR / forward-confirmed rDNS and SPF authorization per sending IP.

It owns no config section: it reads the watched domains (with their DKIM selectors) and IPs
from the :class:`~collectors.targets.Targets` view and the shared ``[resolver]``.
See README.md beside this file.
"""

from collectors.hygiene.sweep import run, sweep_hygiene
from collectors.unit import Collector

UNIT = Collector(
    name="hygiene",
    title="SPF, DMARC, DKIM, MX, MTA-STS, TLS-RPT, BIMI, DNSSEC, PTR and SPF authorization",
    job="hygiene_sweep",
    interval="6h",
    sweep=run,
)

__all__ = ["UNIT", "run", "sweep_hygiene"]

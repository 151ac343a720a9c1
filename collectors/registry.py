"""Every collector, in one place: the application builds its config sections, the daemon's
jobs, ``repmon sweep --only`` and the docs index from :data:`COLLECTORS`.

Adding a collector: one folder under ``collectors/`` (code, ``config.py``, ``sample.toml``,
``README.md``) and one line here. A test keeps this complete (every folder registered, every
sample valid, every README embedding its sample) and checks each check name is documented.
"""

from __future__ import annotations

from collectors import abuse, dnsbl, feedback, hygiene, mirror, postmaster, sink, snds, volume
from collectors.unit import Collector

COLLECTORS: tuple[Collector, ...] = (
    dnsbl.UNIT,
    hygiene.UNIT,
    sink.UNIT,
    feedback.UNIT,
    volume.UNIT,
    snds.UNIT,
    postmaster.UNIT,
    abuse.UNIT,
    mirror.UNIT,  # last: `repmon sweep` runs the sweeps first, a failed refresh last
)

#: check name (the ``check`` of a result) -> document
CHECKS: dict[str, str] = {
    "dnsbl": "docs/dnsbl.md",
    "spf": "docs/hygiene.md",
    "dmarc": "docs/hygiene.md",
    "dkim": "docs/hygiene.md",
    "mx": "docs/hygiene.md",
    "mta-sts": "docs/hygiene.md",
    "tls-rpt": "docs/hygiene.md",
    "bimi": "docs/hygiene.md",
    "dnssec": "docs/hygiene.md",
    "ptr": "docs/hygiene.md",
    "spf-authorizes": "docs/hygiene.md",
    "snds": "collectors/snds/README.md",
    "snds-blocked": "collectors/snds/README.md",
    "gmail-spam-rate": "collectors/postmaster/README.md",
    "gmail-reputation": "collectors/postmaster/README.md",
    "gmail-auth": "collectors/postmaster/README.md",
    "gmail-compliance": "collectors/postmaster/README.md",
}


def by_name(name: str) -> Collector:
    """The collector called ``name``; KeyError when there is none."""
    for unit in COLLECTORS:
        if unit.name == name:
            return unit
    raise KeyError(name)


def sweeps() -> list[Collector]:
    """The collectors with scheduled work, in registry order."""
    return [c for c in COLLECTORS if c.sweep is not None]

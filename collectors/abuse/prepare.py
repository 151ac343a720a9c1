"""An abuse message made ready for the store: parsed, judged with ``[abuse]``, attributed.

:class:`Preparer` turns one message or file (``parse_abuse``) into a :class:`PreparedMessage`:
per report the configured severity and review decision, whether its reporter is muted, and
its reported addresses and URL hosts attributed to our customers through the ``Targets``
view (``owner_of_ip`` / ``owner_of_domain`` only, never DNS). Pure: no I/O, no SQL; the
application stores what comes out (``monitor/store/abuse.py``).

Attribution is bounded whatever the report's size: one :class:`Attribution` per customer
named (a pool without a customer stands for itself) and one for everything that is not
ours, each with counts and a sample of at most :data:`SAMPLE_IPS` addresses and
:data:`SAMPLE_URLS` URLs. A 50,000-row Shadowserver CSV about three customers gives four.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from collectors.abuse.config import AbuseConfig
from collectors.abuse.extract import host_of
from collectors.abuse.model import AbuseReport
from collectors.abuse.parse import parse_abuse
from collectors.targets import Owner, Targets

__all__ = [
    "SAMPLE_IPS",
    "SAMPLE_URLS",
    "Attribution",
    "PreparedMessage",
    "PreparedReport",
    "Preparer",
    "attribute",
]

#: addresses kept per (report, customer) row; the counts cover every address
SAMPLE_IPS = 20
#: URLs kept per (report, customer) row
SAMPLE_URLS = 10
#: URLs kept per report
MAX_STORED_URLS = 100
#: parent domains tried for a URL's host (``a.b.shop.example`` -> ``shop.example``)
_MAX_LABELS = 6


@dataclass(slots=True)
class Attribution:
    """The addresses and URLs of one report that belong to one customer (``customer`` is the
    customer, or the pool's name when the pool has none), or that are not ours (``ours``
    false, ``customer`` empty)."""

    customer: str
    ours: bool
    pools: list[str] = field(default_factory=list)
    addresses: int = 0
    urls: int = 0
    sample: list[str] = field(default_factory=list)
    sample_urls: list[str] = field(default_factory=list)

    def add_ip(self, ip: str, pool: str) -> None:
        self.addresses += 1
        if len(self.sample) < SAMPLE_IPS:
            self.sample.append(ip)
        if pool and pool not in self.pools and len(self.pools) < 20:
            self.pools.append(pool)

    def add_url(self, url: str, pool: str) -> None:
        self.urls += 1
        if len(self.sample_urls) < SAMPLE_URLS:
            self.sample_urls.append(url)
        if pool and pool not in self.pools and len(self.pools) < 20:
            self.pools.append(pool)

    def to_json(self) -> dict[str, object]:
        return {
            "customer": self.customer,
            "ours": self.ours,
            "pools": list(self.pools),
            "addresses": self.addresses,
            "urls": self.urls,
            "sample": list(self.sample),
            "sample_urls": list(self.sample_urls),
        }


@dataclass(slots=True)
class PreparedReport:
    """One report of a message, judged with ``[abuse]`` and attributed."""

    index: int
    report: AbuseReport
    #: the configured severity of its category (``[abuse] severity``)
    severity: str
    #: confidence under ``[abuse] review_threshold``, or nothing named although it counts
    needs_review: bool
    #: its reporter is in ``[abuse] mute_reporters``: stored and counted, no case
    muted: bool
    #: per customer named, then the row of what is not ours (absent when all is ours)
    attributions: list[Attribution]
    #: reported addresses left out because they are in ``[abuse] own_networks``
    ignored: int = 0

    @property
    def ours(self) -> int:
        """Addresses and URLs of ours in the report."""
        return sum(a.addresses + a.urls for a in self.attributions if a.ours)

    @property
    def foreign(self) -> int:
        """Reported addresses that are not ours."""
        return sum(a.addresses for a in self.attributions if not a.ours)

    @property
    def customers(self) -> list[str]:
        return [a.customer for a in self.attributions if a.ours]

    def describe(self) -> dict[str, object]:
        """The fields ``repmon ingest --json`` adds to the report's own."""
        return {
            "severity": self.severity,
            "needs_review": self.needs_review,
            "muted": self.muted,
            "customers": {
                a.customer: {"addresses": a.addresses, "urls": a.urls, "pools": a.pools}
                for a in self.attributions
                if a.ours
            },
            "not_ours": self.foreign,
            "own_networks": self.ignored,
        }


@dataclass(slots=True)
class PreparedMessage:
    """One abuse message (or saved file) ready for the store."""

    message_hash: str
    received_at: dt.datetime
    #: ``smtp`` (the sink) or ``local`` (``repmon ingest``)
    channel: str
    spool_path: str
    reports: list[PreparedReport]


class Preparer:
    """Parses and prepares abuse messages with one ``[abuse]`` section and inventory."""

    def __init__(self, config: AbuseConfig, targets: Targets) -> None:
        self.config = config
        self.targets = targets
        self._own = [ipaddress.ip_network(n) for n in config.own_networks]

    def message(
        self,
        raw: bytes,
        message_hash: str,
        received_at: dt.datetime,
        *,
        filename: str | None = None,
        channel: str = "smtp",
        spool_path: str = "",
    ) -> PreparedMessage:
        """Parse and prepare; raises ``ParseError`` (nothing prepared) for a broken input."""
        reports = parse_abuse(raw, filename)
        return PreparedMessage(
            message_hash, received_at, channel, spool_path, self.reports(reports)
        )

    def reports(self, reports: Sequence[AbuseReport]) -> list[PreparedReport]:
        return [self.report(i, r) for i, r in enumerate(reports)]

    def report(self, index: int, report: AbuseReport) -> PreparedReport:
        cfg = self.config
        attributions, ignored = attribute(report, self.targets, self._own)
        nothing_named = not report.ips and not report.urls and report.count > 0
        return PreparedReport(
            index=index,
            report=report,
            severity=cfg.severity_of(report.category, report.extra.get("critical") == "yes"),
            needs_review=report.confidence < cfg.review_threshold or nothing_named,
            muted=cfg.muted(report.reporter),
            attributions=attributions,
            ignored=ignored,
        )


def attribute(
    report: AbuseReport,
    targets: Targets,
    own_networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
) -> tuple[list[Attribution], int]:
    """The report's addresses and URL hosts per customer (then what is not ours), and the
    number of addresses left out as our own infrastructure."""
    by_customer: dict[str, Attribution] = {}
    foreign = Attribution("", ours=False)
    ignored = 0
    owner_of_ip = targets.owner_of_ip
    for ip in report.ips:
        if own_networks and _inside(ip, own_networks):
            ignored += 1
            continue
        owner = owner_of_ip(ip)
        if owner is None:
            foreign.add_ip(ip, "")
            continue
        _row(by_customer, owner).add_ip(ip, owner.pool)
    for url in report.urls:
        owner = _owner_of_host(targets, host_of(url))
        if owner is None:
            foreign.add_url(url, "")
        else:
            _row(by_customer, owner).add_url(url, owner.pool)
    rows = sorted(by_customer.values(), key=lambda a: (-a.addresses - a.urls, a.customer))
    if foreign.addresses or foreign.urls:
        rows.append(foreign)
    return rows, ignored


def _row(rows: dict[str, Attribution], owner: Owner) -> Attribution:
    key = owner.customer or owner.pool
    row = rows.get(key)
    if row is None:
        row = rows[key] = Attribution(key, ours=True)
    return row


def _inside(ip: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in networks)


def _owner_of_host(targets: Targets, host: str) -> Owner | None:
    """The owner of a URL's host or of a parent domain of it (no DNS); an address host is
    looked up as an address."""
    host = host.strip().lower().rstrip(".")
    if not host:
        return None
    if host[0].isdigit() or ":" in host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return targets.owner_of_ip(host)
    labels = host.split(".")
    for i in range(min(len(labels) - 1, _MAX_LABELS)):
        owner = targets.owner_of_domain(".".join(labels[i:]))
        if owner is not None:
            return owner
    return None

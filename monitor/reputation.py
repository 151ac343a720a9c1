"""The feedback view: per sending IP, pool or customer, what the mailbox providers told us.

Volume (the same denominator the rate rules use), bounces (hard / soft / block), complaints,
the rates against the rules' thresholds and the receiving domains that complain or refuse
most: the reputation page mailbox providers and ESPs show their senders, from our own data.
Read by ``repmon feedback`` and ``GET /v1/feedback``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from checks.errors import UsageError
from monitor.cases.measure import volume_by_ip
from monitor.config import Config
from monitor.inventory import Inventory
from monitor.store import Store
from monitor.store.reputation import FeedbackCount, feedback_counts_between

GROUPS = ("ip", "pool", "customer")
#: receiving domains listed per subject
TOP_DOMAINS = 5


@dataclass
class Reputation:
    """One subject's feedback over the window."""

    by: str
    subject: str
    pool: str = ""
    customer: str = ""
    volume: int = 0
    #: where the volume comes from: ``sent:<source>``, ``dmarc``, or both for groups
    volume_basis: set[str] = field(default_factory=set)
    hard: int = 0
    soft: int = 0
    block: int = 0
    complaints: int = 0
    #: complaints and bounces from reports that did not authenticate as a trusted source
    unauthenticated: int = 0
    domains: Counter[str] = field(default_factory=Counter)
    complaint_level: str = ""
    bounce_level: str = ""

    @property
    def bounces(self) -> int:
        return self.hard + self.soft + self.block

    def rate(self, n: int) -> float | None:
        return n / self.volume if self.volume else None

    def to_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "subject": self.subject,
            "pool": self.pool,
            "customer": self.customer,
            "volume": self.volume,
            "volume_basis": sorted(self.volume_basis),
            "bounces": {"hard": self.hard, "soft": self.soft, "block": self.block},
            "complaints": self.complaints,
            "unauthenticated_reports": self.unauthenticated,
            "complaint_rate": self.rate(self.complaints),
            "hard_bounce_rate": self.rate(self.hard),
            "complaint_level": self.complaint_level,
            "bounce_level": self.bounce_level,
            "top_receiving_domains": [
                {"domain": d, "events": n} for d, n in self.domains.most_common(TOP_DOMAINS)
            ],
        }


def reputation(
    store: Store,
    config: Config,
    inventory: Inventory,
    by: str = "ip",
    since: dt.timedelta | None = None,
    subject: str | None = None,
    now: dt.datetime | None = None,
) -> list[Reputation]:
    """Every subject with volume or feedback in the window, worst first."""
    if by not in GROUPS:
        raise UsageError(f"by: expected one of {', '.join(GROUPS)}")
    end = now or dt.datetime.now(dt.UTC)
    start = end - (since or dt.timedelta(seconds=config.rules.complaints.window_seconds))
    with store.begin() as tx:
        volumes = volume_by_ip(tx, start, end)
        counts = feedback_counts_between(tx, start, end)
    out: dict[str, Reputation] = {}
    for ip, vol in volumes.items():
        r = _subject(out, by, ip, *_owner(inventory, ip))
        r.volume += vol.count
        r.volume_basis.add(vol.basis)
    for c in counts:
        pool, customer = _owner(inventory, c.sending_ip, c.pool, c.customer)
        _count(_subject(out, by, c.sending_ip or "(unattributed)", pool, customer), c, config)
    found = [r for r in out.values() if subject in (None, r.subject)]
    for r in found:
        r.complaint_level = _level(r.rate(r.complaints), r.volume, config.rules.complaints)
        r.bounce_level = _level(r.rate(r.hard), r.volume, config.rules.bounces)
    return sorted(found, key=_worst_first)


def _owner(inventory: Inventory, ip: str, pool: str = "", customer: str = "") -> tuple[str, str]:
    owner = inventory.owner_of_ip(ip) if ip else None
    return (owner.pool, owner.customer) if owner else (pool, customer)


def _subject(out: dict[str, Reputation], by: str, ip: str, pool: str, customer: str) -> Reputation:
    key = {"ip": ip, "pool": pool or "(no pool)", "customer": customer or "(no customer)"}[by]
    if key not in out:
        out[key] = Reputation(by, key, pool=pool if by != "customer" else "", customer=customer)
    return out[key]


def _count(r: Reputation, c: FeedbackCount, config: Config) -> None:
    if c.kind == "complaint" and c.feedback_type in config.rules.complaints.ignore_feedback_types:
        return
    r.unauthenticated += c.untrusted
    if c.kind == "complaint":
        r.complaints += c.count
    elif c.hard:
        r.hard += c.count
    elif c.category in config.rules.bounce_burst.categories:
        r.block += c.count
    else:
        r.soft += c.count
    if c.receiving_domain:
        r.domains[c.receiving_domain] += c.count


def _level(rate: float | None, volume: int, rule: Any) -> str:
    """The severity the rule would give this rate; "ok", or "low volume" below its minimum."""
    if rate is None or volume < rule.min_volume:
        return "low volume"
    reached = [sev for sev, at in rule.thresholds.items() if rate >= at]
    order = ("critical", "high", "medium", "low", "info")
    return min(reached, key=order.index) if reached else "ok"


_LEVEL_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4, "ok": 5}


def _worst_first(r: Reputation) -> tuple[int, float, str]:
    worst = min(_LEVEL_ORDER.get(r.complaint_level, 6), _LEVEL_ORDER.get(r.bounce_level, 6))
    return (worst, -(r.rate(r.complaints) or 0.0), r.subject)

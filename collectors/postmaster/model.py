"""What the Postmaster Tools collector hands on: one row per domain and day, and compliance.

Ratios are as Gmail gives them (0.0-1.0); a metric Gmail left out (too little traffic) is
None, never 0. Pool and customer come from the inventory (:meth:`Targets.owner_of_domain`);
domains not in the inventory are kept with ``watched`` False.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

#: Gmail's reputation categories, best first
REPUTATIONS = ("HIGH", "MEDIUM", "LOW", "BAD")


@dataclass(frozen=True, slots=True)
class RegisteredDomain:
    """A domain as ``domains.list`` reports it for the service account."""

    domain: str
    #: OWNER, READER or NONE (registered, but no access granted)
    permission: str
    create_time: str = ""


@dataclass(frozen=True, slots=True)
class IpReputation:
    """How many of the domain's sending IPs Gmail puts in one reputation category."""

    reputation: str
    ip_count: int
    sample_ips: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryError:
    #: PERMANENT_ERROR or TEMPORARY_ERROR
    error_class: str
    #: e.g. RATE_LIMIT_EXCEEDED, SUSPECTED_SPAM, LOW_IP_REPUTATION, BAD_PTR_RECORD
    error_type: str
    error_ratio: float


@dataclass(frozen=True, slots=True)
class FeedbackLoop:
    """A Feedback-ID value with a spam rate Gmail found notable."""

    id: str
    spam_ratio: float


@dataclass(frozen=True, slots=True)
class DomainDay:
    """``trafficStats`` of one domain on one day."""

    domain: str
    day: dt.date
    spam_ratio: float | None
    spam_ratio_lower: float | None
    spam_ratio_upper: float | None
    #: HIGH, MEDIUM, LOW, BAD; "" when Gmail gave none
    domain_reputation: str
    ip_reputations: tuple[IpReputation, ...]
    spf_ratio: float | None
    dkim_ratio: float | None
    dmarc_ratio: float | None
    #: mail from Gmail to the domain accepted over TLS
    outbound_tls_ratio: float | None
    #: mail from the domain to Gmail that came over TLS
    inbound_tls_ratio: float | None
    delivery_errors: tuple[DeliveryError, ...]
    spammy_feedback_loops: tuple[FeedbackLoop, ...]
    pool: str = ""
    customer: str = ""
    watched: bool = False

    def ips_in(self, *reputations: str) -> tuple[int, tuple[str, ...]]:
        """IP count and sample IPs over the given categories."""
        count, samples = 0, list[str]()
        for bucket in self.ip_reputations:
            if bucket.reputation in reputations:
                count += bucket.ip_count
                samples += bucket.sample_ips
        return count, tuple(samples)


@dataclass(frozen=True, slots=True)
class Requirement:
    """One row of the v2 compliance table: a bulk-sender requirement and its status."""

    #: SPF, DKIM, SPF_AND_DKIM, DMARC_POLICY, DMARC_ALIGNMENT, MESSAGE_FORMATTING, DNS_RECORDS,
    #: ENCRYPTION, USER_REPORTED_SPAM_RATE, ONE_CLICK_UNSUBSCRIBE, HONOR_UNSUBSCRIBE
    requirement: str
    #: COMPLIANT or NEEDS_WORK ("" when unspecified)
    status: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DomainCompliance:
    """The v2 ``complianceStatus`` of a domain (its registrable part's data)."""

    domain: str
    requirements: tuple[Requirement, ...]
    pool: str = ""
    customer: str = ""
    watched: bool = False

    @property
    def needs_work(self) -> tuple[Requirement, ...]:
        return tuple(r for r in self.requirements if r.status == "NEEDS_WORK")

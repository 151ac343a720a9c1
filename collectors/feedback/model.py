"""What the feedback parsers return: one :class:`Report` per message.

Parsers are pure functions of the message; attribution to a sending IP and
storage happen afterwards (collectors/feedback/pipeline.py). ``kind`` is one of
``bounce``, ``delay``, ``complaint``, ``dmarc-aggregate``, ``dmarc-failure``,
``tls-report``, ``other``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from email.message import Message
from typing import Literal

Kind = Literal[
    "bounce", "delay", "complaint", "dmarc-aggregate", "dmarc-failure", "tls-report", "other"
]


@dataclass(slots=True)
class BouncedRecipient:
    """One recipient of a bounce or delay notice."""

    address: str
    action: str = "failed"  # failed / delayed / delivered / relayed / expanded
    status: str = ""  # RFC 3463 enhanced code, e.g. "5.1.1"; "" when none could be read
    diagnostic: str = ""
    remote_mta: str = ""
    reply_code: str = ""  # SMTP basic code, e.g. "550"
    category: str = "other"  # repmon's taxonomy (collectors/feedback/categories.py)
    hard: bool = False
    blocklist: str = ""  # zone named in the diagnostic, e.g. "zen.spamhaus.org"

    @property
    def receiving_domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


@dataclass(slots=True)
class Bounce:
    recipients: list[BouncedRecipient]
    reporting_mta: str = ""
    arrival_date: dt.datetime | None = None
    #: headers of the returned message, when the bounce carried them (attribution reads them)
    original: Message | None = None
    #: "dsn" for RFC 3464, else the non-standard format's name ("qmail", "exchange", "text" ...)
    format: str = "dsn"


@dataclass(slots=True)
class Complaint:
    """An ARF (RFC 5965) feedback report, or a provider's variant of one."""

    feedback_type: str  # abuse, fraud, virus, other, not-spam, auth-failure
    source_ip: str = ""
    original_mail_from: str = ""
    original_rcpt_to: list[str] = field(default_factory=list)
    reported_domain: list[str] = field(default_factory=list)
    arrival_date: dt.datetime | None = None
    user_agent: str = ""
    auth_failure: str = ""  # dkim, spf, dmarc ... (auth-failure reports)
    original: Message | None = None
    #: the other report fields a failure report carries (RFC 6591: delivery-result,
    #: identity-alignment, dkim-domain, dkim-selector, spf-dns, authentication-results),
    #: lower-case names
    report_fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class DmarcAuthResult:
    method: str  # "dkim" or "spf"
    domain: str
    result: str
    selector: str = ""
    scope: str = ""


@dataclass(slots=True)
class DmarcRecord:
    source_ip: str
    count: int
    disposition: str = ""
    dkim: str = ""  # policy_evaluated dkim: pass / fail
    spf: str = ""  # policy_evaluated spf: pass / fail
    header_from: str = ""
    envelope_from: str = ""
    envelope_to: str = ""
    auth_results: list[DmarcAuthResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def aligned(self) -> bool:
        """DMARC passes when DKIM or SPF passed aligned (policy_evaluated)."""
        return self.dkim == "pass" or self.spf == "pass"

    @property
    def dkim_selectors(self) -> list[str]:
        return [a.selector for a in self.auth_results if a.method == "dkim" and a.selector]


@dataclass(slots=True)
class DmarcAggregate:
    org_name: str
    report_id: str
    begin: dt.datetime | None
    end: dt.datetime | None
    policy_domain: str
    policy: dict[str, str]  # p, sp, np, pct, adkim, aspf, testing, discovery_method ...
    records: list[DmarcRecord]
    xml_namespace: str = ""
    email: str = ""


@dataclass(slots=True)
class TlsPolicyResult:
    policy_type: str  # sts / tlsa / no-policy-found
    policy_domain: str
    successful: int
    failed: int
    failure_details: list[dict[str, object]] = field(default_factory=list)


@dataclass(slots=True)
class TlsReport:
    organization_name: str
    report_id: str
    begin: dt.datetime | None
    end: dt.datetime | None
    policies: list[TlsPolicyResult]

    @property
    def successful(self) -> int:
        return sum(p.successful for p in self.policies)

    @property
    def failed(self) -> int:
        return sum(p.failed for p in self.policies)


@dataclass(slots=True)
class Report:
    """One message's meaning. Exactly one of the payload fields is set, by ``kind``."""

    kind: Kind
    bounce: Bounce | None = None
    complaint: Complaint | None = None
    dmarc: DmarcAggregate | None = None
    tls: TlsReport | None = None
    subject: str = ""

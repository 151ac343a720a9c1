"""Feedback, prepared for the store: a message → parsed → attributed → the rows to keep.

Pure: nothing here touches the store. :class:`Preparer` turns one message (raw bytes from
the spool, or an already parsed :class:`~collectors.feedback.model.Report`) into a
:class:`PreparedMessage`: its ``feedback_events`` rows (recipients hashed and addresses
redacted unless ``[feedback] store_recipients``), its DMARC aggregate records, the
increments of the hourly counters, and the :class:`IngestOutcome` to report. The
application stores it exactly once by the message's hash, in one transaction per batch
(``monitor/feedback_intake.py`` and ``monitor/store/feedback.py``). A message that cannot
be parsed raises ``ParseError`` and prepares nothing. See docs/feedback.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from collectors.feedback.attribution import (
    UNATTRIBUTED,
    Attribution,
    SendingIpRules,
    envelope_addresses,
)
from collectors.feedback.config import FeedbackConfig
from collectors.feedback.limits import bare_address
from collectors.feedback.model import Report
from collectors.feedback.parse import parse_email, read_message
from collectors.feedback.trust import Envelope, Sender, Verifier, local_sender
from collectors.targets import Targets

#: kinds whose events are about one of our sending IPs (a TLS report is about a receiving MX)
ATTRIBUTABLE = frozenset({"bounce", "delay", "complaint", "dmarc-failure"})
#: recipient actions that are not failures: a success DSN makes no event
NOT_FAILED = frozenset({"delivered", "relayed", "expanded"})
#: length of one counter bucket, in seconds (the store's ``BUCKET_SECONDS``: collectors
#: cannot import it, tests/monitor/store/test_schema.py checks that the two agree)
BUCKET_SECONDS = 3600

_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[A-Za-z0-9][A-Za-z0-9.-]*")


@dataclass(slots=True)
class Event:
    """One row of ``feedback_events`` before it is stored (recipient still in clear)."""

    kind: str
    attribution: Attribution = UNATTRIBUTED
    category: str = ""
    hard: bool | None = None
    receiving_domain: str = ""
    recipient: str = ""
    status: str = ""
    diagnostic: str = ""
    blocklist: str = ""
    feedback_type: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class IngestOutcome:
    """What one message became. ``duplicate``: the hash was already stored, nothing written."""

    kind: str
    events: int = 0
    sending_ips: list[str] = field(default_factory=list)
    unattributed: int = 0
    records: int = 0  # DMARC aggregate records
    duplicate: bool = False

    @property
    def sending_ip(self) -> str:
        """The first attributed IP, "" when none."""
        return self.sending_ips[0] if self.sending_ips else ""


def recipient_token(address: str, salt: str = "") -> str:
    """What is stored instead of an address: 16 hex digits of sha256(salt + lower-cased address).

    Stable, so the same recipient bouncing twice is recognisable, but not readable.
    """
    return hashlib.sha256((salt + address.strip().lower()).encode()).hexdigest()[:16]


def redact(text: str, salt: str = "") -> str:
    """``text`` with the local part of every email address replaced by ``sha256:<token>``.

    The domain is kept: it names a mailbox provider or a sending domain, not a person.
    """

    def token(match: re.Match[str]) -> str:
        domain = match.group(0).rpartition("@")[2]
        return f"sha256:{recipient_token(match.group(0), salt)}@{domain}"

    return _ADDRESS.sub(token, text)


def build_events(
    report: Report,
    rules: SendingIpRules,
    message: Message | None = None,
    envelope_to: Sequence[str] = (),
) -> list[Event]:
    """The events of a report, attributed. DMARC aggregates and ``other`` have none."""
    envelope = envelope_addresses(message, envelope_to)
    if report.bounce is not None:
        bounce = report.bounce
        events = []
        for r, attribution in zip(
            bounce.recipients, rules.for_bounce(bounce, envelope), strict=True
        ):
            if r.action in NOT_FAILED:
                continue
            events.append(
                Event(
                    kind="delay" if r.action == "delayed" else "bounce",
                    attribution=attribution,
                    category=r.category,
                    hard=r.hard,
                    receiving_domain=r.receiving_domain,
                    recipient=r.address,
                    status=r.status,
                    diagnostic=r.diagnostic,
                    blocklist=r.blocklist,
                    detail={
                        "action": r.action,
                        "reply_code": r.reply_code,
                        "remote_mta": r.remote_mta,
                        "reporting_mta": bounce.reporting_mta,
                        "format": bounce.format,
                    },
                )
            )
        return events
    if report.complaint is not None:
        c = report.complaint
        rcpt = next((a for a in c.original_rcpt_to if "@" in a), "")
        domain = rcpt.rpartition("@")[2] if rcpt else _sender_domain(message)
        return [
            Event(
                kind=report.kind,
                attribution=rules.for_complaint(c, envelope),
                category=c.auth_failure if report.kind == "dmarc-failure" else c.feedback_type,
                receiving_domain=domain.lower(),
                recipient=rcpt,
                feedback_type=c.feedback_type,
                detail={
                    "source_ip": c.source_ip,
                    "original_mail_from": c.original_mail_from,
                    "reported_domain": list(c.reported_domain),
                    "user_agent": c.user_agent,
                    "auth_failure": c.auth_failure,
                    "arrival_date": _iso(c.arrival_date),
                    **({"report_fields": c.report_fields} if c.report_fields else {}),
                },
            )
        ]
    if report.tls is not None:
        t = report.tls
        domains = {p.policy_domain.lower() for p in t.policies}
        return [
            Event(
                kind="tls-report",
                category="failed" if t.failed else "ok",
                receiving_domain=domains.pop() if len(domains) == 1 else "",
                detail={
                    "organization_name": t.organization_name,
                    "report_id": t.report_id,
                    "begin": _iso(t.begin),
                    "end": _iso(t.end),
                    "successful": t.successful,
                    "failed": t.failed,
                    "policies": [
                        {
                            "policy_type": p.policy_type,
                            "policy_domain": p.policy_domain,
                            "successful": p.successful,
                            "failed": p.failed,
                            "failure_details": p.failure_details,
                        }
                        for p in t.policies
                    ],
                },
            )
        ]
    return []


@dataclass(slots=True)
class SpooledItem:
    """One message handed to :func:`ingest_batch`: its bytes and what the spool knows of it.

    ``envelope_to``: the SMTP RCPT TO addresses, searched for a VERP token first.
    ``smtp``: the SMTP session it came in (MAIL FROM, client IP, HELO), which its trust is
    judged by; ``None`` for a message the operator gave repmon (``repmon ingest``), which is
    trusted as such (docs/feedback.md, "Trusted feedback").
    """

    raw: bytes
    message_hash: str
    received_at: dt.datetime
    spool_path: str = ""
    envelope_to: Sequence[str] = ()
    smtp: Envelope | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One ``feedback_events`` row as it is to be stored (recipient hashed unless configured)."""

    message_hash: str
    seq: int
    received_at: dt.datetime
    kind: str
    category: str
    hard: bool | None
    sending_ip: str
    attributed_by: str
    pool: str
    customer: str
    receiving_domain: str
    recipient: str
    status: str
    diagnostic: str
    blocklist: str
    feedback_type: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    """One ``dmarc_records`` row: a DMARC aggregate report's count of mail from one IP."""

    message_hash: str
    seq: int
    org_name: str
    report_id: str
    begin: dt.datetime | None
    end: dt.datetime | None
    source_ip: str
    pool: str
    customer: str
    count: int
    disposition: str
    dkim: str
    spf: str
    header_from: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CountIncrement:
    """What one message adds to one hourly counter (bucket, IP, kind, category, domain)."""

    bucket_start: dt.datetime
    sending_ip: str
    kind: str
    category: str
    receiving_domain: str
    pool: str
    customer: str
    count: int


@dataclass(slots=True)
class PreparedMessage:
    """A parsed and attributed message: everything the store keeps of it, and the outcome.

    ``counts`` are in the order of the events that last touched each counter, so that a
    writer merging them in order keeps the pool and customer of the latest event.
    """

    message_hash: str
    received_at: dt.datetime
    spool_path: str
    kind: str
    events: list[EventRecord]
    dmarc: list[DmarcRecord]
    counts: list[CountIncrement]
    outcome: IngestOutcome
    #: who sent it and whether it is trusted (a ``feedback_senders`` row)
    sender: Sender


class Preparer:
    """Prepares messages with the attribution rules of one inventory and ``[feedback]``.

    ``verifier`` authenticates messages that came by SMTP (:class:`SpooledItem` with
    ``smtp``); without one they are untrusted (``result = "none"``).
    """

    def __init__(
        self, targets: Targets, config: FeedbackConfig, verifier: Verifier | None = None
    ) -> None:
        self.config = config
        self.rules = SendingIpRules(targets, config)
        self.verifier = verifier

    def spooled(self, item: SpooledItem) -> PreparedMessage:
        """Parse and prepare a message taken from the spool; raises ParseError when broken."""
        message = read_message(item.raw)
        report = parse_email(message)
        sender = None
        if item.smtp is not None:
            sender = self._authenticate(item, message, report.kind, item.smtp)
        return self.report(
            report,
            item.message_hash,
            item.received_at,
            item.spool_path,
            message=message,
            envelope_to=item.envelope_to,
            sender=sender,
        )

    def _authenticate(
        self, item: SpooledItem, message: Message, kind: str, smtp: Envelope
    ) -> Sender:
        if self.verifier is not None:
            try:
                return self.verifier.authenticate(item.raw, message, kind, smtp)
            except Exception as exc:  # a bug on hostile input: untrusted, not quarantined
                reason = f"authentication failed: {exc.__class__.__name__}: {exc}"
        else:
            reason = "not authenticated (no verifier)"
        return Sender(
            channel="smtp",
            from_domain="",
            reporter="",
            method="",
            result="permerror" if self.verifier is not None else "none",
            trusted=False,
            peer=smtp.peer,
            helo=smtp.helo,
            reason=reason,
        )

    def report(
        self,
        report: Report,
        message_hash: str,
        received_at: dt.datetime,
        spool_path: str = "",
        *,
        message: Message | None = None,
        envelope_to: Sequence[str] = (),
        sender: Sender | None = None,
    ) -> PreparedMessage:
        """Prepare an already parsed report (``message``: the email it came in, if any).

        ``sender``: its trust facts; ``None`` for a message the operator gave repmon
        (trusted, method ``local``)."""
        if received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        rules = self.rules
        events = build_events(report, rules, message, envelope_to)
        dmarc = (
            _dmarc_records(report, rules, message_hash)
            if report.dmarc is not None and report.dmarc.records
            else []
        )
        return PreparedMessage(
            message_hash=message_hash,
            received_at=received_at,
            spool_path=spool_path,
            kind=report.kind,
            events=[
                _event_record(e, seq, message_hash, received_at, self.config)
                for seq, e in enumerate(events)
            ],
            dmarc=dmarc,
            counts=count_increments(events, received_at),
            outcome=_outcome(report, events, rules),
            sender=sender if sender is not None else local_sender(message, report.kind),
        )


def bucket_start(when: dt.datetime) -> dt.datetime:
    """The start of the counter bucket (an hour, UTC) that ``when`` falls in."""
    seconds = int(when.timestamp()) // BUCKET_SECONDS * BUCKET_SECONDS
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def count_increments(events: Sequence[Event], received_at: dt.datetime) -> list[CountIncrement]:
    """The hourly counters ``events`` add to: one increment per key, the pool and customer of
    the key's last event, in the order of each key's last event."""
    bucket = bucket_start(received_at)
    totals: dict[tuple[str, str, str, str], tuple[int, str, str]] = {}
    for e in events:
        a = e.attribution
        key = (a.sending_ip, e.kind, e.category, e.receiving_domain)
        count = totals.pop(key, (0, "", ""))[0]
        totals[key] = (count + 1, a.pool, a.customer)
    return [
        CountIncrement(bucket, ip, kind, category, domain, pool, customer, count)
        for (ip, kind, category, domain), (count, pool, customer) in totals.items()
    ]


def _outcome(report: Report, events: list[Event], rules: SendingIpRules) -> IngestOutcome:
    ips = [e.attribution.sending_ip for e in events if e.attribution.sending_ip]
    records = report.dmarc.records if report.dmarc is not None else []
    ips += [rules.for_record(r.source_ip).sending_ip for r in records]
    return IngestOutcome(
        kind=report.kind,
        events=len(events),
        sending_ips=[ip for ip in dict.fromkeys(ips) if ip],
        unattributed=sum(
            1 for e in events if e.kind in ATTRIBUTABLE and not e.attribution.sending_ip
        ),
        records=len(records),
    )


def _event_record(
    e: Event, seq: int, message_hash: str, received_at: dt.datetime, fb: FeedbackConfig
) -> EventRecord:
    salt = fb.recipient_salt
    clear = fb.store_recipients
    recipient = e.recipient if clear or not e.recipient else recipient_token(e.recipient, salt)
    a = e.attribution
    return EventRecord(
        message_hash=message_hash,
        seq=seq,
        received_at=received_at,
        kind=e.kind,
        category=e.category,
        hard=e.hard,
        sending_ip=a.sending_ip,
        attributed_by=a.by,
        pool=a.pool,
        customer=a.customer,
        receiving_domain=e.receiving_domain,
        recipient=recipient,
        status=e.status,
        diagnostic=e.diagnostic if clear else redact(e.diagnostic, salt),
        blocklist=e.blocklist,
        feedback_type=e.feedback_type,
        detail=e.detail if clear else _redact_detail(e.detail, salt),
    )


def _redact_detail(detail: dict[str, Any], salt: str) -> dict[str, Any]:
    # a VERP return path carries the recipient's address: hash addresses wherever they appear
    return {k: redact(v, salt) if isinstance(v, str) else v for k, v in detail.items()}


def _dmarc_records(report: Report, rules: SendingIpRules, message_hash: str) -> list[DmarcRecord]:
    agg = report.dmarc
    assert agg is not None
    records = []
    for seq, r in enumerate(agg.records):
        a = rules.for_record(_normal_ip(r.source_ip))
        records.append(
            DmarcRecord(
                message_hash=message_hash,
                seq=seq,
                org_name=agg.org_name,
                report_id=agg.report_id,
                begin=agg.begin,
                end=agg.end,
                source_ip=a.sending_ip,
                pool=a.pool,
                customer=a.customer,
                count=r.count,
                disposition=r.disposition,
                dkim=r.dkim,
                spf=r.spf,
                header_from=r.header_from,
                detail={
                    "policy_domain": agg.policy_domain,
                    "policy": dict(agg.policy),
                    "envelope_from": r.envelope_from,
                    "envelope_to": r.envelope_to,
                    "reasons": list(r.reasons),
                    "auth_results": [
                        {
                            "method": x.method,
                            "domain": x.domain,
                            "result": x.result,
                            "selector": x.selector,
                            "scope": x.scope,
                        }
                        for x in r.auth_results
                    ],
                },
            )
        )
    return records


def _normal_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        return text.strip()


def _sender_domain(message: Message | None) -> str:
    """The domain a report came from (e.g. a feedback loop's), "" when unknown."""
    if message is None:
        return ""
    return bare_address(str(message.get("From", ""))).rpartition("@")[2]


def _iso(when: dt.datetime | None) -> str:
    return when.isoformat() if when is not None else ""

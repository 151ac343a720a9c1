"""The intake: a spooled or saved message → parsed → attributed → stored, exactly once.

One transaction writes ``feedback_messages`` (the message hash is the key: a hash already
there makes that message a no-op), ``feedback_events``, ``dmarc_records`` and the hourly
``feedback_counts``, for one message (:func:`ingest_spooled`, :func:`ingest_report`) or for
a batch of spooled messages (:func:`ingest_batch`, what the sink uses). A message that cannot
be parsed writes nothing (the sink quarantines it). See docs/feedback.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parseaddr
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collectors.feedback.attribution import (
    UNATTRIBUTED,
    Attribution,
    SendingIpRules,
    envelope_addresses,
)
from collectors.feedback.model import Report
from collectors.feedback.parse import parse_email, read_message
from monitor.config import Config, FeedbackConfig
from monitor.inventory import Inventory
from monitor.store import Store
from monitor.store.db import utcnow
from monitor.store.feedback import (
    BUCKET_SECONDS,
    dmarc_records,
    feedback_counts,
    feedback_events,
    feedback_messages,
)

#: kinds whose events are about one of our sending IPs (a TLS report is about a receiving MX)
ATTRIBUTABLE = frozenset({"bounce", "delay", "complaint", "dmarc-failure"})
#: recipient actions that are not failures: a success DSN makes no event
NOT_FAILED = frozenset({"delivered", "relayed", "expanded"})

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


def feedback_section(config: Config | FeedbackConfig) -> FeedbackConfig:
    return config.feedback if isinstance(config, Config) else config


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
    """

    raw: bytes
    message_hash: str
    received_at: dt.datetime
    spool_path: str = ""
    envelope_to: Sequence[str] = ()


@dataclass(slots=True)
class _Prepared:
    """A parsed and attributed message, ready to be written in a transaction."""

    message_hash: str
    received_at: dt.datetime
    spool_path: str
    report: Report
    events: list[Event]
    outcome: IngestOutcome
    dmarc_rows: list[dict[str, Any]]


def ingest_spooled(
    store: Store,
    config: Config | FeedbackConfig,
    inventory: Inventory,
    raw: bytes,
    message_hash: str,
    received_at: dt.datetime,
    spool_path: str,
    *,
    envelope_to: Sequence[str] = (),
) -> IngestOutcome:
    """Parse, attribute and store one message taken from the spool.

    Returns the outcome (``duplicate=True`` and nothing written when the hash is already
    stored). Raises ParseError, writing nothing, when the message is broken.
    ``envelope_to``: the SMTP RCPT TO addresses, searched for a VERP token first.
    """
    item = SpooledItem(raw, message_hash, received_at, spool_path, envelope_to)
    result = ingest_batch(store, config, inventory, [item])[0]
    if isinstance(result, Exception):
        raise result
    return result


def ingest_batch(
    store: Store,
    config: Config | FeedbackConfig,
    inventory: Inventory,
    items: Sequence[SpooledItem],
) -> list[IngestOutcome | Exception]:
    """Parse, attribute and store many spooled messages in **one** transaction.

    Returns one entry per item, in order:

    - an :class:`IngestOutcome`: the message is stored, or was already (``duplicate=True``:
      its hash was in the store before, or earlier in this batch; nothing written for it);
    - an exception (``ParseError``, or a parser bug): that message could not be read;
      nothing is written for it and the rest of the batch is stored all the same.

    Each message is parsed before the transaction opens, so a bad one never fails the
    batch. A store error (unreachable, lost connection) propagates and nothing of the
    batch is committed. Every message's hash row commits together with its events: a
    retry of the same batch after a crash stores nothing twice.
    """
    fb = feedback_section(config)
    rules = SendingIpRules(inventory, fb)
    results: list[IngestOutcome | Exception | None] = [None] * len(items)
    known = _stored_kinds(store, [item.message_hash for item in items])
    todo: list[tuple[int, _Prepared]] = []
    seen: dict[str, str] = {}  # hash -> kind, for the same bytes twice in one batch
    for i, item in enumerate(items):
        if item.message_hash in known:
            results[i] = IngestOutcome(kind=known[item.message_hash], duplicate=True)
            continue
        if item.message_hash in seen:
            results[i] = IngestOutcome(kind=seen[item.message_hash], duplicate=True)
            continue
        seen[item.message_hash] = ""
        try:
            message = read_message(item.raw)
            report = parse_email(message)
            prepared = _prepare(
                report,
                rules,
                item.message_hash,
                item.received_at,
                item.spool_path,
                message,
                item.envelope_to,
            )
        except Exception as exc:  # ParseError, or a bug on hostile input: this message only
            results[i] = exc
            del seen[item.message_hash]  # a second copy fails the same way, not "duplicate"
            continue
        seen[item.message_hash] = report.kind
        todo.append((i, prepared))
    claimed = _write(store, fb, [p for _, p in todo])
    for i, p in todo:
        results[i] = (
            p.outcome if p.message_hash in claimed else IngestOutcome(p.report.kind, duplicate=True)
        )
    return [r if r is not None else IngestOutcome("", duplicate=True) for r in results]


def ingest_report(
    store: Store,
    config: Config | FeedbackConfig,
    inventory: Inventory,
    report: Report,
    message_hash: str,
    received_at: dt.datetime,
    spool_path: str = "",
    *,
    message: Message | None = None,
    envelope_to: Sequence[str] = (),
) -> IngestOutcome:
    """Store an already parsed report in one transaction (see :func:`ingest_spooled`)."""
    fb = feedback_section(config)
    rules = SendingIpRules(inventory, fb)
    prepared = _prepare(report, rules, message_hash, received_at, spool_path, message, envelope_to)
    if not _write(store, fb, [prepared]):
        return IngestOutcome(kind=report.kind, duplicate=True)
    return prepared.outcome


def _prepare(
    report: Report,
    rules: SendingIpRules,
    message_hash: str,
    received_at: dt.datetime,
    spool_path: str,
    message: Message | None,
    envelope_to: Sequence[str],
) -> _Prepared:
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    events = build_events(report, rules, message, envelope_to)
    dmarc = (
        _dmarc_rows(report, rules, message_hash)
        if report.dmarc is not None and report.dmarc.records
        else []
    )
    return _Prepared(
        message_hash,
        received_at,
        spool_path,
        report,
        events,
        _outcome(report, events, rules),
        dmarc,
    )


def _write(store: Store, fb: FeedbackConfig, prepared: list[_Prepared]) -> set[str]:
    """Write prepared messages in one transaction; returns the hashes this call claimed.

    A message whose hash is already stored (another writer won) gets nothing written.
    """
    if not prepared:
        return set()
    with store.begin() as conn:
        claimed = _claim(conn, store.dialect, prepared)
        winners = [p for p in prepared if p.message_hash in claimed]
        event_rows = [
            _event_row(e, seq, p.message_hash, p.received_at, fb)
            for p in winners
            for seq, e in enumerate(p.events)
        ]
        if event_rows:
            conn.execute(feedback_events.insert(), event_rows)
            _add_counts(conn, store.dialect, winners)
        dmarc = [row for p in winners for row in p.dmarc_rows]
        if dmarc:
            conn.execute(dmarc_records.insert(), dmarc)
    return claimed


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


def _insert(dialect: str) -> Any:
    """The dialect's INSERT, with ON CONFLICT and RETURNING (SQLite ≥ 3.35, PostgreSQL)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if dialect == "postgresql" else sqlite.insert


#: hashes per ``IN (...)`` lookup; well under SQLite's limit of bound parameters
_LOOKUP_CHUNK = 500


def _stored_kinds(store: Store, hashes: Sequence[str]) -> dict[str, str]:
    """The kind of each of ``hashes`` already stored; absent ones are not in the result."""
    found: dict[str, str] = {}
    if not hashes:
        return found
    m = feedback_messages.c
    with store.begin() as conn:
        for i in range(0, len(hashes), _LOOKUP_CHUNK):
            chunk = list(hashes[i : i + _LOOKUP_CHUNK])
            query = sa.select(m.message_hash, m.kind).where(m.message_hash.in_(chunk))
            found.update((str(h), str(k)) for h, k in conn.execute(query))
    return found


def _claim(conn: Connection, dialect: str, prepared: list[_Prepared]) -> set[str]:
    """Insert the message rows; returns the hashes inserted (absent: already stored)."""
    now = utcnow()
    rows = [
        {
            "message_hash": p.message_hash,
            "received_at": p.received_at,
            "processed_at": now,
            "kind": p.report.kind,
            "spool_path": _clean(p.spool_path),
        }
        for p in prepared
    ]
    stmt = _insert(dialect)(feedback_messages).on_conflict_do_nothing(
        index_elements=["message_hash"]
    )
    # RETURNING, not rowcount: psycopg reports no reliable rowcount for a skipped insert.
    # With a list of rows SQLAlchemy sends them as multi-row VALUES ("insertmanyvalues").
    returning = stmt.returning(feedback_messages.c.message_hash)
    return {str(row[0]) for row in conn.execute(returning, rows)}


def bucket_start(when: dt.datetime) -> dt.datetime:
    """The start of the counter bucket (an hour, UTC) that ``when`` falls in."""
    seconds = int(when.timestamp()) // BUCKET_SECONDS * BUCKET_SECONDS
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _add_counts(conn: Connection, dialect: str, prepared: list[_Prepared]) -> None:
    """Add the events of ``prepared`` to the hourly counters, one upsert row per key."""
    totals: dict[tuple[dt.datetime, str, str, str, str], tuple[int, str, str]] = {}
    for p in prepared:
        bucket = bucket_start(p.received_at)
        for e in p.events:
            a = e.attribution
            key = (
                bucket,
                _fit(a.sending_ip, feedback_counts.c.sending_ip),
                e.kind,
                _fit(e.category, feedback_counts.c.category),
                _fit(e.receiving_domain, feedback_counts.c.receiving_domain),
            )
            count = totals.get(key, (0, "", ""))[0]
            totals[key] = (count + 1, a.pool, a.customer)
    if not totals:
        return
    stmt = _insert(dialect)(feedback_counts)
    stmt = stmt.on_conflict_do_update(
        index_elements=[c.name for c in feedback_counts.primary_key.columns],
        set_={
            "count": feedback_counts.c.count + stmt.excluded.count,
            "pool": stmt.excluded.pool,
            "customer": stmt.excluded.customer,
        },
    )
    # sorted keys: concurrent writers take row locks in the same order (no deadlock on PostgreSQL)
    rows = [
        {
            "bucket_start": bucket,
            "sending_ip": ip,
            "kind": kind,
            "category": category,
            "receiving_domain": domain,
            "pool": _fit(pool, feedback_counts.c.pool),
            "customer": _fit(customer, feedback_counts.c.customer),
            "count": count,
        }
        for (bucket, ip, kind, category, domain), (count, pool, customer) in sorted(totals.items())
    ]
    conn.execute(stmt, rows)


def _event_row(
    e: Event, seq: int, message_hash: str, received_at: dt.datetime, fb: FeedbackConfig
) -> dict[str, Any]:
    salt = str(getattr(fb, "recipient_salt", ""))
    clear = fb.store_recipients
    recipient = e.recipient if clear or not e.recipient else recipient_token(e.recipient, salt)
    detail = e.detail if clear else _redact_detail(e.detail, salt)
    c = feedback_events.c
    a = e.attribution
    return {
        "message_hash": message_hash,
        "seq": seq,
        "received_at": received_at,
        "kind": e.kind,
        "category": _fit(e.category, c.category),
        "hard": e.hard,
        "sending_ip": _fit(a.sending_ip, c.sending_ip),
        "attributed_by": _fit(a.by, c.attributed_by),
        "pool": _fit(a.pool, c.pool),
        "customer": _fit(a.customer, c.customer),
        "receiving_domain": _fit(e.receiving_domain, c.receiving_domain),
        "recipient": _fit(recipient, c.recipient),
        "status": _fit(e.status, c.status),
        "diagnostic": _clean(e.diagnostic if clear else redact(e.diagnostic, salt)),
        "blocklist": _fit(e.blocklist, c.blocklist),
        "feedback_type": _fit(e.feedback_type, c.feedback_type),
        "detail": _clean_json(detail),
    }


def _redact_detail(detail: dict[str, Any], salt: str) -> dict[str, Any]:
    # a VERP return path carries the recipient's address: hash addresses wherever they appear
    return {k: redact(v, salt) if isinstance(v, str) else v for k, v in detail.items()}


def _dmarc_rows(report: Report, rules: SendingIpRules, message_hash: str) -> list[dict[str, Any]]:
    agg = report.dmarc
    assert agg is not None
    c = dmarc_records.c
    rows = []
    for seq, r in enumerate(agg.records):
        a = rules.for_record(_normal_ip(r.source_ip))
        rows.append(
            {
                "message_hash": message_hash,
                "seq": seq,
                "org_name": _fit(agg.org_name, c.org_name),
                "report_id": _fit(agg.report_id, c.report_id),
                "begin": agg.begin,
                "end": agg.end,
                "source_ip": _fit(a.sending_ip, c.source_ip),
                "pool": _fit(a.pool, c.pool),
                "customer": _fit(a.customer, c.customer),
                "count": r.count,
                "disposition": _fit(r.disposition, c.disposition),
                "dkim": _fit(r.dkim, c.dkim),
                "spf": _fit(r.spf, c.spf),
                "header_from": _fit(r.header_from, c.header_from),
                "detail": _clean_json(
                    {
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
                    }
                ),
            }
        )
    return rows


def _normal_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        return text.strip()


def _sender_domain(message: Message | None) -> str:
    """The domain a report came from (e.g. a feedback loop's), "" when unknown."""
    if message is None:
        return ""
    return parseaddr(str(message.get("From", "")))[1].rpartition("@")[2]


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; hostile input may carry one
    return text.replace("\x00", "")


def _fit(text: str, column: sa.Column[Any]) -> str:
    """``text`` without NULs, cut to the column's length (PostgreSQL enforces it, SQLite not)."""
    length = getattr(column.type, "length", None)
    text = _clean(text or "")
    return text[:length] if length else text


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _iso(when: dt.datetime | None) -> str:
    return when.isoformat() if when is not None else ""

"""The feedback intake's write half: messages claimed exactly once, with their rows.

:func:`store_messages` writes prepared messages (``collectors.feedback.pipeline``) in
**one** transaction: it claims each message's hash in ``feedback_messages`` (a hash already
there, or claimed by a concurrent writer, makes that message a no-op), then inserts the
winners' ``feedback_senders`` (who sent it, trusted or not), ``feedback_events`` and
``dmarc_records`` (with a ``series_pending`` row per message for the time-series exporter)
and adds their increments to the hourly ``feedback_counts`` (one upsert row per counter key,
in key order). A failure anywhere
commits nothing of the batch, so a retry stores nothing twice.

Values are fitted to what the database holds here: NULs removed (PostgreSQL text cannot hold
them), strings cut to their column's length (PostgreSQL enforces it, SQLite not).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from collectors.feedback.pipeline import CountIncrement, DmarcRecord, EventRecord, PreparedMessage
from monitor.store.db import Store, Tx
from monitor.store.schema import (
    dmarc_records,
    feedback_counts,
    feedback_events,
    feedback_messages,
    feedback_senders,
    series_pending,
    utcnow,
)

#: hashes per ``IN (...)`` lookup; well under SQLite's limit of bound parameters
_LOOKUP_CHUNK = 500


def stored_kinds(store: Store, hashes: Sequence[str]) -> dict[str, str]:
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


def store_messages(
    store: Store, prepared: Sequence[PreparedMessage], *, series: bool = True
) -> set[str]:
    """Store prepared messages in one transaction; return the hashes this call claimed.

    A message whose hash is already stored (another writer won) gets nothing written.
    ``series``: list the messages with DMARC records for the time-series exporter (off when
    nothing exports, so that the list does not grow for nobody).
    """
    if not prepared:
        return set()
    with store.begin() as conn:
        claimed = _claim(conn, store.dialect, prepared)
        winners = [p for p in prepared if p.message_hash in claimed]
        if winners:
            conn.execute(feedback_senders.insert(), [_sender_row(p) for p in winners])
        events = [_event_row(e) for p in winners for e in p.events]
        if events:
            conn.execute(feedback_events.insert(), events)
            _add_counts(conn, store.dialect, [c for p in winners for c in p.counts])
        dmarc = [_dmarc_row(r) for p in winners for r in p.dmarc]
        if dmarc:
            conn.execute(dmarc_records.insert(), dmarc)
        if dmarc and series:
            # what the time-series exporter still has to write (it deletes these rows)
            hashes = dict.fromkeys(r["message_hash"] for r in dmarc)
            conn.execute(
                series_pending.insert(),
                [{"measurement": "dmarc", "message_hash": h} for h in hashes],
            )
    return claimed


def _insert(dialect: str) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT, with ON CONFLICT and RETURNING (SQLite ≥ 3.35, PostgreSQL)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _claim(conn: Tx, dialect: str, prepared: Sequence[PreparedMessage]) -> set[str]:
    """Insert the message rows; returns the hashes inserted (absent: already stored)."""
    now = utcnow()
    rows = [
        {
            "message_hash": p.message_hash,
            "received_at": p.received_at,
            "processed_at": now,
            "kind": p.kind,
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


def _add_counts(conn: Tx, dialect: str, increments: Sequence[CountIncrement]) -> None:
    """Add ``increments`` to the hourly counters, one upsert row per key (the pool and
    customer of the last increment of each key)."""
    c = feedback_counts.c
    totals: dict[tuple[dt.datetime, str, str, str, str], tuple[int, str, str]] = {}
    for inc in increments:
        key = (
            inc.bucket_start,
            _fit(inc.sending_ip, c.sending_ip),
            inc.kind,
            _fit(inc.category, c.category),
            _fit(inc.receiving_domain, c.receiving_domain),
        )
        count = totals.get(key, (0, "", ""))[0]
        totals[key] = (count + inc.count, inc.pool, inc.customer)
    if not totals:
        return
    stmt = _insert(dialect)(feedback_counts)
    stmt = stmt.on_conflict_do_update(
        index_elements=[col.name for col in feedback_counts.primary_key.columns],
        set_={
            "count": c.count + stmt.excluded.count,
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
            "pool": _fit(pool, c.pool),
            "customer": _fit(customer, c.customer),
            "count": count,
        }
        for (bucket, ip, kind, category, domain), (count, pool, customer) in sorted(totals.items())
    ]
    conn.execute(stmt, rows)


def _sender_row(p: PreparedMessage) -> dict[str, Any]:
    c = feedback_senders.c
    s = p.sender
    return {
        "message_hash": p.message_hash,
        "received_at": p.received_at,
        "kind": p.kind,
        "channel": _fit(s.channel, c.channel),
        "from_domain": _fit(s.from_domain, c.from_domain),
        "reporter": _fit(s.reporter, c.reporter),
        "method": _fit(s.method, c.method),
        "result": _fit(s.result, c.result),
        "trusted": s.trusted,
        "source": _fit(s.source, c.source),
        "peer": _fit(s.peer, c.peer),
        "helo": _fit(s.helo, c.helo),
        "reason": _clean(s.reason)[:1000],
    }


def _event_row(e: EventRecord) -> dict[str, Any]:
    c = feedback_events.c
    return {
        "message_hash": e.message_hash,
        "seq": e.seq,
        "received_at": e.received_at,
        "kind": e.kind,
        "category": _fit(e.category, c.category),
        "hard": e.hard,
        "sending_ip": _fit(e.sending_ip, c.sending_ip),
        "attributed_by": _fit(e.attributed_by, c.attributed_by),
        "pool": _fit(e.pool, c.pool),
        "customer": _fit(e.customer, c.customer),
        "receiving_domain": _fit(e.receiving_domain, c.receiving_domain),
        "recipient": _fit(e.recipient, c.recipient),
        "status": _fit(e.status, c.status),
        "diagnostic": _clean(e.diagnostic),
        "blocklist": _fit(e.blocklist, c.blocklist),
        "feedback_type": _fit(e.feedback_type, c.feedback_type),
        "detail": _clean_json(e.detail),
    }


def _dmarc_row(r: DmarcRecord) -> dict[str, Any]:
    c = dmarc_records.c
    return {
        "message_hash": r.message_hash,
        "seq": r.seq,
        "org_name": _fit(r.org_name, c.org_name),
        "report_id": _fit(r.report_id, c.report_id),
        "begin": r.begin,
        "end": r.end,
        "source_ip": _fit(r.source_ip, c.source_ip),
        "pool": _fit(r.pool, c.pool),
        "customer": _fit(r.customer, c.customer),
        "count": r.count,
        "disposition": _fit(r.disposition, c.disposition),
        "dkim": _fit(r.dkim, c.dkim),
        "spf": _fit(r.spf, c.spf),
        "header_from": _fit(r.header_from, c.header_from),
        "detail": _clean_json(r.detail),
    }


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

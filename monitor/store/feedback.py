"""Tables of the feedback intake: events, per-bucket counters, DMARC records, sent volume.

Recipient addresses never reach the counters; in events they are hashed
unless ``[feedback] store_recipients`` is set. Writers live in the intake
(collectors/feedback); rules only read these tables.
"""

from __future__ import annotations

import sqlalchemy as sa

from monitor.store.db import UtcDateTime, metadata

#: length of one counter bucket, in seconds
BUCKET_SECONDS = 3600

#: one row per message taken from the spool (idempotency: a hash seen here is never counted again)
feedback_messages = sa.Table(
    "feedback_messages",
    metadata,
    sa.Column("message_hash", sa.String(64), primary_key=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("processed_at", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("spool_path", sa.Text(), nullable=False, server_default=""),
    sa.Column("error", sa.Text()),
)

#: one row per bounced recipient, complaint, delay or report
feedback_events = sa.Table(
    "feedback_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_hash", sa.String(64), nullable=False, index=True),
    sa.Column("seq", sa.Integer, nullable=False, server_default="0"),
    sa.Column("received_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),  # bounce delay complaint dmarc-failure ...
    sa.Column("category", sa.String(32), nullable=False, server_default=""),
    sa.Column("hard", sa.Boolean()),
    sa.Column("sending_ip", sa.String(45), nullable=False, server_default="", index=True),
    sa.Column("attributed_by", sa.String(32), nullable=False, server_default=""),
    sa.Column("pool", sa.String(128), nullable=False, server_default=""),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("receiving_domain", sa.String(255), nullable=False, server_default=""),
    sa.Column("recipient", sa.String(320), nullable=False, server_default=""),  # hashed/redacted
    sa.Column("status", sa.String(16), nullable=False, server_default=""),
    sa.Column("diagnostic", sa.Text(), nullable=False, server_default=""),
    sa.Column("blocklist", sa.String(255), nullable=False, server_default=""),
    sa.Column("feedback_type", sa.String(32), nullable=False, server_default=""),
    sa.Column("detail", sa.JSON(), nullable=False, default=dict),
    sa.UniqueConstraint("message_hash", "seq", name="uq_feedback_event"),
)

#: counts per (bucket, IP, kind, category, receiving domain): what rate rules read
feedback_counts = sa.Table(
    "feedback_counts",
    metadata,
    sa.Column("bucket_start", UtcDateTime(), primary_key=True),
    sa.Column("sending_ip", sa.String(45), primary_key=True),  # "" = unattributed
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("category", sa.String(32), primary_key=True),
    sa.Column("receiving_domain", sa.String(255), primary_key=True),
    sa.Column("pool", sa.String(128), nullable=False, server_default=""),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("count", sa.Integer, nullable=False),
)

#: DMARC aggregate records: the receivers' own count of mail per source IP
dmarc_records = sa.Table(
    "dmarc_records",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_hash", sa.String(64), nullable=False, index=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("org_name", sa.String(255), nullable=False, server_default=""),
    sa.Column("report_id", sa.String(255), nullable=False, server_default=""),
    sa.Column("begin", UtcDateTime()),
    sa.Column("end", UtcDateTime(), index=True),
    sa.Column("source_ip", sa.String(45), nullable=False, index=True),
    sa.Column("pool", sa.String(128), nullable=False, server_default=""),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("disposition", sa.String(32), nullable=False, server_default=""),
    sa.Column("dkim", sa.String(16), nullable=False, server_default=""),  # policy_evaluated
    sa.Column("spf", sa.String(16), nullable=False, server_default=""),
    sa.Column("header_from", sa.String(255), nullable=False, server_default=""),
    sa.Column("detail", sa.JSON(), nullable=False, default=dict),
    sa.UniqueConstraint("message_hash", "seq", name="uq_dmarc_record"),
)

#: messages sent per (bucket, IP), reported by the MTA: the denominator of rate rules
sent_volume = sa.Table(
    "sent_volume",
    metadata,
    sa.Column("bucket_start", UtcDateTime(), primary_key=True),
    sa.Column("sending_ip", sa.String(45), primary_key=True),
    sa.Column("source", sa.String(32), primary_key=True),  # "http", "postfix-log" ...
    sa.Column("count", sa.Integer, nullable=False),
)

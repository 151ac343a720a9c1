"""Tables of cases, their timeline, and the notification outbox (declared by the cases capability).

A case is keyed by (rule, subject, source): ``source`` is the zone of a
blocklisting, the receiving domain of a bounce burst, the selector or domain
of a hygiene check, empty otherwise. At most one case per key is not
``resolved`` at any time: a partial unique index enforces it on SQLite and
PostgreSQL alike, so two evaluators can never both open one.

Every case event that must be told to someone is written to ``notify_outbox``
in the same transaction as the case change; delivery marks it delivered and a
receiver that is down leaves it pending (never lost).
"""

from __future__ import annotations

import sqlalchemy as sa

from monitor.store.db import UtcDateTime, metadata

#: case states; ``escalated`` is an event on the timeline, not a state
OPEN = "open"
ACKNOWLEDGED = "acknowledged"
REOPENED = "reopened"
RESOLVED = "resolved"
STATES = (OPEN, ACKNOWLEDGED, REOPENED, RESOLVED)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),  # blocklisting complaints bounces ...
    sa.Column("subject_kind", sa.String(16), nullable=False),  # ip domain customer
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("source", sa.String(255), nullable=False, server_default=""),
    sa.Column("state", sa.String(16), nullable=False),
    # highest severity seen since (re)opening; never lowered until resolved
    sa.Column("severity", sa.String(16), nullable=False),
    # severity of the latest finding (may be lower than ``severity``)
    sa.Column("last_severity", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False, server_default=""),
    sa.Column("pool", sa.String(128), nullable=False, server_default=""),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("numerator", sa.Integer()),
    sa.Column("denominator", sa.Integer()),
    sa.Column("window_seconds", sa.Integer()),
    sa.Column("evidence", sa.JSON(), nullable=False, default=dict),
    sa.Column("samples", sa.JSON(), nullable=False, default=list),
    sa.Column("digest", sa.String(64), nullable=False, server_default=""),
    sa.Column("opened_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen_at", UtcDateTime(), nullable=False),
    sa.Column("acknowledged_at", UtcDateTime()),
    sa.Column("resolved_at", UtcDateTime()),
    # start of the current checked-and-clear streak; NULL while firing or unknown
    sa.Column("clear_since", UtcDateTime()),
    sa.Column("resolution", sa.String(16)),  # auto / manual
    sa.Index(
        "uq_case_active",
        "rule",
        "subject",
        "source",
        unique=True,
        postgresql_where=sa.text("state != 'resolved'"),
        sqlite_where=sa.text("state != 'resolved'"),
    ),
    sa.Index("ix_case_state", "state"),
    sa.Index("ix_case_key", "rule", "subject", "source"),
)

case_events = sa.Table(
    "case_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    # opened updated escalated lowered reopened acknowledged resolved note enforcement
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16)),
    sa.Column("text", sa.Text(), nullable=False, server_default=""),
    sa.Column("actor", sa.String(64), nullable=False, server_default="repmon"),
    sa.Column("data", sa.JSON(), nullable=False, default=dict),
    sa.Index("ix_case_events_case", "case_id", "id"),
)

#: one row per (event, destination): a webhook URL or the enforcement URL
notify_outbox = sa.Table(
    "notify_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "event_id",
        sa.Integer,
        sa.ForeignKey("case_events.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("destination", sa.String(16), nullable=False),  # webhook / enforce
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("format", sa.String(16), nullable=False, server_default="json"),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
    sa.Column("last_error", sa.Text()),
    sa.Column("delivered_at", UtcDateTime()),
    sa.Index("ix_outbox_pending", "delivered_at", "next_attempt_at"),
)

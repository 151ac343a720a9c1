"""Every table of the store, in one place: SQLAlchemy Core on one :data:`metadata`.

The same declarations serve SQLite (one instance) and PostgreSQL (several). Times are stored
as timezone-aware UTC datetimes (:class:`UtcDateTime`). :class:`~monitor.store.db.Store`
creates what is missing when it opens; the query modules of this package (``checks``,
``feedback``, ``volume``, ``measures``, ``series``, ``cases``, ``jobs``, ``retention``) are the
only code that reads or writes these tables. See docs/store.md.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

metadata = sa.MetaData()

#: length of one counter bucket (``feedback_counts``, ``sent_volume``), in seconds; the
#: collectors that prepare these rows carry the same value (they cannot import the store)
BUCKET_SECONDS = 3600

#: case states; ``escalated`` is an event on the timeline, not a state
OPEN = "open"
ACKNOWLEDGED = "acknowledged"
REOPENED = "reopened"
RESOLVED = "resolved"
STATES = (OPEN, ACKNOWLEDGED, REOPENED, RESOLVED)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on both engines (SQLite drops the zone otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# --- check state (sweeps) ---------------------------------------------------------------
#
# Current state per (target, check, source), state changes, and problem episodes.
# ``unknown`` never changes a recorded state: it only notes when the last unknown happened
# and why. An episode runs from the first ``problem`` to the first ``ok`` after it (for a
# blocklist: first seen listed .. delisted at).

check_state = sa.Table(
    "check_state",
    metadata,
    sa.Column("target", sa.String(255), primary_key=True),
    sa.Column("check", sa.String(32), primary_key=True),
    sa.Column("source", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(8), nullable=False),  # ok / problem (unknown never stored here)
    sa.Column("severity", sa.String(16)),
    sa.Column("detail", sa.Text(), nullable=False, server_default=""),
    sa.Column("data", sa.JSON(), nullable=False, default=dict),
    sa.Column("pool", sa.String(128), nullable=False, server_default=""),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("checked_at", UtcDateTime(), nullable=False),  # last ok/problem answer
    sa.Column("changed_at", UtcDateTime(), nullable=False),
    sa.Column("last_unknown_at", UtcDateTime()),
    sa.Column("last_error", sa.Text()),
)

state_changes = sa.Table(
    "state_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False, index=True),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("check", sa.String(32), nullable=False),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("old_status", sa.String(8)),
    sa.Column("new_status", sa.String(8), nullable=False),
    sa.Column("severity", sa.String(16)),
    sa.Column("detail", sa.Text(), nullable=False, server_default=""),
)

problem_episodes = sa.Table(
    "problem_episodes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("check", sa.String(32), nullable=False),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen_at", UtcDateTime(), nullable=False),
    sa.Column("ended_at", UtcDateTime()),
    sa.Column("data", sa.JSON(), nullable=False, default=dict),
    sa.Index("ix_episode_key", "target", "check", "source"),
)

#: one row per finished sweep: when, how long, what came out
sweep_runs = sa.Table(
    "sweep_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sweep", sa.String(32), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("duration", sa.Float, nullable=False),
    sa.Column("targets", sa.Integer, nullable=False),
    sa.Column("ok", sa.Integer, nullable=False),
    sa.Column("problem", sa.Integer, nullable=False),
    sa.Column("unknown", sa.Integer, nullable=False),
    sa.Column("unknown_by_source", sa.JSON(), nullable=False, default=dict),
)

# --- feedback intake, sent volume -------------------------------------------------------
#
# Recipient addresses never reach the counters; in events they are hashed unless
# ``[feedback] store_recipients`` is set. The intake writes (monitor/store/feedback.py),
# rules and the time series only read.

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

# --- cases, their timeline, the notification outbox ----------------------------------------
#
# A case is keyed by (rule, subject, source): ``source`` is the zone of a blocklisting, the
# receiving domain of a bounce burst, the selector or domain of a hygiene check, empty
# otherwise. At most one case per key is not ``resolved`` at any time: a partial unique index
# enforces it on SQLite and PostgreSQL alike, so two evaluators can never both open one.
#
# Every case event that must be told to someone is written to ``notify_outbox`` in the same
# transaction as the case change; delivery marks it delivered and a receiver that is down
# leaves it pending (never lost).

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

# --- the scheduler's own record: last and next run of each job, per instance -----------------

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("job", sa.String(64), primary_key=True),
    sa.Column("instance", sa.String(128), primary_key=True),
    sa.Column("last_start", UtcDateTime()),
    sa.Column("last_end", UtcDateTime()),
    sa.Column("last_status", sa.String(16), nullable=False, server_default=""),  # ok error skipped
    sa.Column("last_error", sa.Text()),
    sa.Column("next_run", UtcDateTime()),
    sa.Column("runs", sa.Integer, nullable=False, server_default="0"),
)

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


# --- the schema's own version (monitor/store/migrate.py) ---------------------------------

#: one row (``id`` 1): the last migration step applied
schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# --- check state (sweeps) ---------------------------------------------------------------
#
# State per (target, check, source), state changes, and problem episodes. ``unknown`` never
# changes a recorded state: it only notes when the last unknown happened and why. An episode
# runs from the first ``problem`` to the first ``ok`` after it (for a blocklist: first seen
# listed .. delisted at).
#
# Bulk sweeps (dnsbl) keep a row only for what is not plainly fine: a problem, an unknown, or
# an ok that still matters (it ended a problem whose case is not resolved yet). A pair a
# sweep covered and found clean has no row: ``sweep_coverage`` says what each sweep covered.
# The other checks (hygiene, reports) keep a row per result, ok included.

check_state = sa.Table(
    "check_state",
    metadata,
    sa.Column("target", sa.String(255), primary_key=True),
    sa.Column("check", sa.String(32), primary_key=True),
    sa.Column("source", sa.String(255), primary_key=True),
    # ok / problem; ``unknown`` only on a bulk-sweep row that has never had a known answer
    # (created by an unknown answer; its ``checked_at`` is then when that was first seen)
    sa.Column("status", sa.String(8), nullable=False),
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

#: one row per (sweep run, check, source) of a bulk sweep: what it covered and what came out.
#: A pair it covered that has no ``check_state`` row was answered ok. Deleted with its run.
sweep_coverage = sa.Table(
    "sweep_coverage",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("sweep_runs.id", ondelete="CASCADE")),
    sa.Column("check", sa.String(32), nullable=False),
    sa.Column("source", sa.String(255), nullable=False),
    # inventory (every watched target) / targets (a given list) / migrated (rebuilt from the
    # rows of the schema before coverage existed)
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("pools", sa.JSON(), nullable=False, default=list),  # pools covered (inventory)
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=False),
    sa.Column("complete", sa.Boolean(), nullable=False),  # false: stopped before the end
    sa.Column("covered", sa.Integer, nullable=False),  # (target, source) pairs asked
    sa.Column("listed", sa.Integer, nullable=False),
    sa.Column("unknown", sa.Integer, nullable=False),
    sa.Column("selftest_ok", sa.Boolean(), nullable=False),
    sa.Column("failed_chunks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text()),  # why the source could not be trusted, when it could not
    sa.Index("ix_coverage_source", "check", "source", "started_at"),
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

# --- mailbox providers' own data: Microsoft SNDS, Google Postmaster Tools --------------------
#
# What Outlook.com and Gmail publish about our IPs and domains, one row per (IP, day) or
# (domain, day) as the provider publishes it. A day fetched again (late, or published anew)
# replaces its rows: upserts by key, and an SNDS day fetched again drops the rows the new file
# no longer has. Written by monitor/store/providers.py for the keepers in monitor/providers.py.

#: one row per row of the SNDS data export: what Outlook.com saw from one IP on one day
snds_activity = sa.Table(
    "snds_activity",
    metadata,
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("ip", sa.String(45), primary_key=True),
    # 0; 1, 2 ... only when SNDS lists the same IP more than once on a day
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    # times as SNDS writes them: it names no time zone, so they carry none
    sa.Column("activity_start", sa.DateTime()),
    sa.Column("activity_end", sa.DateTime()),
    sa.Column("rcpt_commands", sa.BigInteger()),  # NULL: the column was empty
    sa.Column("data_commands", sa.BigInteger()),
    sa.Column("message_recipients", sa.BigInteger()),
    sa.Column("filter_result", sa.String(8), nullable=False, server_default=""),  # GREEN ...
    sa.Column("complaint_rate", sa.Float()),  # a ratio: 0.003 = 0.3 %
    # published as "< 0.1%": complaint_rate is an upper bound
    sa.Column("complaint_rate_below", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("complaint_rate_text", sa.Text(), nullable=False, server_default=""),
    sa.Column("trap_start", sa.DateTime()),
    sa.Column("trap_end", sa.DateTime()),
    sa.Column("trap_hits", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sample_helo", sa.Text(), nullable=False, server_default=""),
    sa.Column("jmr_p1_sender", sa.Text(), nullable=False, server_default=""),
    sa.Column("comments", sa.Text(), nullable=False, server_default=""),
    sa.Column("pool", sa.String(128), nullable=False, server_default=""),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("watched", sa.Boolean(), nullable=False, server_default=sa.false()),  # ours
    sa.Column("fetched_at", UtcDateTime(), nullable=False),
    sa.Index("ix_snds_activity_ip", "ip", "day"),
)

#: one row per range of the SNDS IP status export, from the first fetch that listed it to the
#: first that did not (``cleared_at``); a range listed again starts over
snds_blocked_ranges = sa.Table(
    "snds_blocked_ranges",
    metadata,
    sa.Column("first", sa.String(45), primary_key=True),  # inclusive range first .. last
    sa.Column("last", sa.String(45), primary_key=True),
    sa.Column("blocked", sa.Boolean(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False, server_default=""),
    sa.Column("pool", sa.String(128), nullable=False, server_default=""),  # of the first address
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("watched_ips", sa.Integer, nullable=False, server_default="0"),  # ours inside
    sa.Column("first_seen_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen_at", UtcDateTime(), nullable=False),  # the last fetch listing it
    sa.Column("cleared_at", UtcDateTime()),  # the first fetch no longer listing it
)

#: one row per (domain, day) of Postmaster Tools traffic statistics
postmaster_days = sa.Table(
    "postmaster_days",
    metadata,
    sa.Column("domain", sa.String(255), primary_key=True),
    sa.Column("day", sa.Date(), primary_key=True),
    # ratios 0.0-1.0; NULL: Gmail left the metric out (too little traffic), never 0
    sa.Column("spam_ratio", sa.Float()),
    sa.Column("spam_ratio_lower", sa.Float()),
    sa.Column("spam_ratio_upper", sa.Float()),
    sa.Column("domain_reputation", sa.String(8), nullable=False, server_default=""),  # HIGH ...
    # [{"reputation", "ip_count", "sample_ips"}] per category Gmail gave
    sa.Column("ip_reputations", sa.JSON(), nullable=False, default=list),
    sa.Column("spf_ratio", sa.Float()),
    sa.Column("dkim_ratio", sa.Float()),
    sa.Column("dmarc_ratio", sa.Float()),
    sa.Column("outbound_tls_ratio", sa.Float()),
    sa.Column("inbound_tls_ratio", sa.Float()),
    sa.Column("delivery_errors", sa.JSON(), nullable=False, default=list),  # class, type, ratio
    sa.Column("spammy_feedback_loops", sa.JSON(), nullable=False, default=list),  # id, ratio
    sa.Column("pool", sa.String(128), nullable=False, server_default=""),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("watched", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("fetched_at", UtcDateTime(), nullable=False),
    sa.Index("ix_postmaster_days_day", "day"),
)

#: one row per domain: its latest Postmaster Tools v2 compliance status
postmaster_compliance = sa.Table(
    "postmaster_compliance",
    metadata,
    sa.Column("domain", sa.String(255), primary_key=True),
    # [{"requirement", "status", "reason"}]
    sa.Column("requirements", sa.JSON(), nullable=False, default=list),
    sa.Column("needs_work", sa.Integer, nullable=False, server_default="0"),
    sa.Column("pool", sa.String(128), nullable=False, server_default=""),
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("watched", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("fetched_at", UtcDateTime(), nullable=False),
)

#: one row per provider collector (snds, postmaster): its last fetch and what went wrong
provider_fetches = sa.Table(
    "provider_fetches",
    metadata,
    sa.Column("collector", sa.String(32), primary_key=True),
    sa.Column("fetched_at", UtcDateTime(), nullable=False),
    sa.Column("errors", sa.JSON(), nullable=False, default=list),  # the report's, key masked
    # snds: day judged, missing days, blocked ranges read; postmaster: judged and missing days
    # per domain, domains registered
    sa.Column("detail", sa.JSON(), nullable=False, default=dict),
    sa.Column("rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("ok", sa.Integer, nullable=False, server_default="0"),
    sa.Column("problem", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unknown", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_success_at", UtcDateTime()),  # the last fetch without errors
    sa.Column("fetches", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),  # with errors
)

# --- who sent each feedback message, and whether it is trusted (docs/feedback.md) ------------
#
# One row per stored feedback message (same ``message_hash`` as ``feedback_messages``), written
# in the same transaction. The rules join it: events and DMARC records of an untrusted
# message never feed a denominator or enforcement. A message stored before this table existed
# has no row and counts as it did then (trusted).

feedback_senders = sa.Table(
    "feedback_senders",
    metadata,
    sa.Column("message_hash", sa.String(64), primary_key=True),
    sa.Column("received_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),  # smtp / local (repmon ingest)
    sa.Column("from_domain", sa.String(255), nullable=False, server_default=""),  # as claimed
    sa.Column("reporter", sa.String(255), nullable=False, server_default=""),  # authenticated
    sa.Column("method", sa.String(8), nullable=False, server_default=""),  # dkim spf local
    # pass fail none temperror permerror skipped (not a source for this kind: not checked)
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("trusted", sa.Boolean(), nullable=False),
    sa.Column("source", sa.String(255), nullable=False, server_default=""),  # matching source
    sa.Column("peer", sa.String(64), nullable=False, server_default=""),  # SMTP client IP
    sa.Column("helo", sa.String(255), nullable=False, server_default=""),
    sa.Column("reason", sa.Text(), nullable=False, server_default=""),
)

# --- what the time-series exporter has written (monitor/exporter.py, docs/timeseries.md) -----
#
# Counters are exported as deltas, once per change: ``series_exported`` keeps per counter key
# the count already written, ``series_buckets`` per bucket the totals already written (to find
# changed buckets without reading their rows) and the number of export rounds (each round's
# deltas get their own timestamp inside the hour). ``series_pending`` lists the messages whose
# DMARC records are still to export, written by the intake in the same transaction as them.

series_exported = sa.Table(
    "series_exported",
    metadata,
    sa.Column("measurement", sa.String(16), primary_key=True),  # feedback / sent
    sa.Column("bucket_start", UtcDateTime(), primary_key=True),
    sa.Column("key", sa.String(512), primary_key=True),  # the counter's key columns joined
    sa.Column("count", sa.BigInteger, nullable=False),
)

series_buckets = sa.Table(
    "series_buckets",
    metadata,
    sa.Column("measurement", sa.String(16), primary_key=True),
    sa.Column("bucket_start", UtcDateTime(), primary_key=True),
    sa.Column("total", sa.BigInteger, nullable=False),  # sum of the counts exported
    sa.Column("key_count", sa.Integer, nullable=False),  # counter keys exported
    sa.Column("rounds", sa.Integer, nullable=False),  # export rounds so far
)

series_pending = sa.Table(
    "series_pending",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("measurement", sa.String(16), nullable=False),  # dmarc
    sa.Column("message_hash", sa.String(64), nullable=False),
)

# --- the leader's heartbeat (monitor/daemon/leader.py, docs/operations.md) --------------------
#
# The holder of the leader lock writes ``beat_at`` (the database's clock) from the session that
# holds the lock, every few seconds. Another instance that finds it older than the bound ends
# that session (``pg_terminate_backend``) and takes the lock: a wedged leader loses the lead.

leader_heartbeat = sa.Table(
    "leader_heartbeat",
    metadata,
    sa.Column("lock_key", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("instance", sa.String(128), nullable=False),
    sa.Column("backend_pid", sa.Integer, nullable=False),
    sa.Column("beat_at", UtcDateTime(), nullable=False),
)

# --- abuse reports (monitor/store/abuse.py, docs/abuse.md) -----------------------------------
#
# ``abuse_messages`` claims each message's hash in the same transaction as its reports
# (exactly once). One ``abuse_reports`` row per report, one ``abuse_addresses`` row per
# (report, customer) named and one for what is not ours -- counts and a bounded sample, never
# a row per address -- and hourly ``abuse_counts`` per (category, reporter, customer), where
# customer "" is what is not ours (the per-reporter count of foreign addresses) and "*" every
# report once. A reclassification moves a report's counts to its new category.

abuse_messages = sa.Table(
    "abuse_messages",
    metadata,
    sa.Column("message_hash", sa.String(64), primary_key=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("processed_at", UtcDateTime(), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),  # smtp / local (repmon ingest)
    sa.Column("spool_path", sa.Text(), nullable=False, server_default=""),
    sa.Column("reports", sa.Integer, nullable=False),
)

abuse_reports = sa.Table(
    "abuse_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_hash", sa.String(64), nullable=False),
    sa.Column("report_index", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # abuse-report / complaint
    sa.Column("category", sa.String(32), nullable=False),  # as classified on arrival
    sa.Column("confidence", sa.Float(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False, server_default=""),
    sa.Column("severity", sa.String(16), nullable=False),  # [abuse] severity of its category
    sa.Column("needs_review", sa.Boolean(), nullable=False),
    sa.Column("muted", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("reporter", sa.String(255), nullable=False, server_default=""),
    sa.Column("format", sa.String(64), nullable=False, server_default=""),
    sa.Column("subject", sa.Text(), nullable=False, server_default=""),
    sa.Column("reported_at", UtcDateTime()),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),  # incidents
    sa.Column("ips", sa.Integer, nullable=False),  # distinct addresses named
    sa.Column("ours", sa.Integer, nullable=False),  # addresses and URLs of ours
    sa.Column("not_ours", sa.Integer, nullable=False),  # addresses not ours
    sa.Column("ignored", sa.Integer, nullable=False, server_default="0"),  # own_networks
    sa.Column("url_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("urls", sa.JSON(), nullable=False, default=list),  # the first 100
    sa.Column("excerpt", sa.Text(), nullable=False, server_default=""),  # redacted
    sa.Column("extra", sa.JSON(), nullable=False, default=dict),
    sa.Column("truncated", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("reclassified_category", sa.String(32)),
    sa.Column("reclassified_by", sa.String(64)),
    sa.Column("reclassified_at", UtcDateTime()),
    sa.UniqueConstraint("message_hash", "report_index", name="uq_abuse_report"),
    sa.Index("ix_abuse_reports_received", "received_at"),
    sa.Index("ix_abuse_reports_review", "needs_review", "reclassified_at"),
)

abuse_addresses = sa.Table(
    "abuse_addresses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "report_id",
        sa.Integer,
        sa.ForeignKey("abuse_reports.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # the customer (a pool without one: the pool's name); "" with ours false: not ours
    sa.Column("customer", sa.String(128), nullable=False, server_default=""),
    sa.Column("ours", sa.Boolean(), nullable=False),
    sa.Column("pools", sa.JSON(), nullable=False, default=list),
    sa.Column("addresses", sa.Integer, nullable=False),
    sa.Column("urls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sample", sa.JSON(), nullable=False, default=list),  # at most 20 addresses
    sa.Column("sample_urls", sa.JSON(), nullable=False, default=list),  # at most 10
    sa.Column("received_at", UtcDateTime(), nullable=False),  # the report's
    sa.UniqueConstraint("report_id", "customer", "ours", name="uq_abuse_address"),
    sa.Index("ix_abuse_addresses_customer", "customer", "received_at"),
)

abuse_counts = sa.Table(
    "abuse_counts",
    metadata,
    sa.Column("bucket_start", UtcDateTime(), primary_key=True),
    sa.Column("category", sa.String(32), primary_key=True),
    sa.Column("reporter", sa.String(255), primary_key=True),
    sa.Column("customer", sa.String(128), primary_key=True),  # "" not ours, "*" all reports
    sa.Column("reports", sa.Integer, nullable=False),
    sa.Column("addresses", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False, index=True),
)

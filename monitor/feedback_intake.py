"""The feedback intake: a spooled or saved message → prepared → stored, exactly once.

The collector prepares (``collectors.feedback.pipeline``: parse, attribute, the rows to
keep), the store writes (``monitor.store.feedback``): one transaction claims each message's
hash in ``feedback_messages`` (a hash already there makes that message a no-op) together
with its ``feedback_events``, ``dmarc_records`` and hourly ``feedback_counts``, for one
message (:func:`ingest_spooled`, :func:`ingest_report`) or for a batch of spooled messages
(:func:`ingest_batch`, what the sink uses). A message that cannot be parsed writes nothing
(the sink quarantines it). Used by ``monitor/intake.py`` (the sink and ``repmon run``) and
``repmon ingest``. See docs/feedback.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from email.message import Message

from collectors.feedback.config import FeedbackConfig
from collectors.feedback.model import Report
from collectors.feedback.pipeline import IngestOutcome, PreparedMessage, Preparer, SpooledItem
from collectors.feedback.trust import Envelope, Verifier
from collectors.targets import Targets
from monitor.config import Config
from monitor.store import Store
from monitor.store.feedback import store_messages, stored_kinds

__all__ = [
    "Envelope",
    "IngestOutcome",
    "SpooledItem",
    "feedback_section",
    "ingest_batch",
    "ingest_report",
    "ingest_spooled",
]


def feedback_section(config: Config | FeedbackConfig) -> FeedbackConfig:
    return config.feedback if isinstance(config, Config) else config


def _exported(config: Config | FeedbackConfig) -> bool:
    """Whether a time-series exporter runs for this store (``[influxdb]`` set)."""
    return not isinstance(config, Config) or config.influxdb is not None


def verifier_for(config: Config | FeedbackConfig) -> Verifier:
    """Authenticates SMTP-received reports against ``[feedback]`` sources, with the DNS of
    ``[resolver]`` (the system resolver when only a ``[feedback]`` section is given)."""
    fb = feedback_section(config)
    if isinstance(config, Config):
        return Verifier(fb.trusted_sources(), config.resolver.servers(), config.resolver.timeout)
    return Verifier(fb.trusted_sources())


def ingest_spooled(
    store: Store,
    config: Config | FeedbackConfig,
    inventory: Targets,
    raw: bytes,
    message_hash: str,
    received_at: dt.datetime,
    spool_path: str,
    *,
    envelope_to: Sequence[str] = (),
    smtp: Envelope | None = None,
) -> IngestOutcome:
    """Parse, attribute and store one message taken from the spool.

    Returns the outcome (``duplicate=True`` and nothing written when the hash is already
    stored). Raises ParseError, writing nothing, when the message is broken.
    ``envelope_to``: the SMTP RCPT TO addresses, searched for a VERP token first.
    ``smtp``: the SMTP session it came in, which its trust is judged by (``None``: given by
    the operator, trusted).
    """
    item = SpooledItem(raw, message_hash, received_at, spool_path, envelope_to, smtp)
    result = ingest_batch(store, config, inventory, [item])[0]
    if isinstance(result, Exception):
        raise result
    return result


def ingest_batch(
    store: Store,
    config: Config | FeedbackConfig,
    inventory: Targets,
    items: Sequence[SpooledItem],
) -> list[IngestOutcome | Exception]:
    """Parse, attribute and store many spooled messages in **one** transaction.

    Returns one entry per item, in order:

    - an :class:`IngestOutcome`: the message is stored, or was already (``duplicate=True``:
      its hash was in the store before, or earlier in this batch; nothing written for it);
    - an exception (``ParseError``, or a parser bug): that message could not be read;
      nothing is written for it and the rest of the batch is stored all the same.

    Each message is parsed before the transaction opens, so a bad one never fails the
    batch. A message with ``smtp`` (what the sink received) is authenticated there too
    (``collectors.feedback.trust``) and stored with its trust facts in ``feedback_senders``;
    one without is the operator's input and trusted. A store error
    (:class:`~checks.errors.StoreUnavailable` and its kin) propagates and nothing of the
    batch is committed. Every message's hash row commits together with
    its events: a retry of the same batch after a crash stores nothing twice.
    """
    preparer = Preparer(inventory, feedback_section(config), verifier_for(config))
    results: list[IngestOutcome | Exception | None] = [None] * len(items)
    known = stored_kinds(store, [item.message_hash for item in items])
    todo: list[tuple[int, PreparedMessage]] = []
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
            prepared = preparer.spooled(item)
        except Exception as exc:  # ParseError, or a bug on hostile input: this message only
            results[i] = exc
            del seen[item.message_hash]  # a second copy fails the same way, not "duplicate"
            continue
        seen[item.message_hash] = prepared.kind
        todo.append((i, prepared))
    claimed = store_messages(store, [p for _, p in todo], series=_exported(config))
    for i, p in todo:
        results[i] = (
            p.outcome if p.message_hash in claimed else IngestOutcome(p.kind, duplicate=True)
        )
    return [r if r is not None else IngestOutcome("", duplicate=True) for r in results]


def ingest_report(
    store: Store,
    config: Config | FeedbackConfig,
    inventory: Targets,
    report: Report,
    message_hash: str,
    received_at: dt.datetime,
    spool_path: str = "",
    *,
    message: Message | None = None,
    envelope_to: Sequence[str] = (),
) -> IngestOutcome:
    """Store an already parsed report in one transaction (see :func:`ingest_spooled`)."""
    preparer = Preparer(inventory, feedback_section(config))
    prepared = preparer.report(
        report, message_hash, received_at, spool_path, message=message, envelope_to=envelope_to
    )
    if not store_messages(store, [prepared], series=_exported(config)):
        return IngestOutcome(kind=report.kind, duplicate=True)
    return prepared.outcome

"""What the feedback view reads: bounces and complaints per sending IP, kind and receiving
domain over a window (``repmon feedback``, ``GET /v1/feedback``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from monitor.store.db import Tx
from monitor.store.schema import feedback_events, feedback_senders

#: the event kinds the view shows
KINDS = ("bounce", "complaint")


@dataclass(frozen=True, slots=True)
class FeedbackCount:
    """Events of one (IP, kind, category, hardness, feedback type, receiving domain)."""

    sending_ip: str
    pool: str
    customer: str
    kind: str
    category: str
    hard: bool
    feedback_type: str
    receiving_domain: str
    count: int
    #: of ``count``, events from reports that did not authenticate as a trusted source
    untrusted: int = 0


def feedback_counts_between(tx: Tx, start: dt.datetime, end: dt.datetime) -> list[FeedbackCount]:
    """Bounces and complaints received in ``[start, end)``, grouped (unattributed: ip "")."""
    e, s = feedback_events.c, feedback_senders.c
    # a message without a sender row predates trust checking: counted as trusted, as stored
    untrusted = sa.func.sum(sa.case((s.trusted.is_(False), 1), else_=0))
    q = (
        sa.select(
            e.sending_ip,
            sa.func.max(e.pool),
            sa.func.max(e.customer),
            e.kind,
            e.category,
            e.hard,
            e.feedback_type,
            e.receiving_domain,
            sa.func.count(),
            untrusted,
        )
        .select_from(feedback_events.outerjoin(feedback_senders, s.message_hash == e.message_hash))
        .where(e.received_at >= start, e.received_at < end, e.kind.in_(KINDS))
        .group_by(e.sending_ip, e.kind, e.category, e.hard, e.feedback_type, e.receiving_domain)
    )
    return [
        FeedbackCount(
            ip, pool or "", cust or "", kind, cat, bool(hard), ft, dom, int(n), int(u or 0)
        )
        for ip, pool, cust, kind, cat, hard, ft, dom, n, u in tx.execute(q)
    ]

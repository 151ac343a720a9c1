"""Automatic cases: threshold rules over the store, the case lifecycle, notifications.

Data flows one way: the store (check state, feedback, volume) -> rules ->
cases -> outbox -> webhooks. Rules never perform DNS. See docs/cases.md.
"""

from monitor.cases.lifecycle import EvaluationSummary, evaluate
from monitor.cases.model import Case, CaseEvent, Clear, Finding
from monitor.cases.notify import DeliverySummary, deliver_notifications
from monitor.cases.queue import (
    CaseNotFound,
    CaseStateError,
    acknowledge,
    add_note,
    count_matching,
    get_case,
    list_cases,
    open_case_counts,
    resolve,
)

__all__ = [
    "Case",
    "CaseEvent",
    "CaseNotFound",
    "CaseStateError",
    "Clear",
    "DeliverySummary",
    "EvaluationSummary",
    "Finding",
    "acknowledge",
    "add_note",
    "deliver_notifications",
    "evaluate",
    "get_case",
    "count_matching",
    "list_cases",
    "open_case_counts",
    "resolve",
]

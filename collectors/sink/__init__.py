"""The SMTP feedback sink: accepts bounces, complaints and reports, spools them durably,
and hands each to the feedback intake exactly once. See docs/sink.md."""

from collectors.sink.processor import Process, ProcessorStats, RetryLater, SpoolProcessor
from collectors.sink.server import (
    FeedbackHandler,
    RecipientPolicy,
    Sink,
    parse_listen,
    run_until_signal,
    serve,
)
from collectors.sink.spool import Spool, SpooledMessage, SpoolError

__all__ = [
    "FeedbackHandler",
    "Process",
    "ProcessorStats",
    "RecipientPolicy",
    "RetryLater",
    "Sink",
    "Spool",
    "SpoolError",
    "SpoolProcessor",
    "SpooledMessage",
    "parse_listen",
    "run_until_signal",
    "serve",
]

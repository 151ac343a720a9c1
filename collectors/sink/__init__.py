"""The SMTP feedback sink: accepts bounces, complaints and reports, spools them durably,
and hands each to the feedback intake exactly once. See docs/sink.md."""

from collectors.sink.commit import GroupCommit
from collectors.sink.processor import (
    BatchProcess,
    Process,
    ProcessBatch,
    ProcessorStats,
    Rejected,
    RetryLater,
    SpoolProcessor,
)
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
    "BatchProcess",
    "FeedbackHandler",
    "GroupCommit",
    "Process",
    "ProcessBatch",
    "ProcessorStats",
    "RecipientPolicy",
    "Rejected",
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

"""The SMTP feedback sink: accepts bounces, complaints and reports, spools them durably,
and hands each to the intake exactly once. Config ``[sink]``; see README.md beside this file
and docs/sink.md."""

from collectors.sink.commit import GroupCommit
from collectors.sink.config import SinkConfig
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
from collectors.unit import Collector

UNIT = Collector(
    name="sink",
    title="the SMTP sink: bounces, complaints and reports received, spooled durably",
    section="sink",
    config_model=SinkConfig,
    leader_only=False,
)

__all__ = [
    "UNIT",
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
    "SinkConfig",
    "Spool",
    "SpoolError",
    "SpoolProcessor",
    "SpooledMessage",
    "parse_listen",
    "run_until_signal",
    "serve",
]

"""Feedback: bounces, complaints, DMARC and TLS reports, parsed and attributed to sending IPs.

Config ``[feedback]`` (:class:`FeedbackConfig`); messages come from the sink's spool and from
``repmon ingest``. See README.md beside this file and docs/feedback.md.
"""

from collectors.feedback.config import FeedbackConfig
from collectors.unit import Collector

UNIT = Collector(
    name="feedback",
    title="bounces, complaints, DMARC and TLS reports: parsed, classified, attributed",
    section="feedback",
    config_model=FeedbackConfig,
    leader_only=False,
)

__all__ = ["UNIT", "FeedbackConfig"]

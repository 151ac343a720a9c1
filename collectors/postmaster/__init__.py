"""Google Postmaster Tools: what Gmail thinks of each sending domain, per day.

Config ``[postmaster]`` (:class:`PostmasterConfig`); the job calls :func:`collect_postmaster`,
which returns a :class:`PostmasterReport` (rows per domain and day, compliance status, and the
``gmail-spam-rate``, ``gmail-reputation``, ``gmail-auth``, ``gmail-compliance`` results). See
README.md beside this file.
"""

from collectors.postmaster.collect import (
    CHECK_AUTH,
    CHECK_COMPLIANCE,
    CHECK_REPUTATION,
    CHECK_SPAM,
    PostmasterReport,
    collect_postmaster,
    compliance_result,
    day_results,
)
from collectors.postmaster.config import PostmasterConfig
from collectors.postmaster.model import DomainCompliance, DomainDay, RegisteredDomain
from collectors.postmaster.sweep import run
from collectors.unit import Collector

UNIT = Collector(
    name="postmaster",
    title="Google Postmaster Tools: Gmail spam rate, domain and IP reputation, authentication",
    section="postmaster",
    config_model=PostmasterConfig,
    job="postmaster_fetch",
    # Gmail publishes each day once, a day or two late; four runs a day notice it within
    # hours at a few requests per domain, far inside the API's quota
    interval="6h",
    sweep=run,
)

__all__ = [
    "CHECK_AUTH",
    "CHECK_COMPLIANCE",
    "CHECK_REPUTATION",
    "CHECK_SPAM",
    "UNIT",
    "DomainCompliance",
    "DomainDay",
    "PostmasterConfig",
    "PostmasterReport",
    "RegisteredDomain",
    "collect_postmaster",
    "compliance_result",
    "day_results",
]

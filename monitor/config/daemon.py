"""``[schedule]`` and ``[api]``: the always-on monitor (``repmon run``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, create_model, field_validator

from collectors.config import Section, parse_duration
from collectors.registry import COLLECTORS


class ScheduleBase(Section):
    """``[schedule]``: how often each job of ``repmon run`` runs (``"15m"``, ``"1h"``).

    The application's own jobs are declared here; each scheduled collector adds its job
    key (``dnsbl_sweep``, ``hygiene_sweep``, …) with its default interval from the registry.
    """

    spool: str = "30s"
    evaluate: str = "5m"
    timeseries_flush: str = "30s"
    housekeeping: str = "1d"
    jitter: str = "30s"

    @field_validator("*")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v

    def seconds(self, job: str) -> float:
        return parse_duration(getattr(self, job))


_JOBS: dict[str, Any] = {c.job: (str, c.interval) for c in COLLECTORS if c.job and c.interval}

if TYPE_CHECKING:
    ScheduleConfig = ScheduleBase
else:
    ScheduleConfig = create_model("ScheduleConfig", __base__=ScheduleBase, **_JOBS)


class RetentionConfig(Section):
    """``[retention]``: how long processed data is kept (housekeeping job)."""

    #: processed messages kept in the spool's done/ folder as evidence
    spool_done: str = "30d"
    #: feedback events, DMARC records, counters and sent volume
    feedback: str = "400d"
    #: state changes, ended problem episodes, sweep runs
    history: str = "400d"

    @field_validator("spool_done", "feedback", "history")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v


class ApiConfig(Section):
    """``[api]``: the HTTP API of ``repmon run``; state changes need the bearer token."""

    listen: str = "127.0.0.1:8025"
    token: SecretStr | None = None
    #: set to false to run without the HTTP API
    enabled: bool = True

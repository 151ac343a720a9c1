"""``[schedule]`` and ``[api]``: the always-on monitor (``repmon run``)."""

from __future__ import annotations

from pydantic import SecretStr, field_validator

from monitor.config.base import Section, parse_duration


class ScheduleConfig(Section):
    """``[schedule]``: how often each job of ``repmon run`` runs (``"15m"``, ``"1h"``)."""

    dnsbl_sweep: str = "1h"
    hygiene_sweep: str = "6h"
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

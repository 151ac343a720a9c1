"""``[schedule]`` and ``[api]``: the always-on monitor (``repmon run``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from collectors.config import ListenAddress, Section, parse_duration
from collectors.registry import COLLECTORS

#: a job's interval: at least a second, at most a year; the jitter: 0 (none) to a day
MIN_INTERVAL_SECONDS = 1.0
MAX_INTERVAL_SECONDS = 365 * 86400.0
MAX_JITTER_SECONDS = 86400.0


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
    def _dur(cls, v: str, info: ValidationInfo) -> str:
        if info.field_name == "jitter":
            parse_duration(v, maximum=MAX_JITTER_SECONDS)
        else:  # a job's interval: 0 would run it back to back, forever
            parse_duration(v, minimum=MIN_INTERVAL_SECONDS, maximum=MAX_INTERVAL_SECONDS)
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
    """``[api]``: the HTTP API of ``repmon run``. Reads need ``read_token`` (or ``token``);
    state changes need ``token``; ``/healthz`` is open. See docs/security.md."""

    listen: ListenAddress = "127.0.0.1:8025"
    #: bearer token for state changes (and reads)
    token: SecretStr | None = None
    #: bearer token for reads only (status, cases, checks, metrics)
    read_token: SecretStr | None = None
    #: reads without a token: allowed only when ``listen`` is a loopback address
    open_reads: bool = False
    #: set to false to run without the HTTP API
    enabled: bool = True
    #: a request body larger than this is refused (413) before it is read
    max_body_bytes: int = Field(1 << 20, ge=1024, le=1 << 30)
    #: ad hoc checks (``/v1/check``) running at once; more get 429
    check_concurrency: int = Field(2, ge=1, le=64)
    #: addresses and domains one ad hoc check may cover (a CIDR counts its addresses)
    check_max_targets: int = Field(256, ge=1, le=65536)
    #: an ad hoc check still running after this gets 504
    check_deadline: str = "30s"
    #: failed authentications per client address and minute before it gets 429
    auth_failures_per_minute: int = Field(10, ge=1, le=10000)

    @field_validator("check_deadline")
    @classmethod
    def _deadline(cls, v: str) -> str:
        if not 0 < parse_duration(v) <= 600:
            raise ValueError("expected a duration between 1s and 10m")
        return v

    @model_validator(mode="after")
    def _open_reads_on_loopback(self) -> ApiConfig:
        host = self.listen.rpartition(":")[0].strip("[]")
        if self.open_reads and host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(
                "open_reads is allowed only when listen is a loopback address; "
                "set read_token to expose reads beyond loopback"
            )
        return self

"""``[schedule]`` and ``[api]``: the always-on monitor (``repmon run``)."""

from __future__ import annotations

from pydantic import SecretStr

from monitor.config.base import Section


class ScheduleConfig(Section):
    dnsbl_sweep: str = "1h"
    hygiene_sweep: str = "6h"
    spool: str = "30s"
    evaluate: str = "5m"
    timeseries_flush: str = "30s"
    housekeeping: str = "1d"
    jitter: str = "30s"


class ApiConfig(Section):
    listen: str = "127.0.0.1:8025"
    token: SecretStr | None = None

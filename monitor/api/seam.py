"""What the HTTP API needs of the running daemon, and nothing more.

``monitor.daemon.monitor.Monitor`` implements :class:`Daemon`; the API depends on this
protocol only, so the daemon can import the API without the API importing the daemon.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Protocol

from checks.result import CheckResult
from monitor.adhoc import CheckRequest
from monitor.config import Config
from monitor.store import Store


class Daemon(Protocol):
    """A running ``repmon run`` instance as the API sees it."""

    @property
    def config(self) -> Config: ...

    @property
    def instance(self) -> str: ...

    @property
    def started_at(self) -> dt.datetime: ...

    @property
    def store(self) -> Store: ...

    def is_leader(self) -> bool:
        """Whether this instance runs the scheduled jobs now."""
        ...

    def spool_depth(self) -> int:
        """Messages waiting in the sink's spool."""
        ...

    def timeseries_pending(self) -> int:
        """Points waiting in the time-series buffer."""
        ...

    async def check(
        self, request: CheckRequest, gone: Callable[[], Awaitable[bool]] | None = None
    ) -> list[CheckResult]:
        """An ad hoc check, bounded in concurrency and time, cancelled when ``gone()``."""
        ...

    def metrics_text(self) -> bytes:
        """repmon's own metrics in Prometheus text format, refreshed."""
        ...

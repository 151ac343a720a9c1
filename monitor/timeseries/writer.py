"""The point writer: queue on disk first, then deliver to InfluxDB's v2 write API in order.

``write()`` only appends to the on-disk queue (:mod:`monitor.timeseries.queue`)
and returns once the points are fsynced; ``flush()`` (called by the daemon on
its ``timeseries_flush`` schedule) sends queued segments oldest first, gzip'd,
one HTTP request per segment, and deletes each after a 2xx. What a failed
request does to its segment:

==========================================  =============================================
server unreachable, timeout, 429, 5xx       retried with backoff, then kept for the next
                                            flush (the queue waits; nothing is dropped)
400, 413, 422 (the data itself is bad)      moved to ``quarantine/`` with the reason
401, 403, 404 (token, org or bucket wrong)  kept; ERROR logged (fix the config, it resumes)
==========================================  =============================================

A segment whose 2xx was lost (crash or timeout after the server wrote it) is
sent again; InfluxDB identifies a point by measurement, tag set and timestamp,
so the re-sent point overwrites itself and nothing is counted twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from checks.errors import RepmonError
from monitor.config.influxdb import InfluxConfig
from monitor.timeseries.queue import BufferBusy, SegmentQueue, describe

log = logging.getLogger(__name__)

#: statuses that mean the batch itself is bad: resending it can never succeed
BAD_DATA = frozenset({400, 413, 422})

__all__ = ["BufferBusy", "InfluxWriter", "NullWriter", "PointWriter", "open_writer"]


class PointWriter(Protocol):
    def write(self, lines: Sequence[str]) -> None: ...
    def flush(self) -> int: ...
    def pending(self) -> int: ...
    def close(self) -> None: ...


class NullWriter:
    """The writer when ``[influxdb]`` is absent: accepts everything, keeps nothing, never fails."""

    def write(self, lines: Sequence[str]) -> None:
        return None

    def flush(self) -> int:
        return 0

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        return None


class _Retry(RepmonError):
    """The server could not take the batch now (unreachable, 429, 5xx)."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class _Keep(RepmonError):
    """The server refused us, not the data (401/403/404): keep the batch, stop this flush."""


class _BadData(RepmonError):
    """The server refused the data (400/413/422): quarantine the batch."""


class InfluxWriter:
    """Writes through the on-disk queue to InfluxDB 2.x / 3.x / 1.8+ (v2 write API).

    ``name`` gives this writer its own sub-directory of ``buffer_dir``: one
    writer per directory (a second one raises :class:`BufferBusy`), so each
    process that writes (daemon, sink) needs its own name. ``attempts``
    requests per segment and flush, ``backoff`` seconds before the
    second one, doubling (a 429/503 ``Retry-After`` up to ``max_backoff`` wins).
    """

    def __init__(
        self,
        config: InfluxConfig,
        *,
        name: str = "",
        attempts: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        timeout: float = 10.0,
    ) -> None:
        self.config = config
        buffer_dir = Path(config.buffer_dir) / name if name else Path(config.buffer_dir)
        self.queue = SegmentQueue(buffer_dir, config.batch_size, config.buffer_max_bytes)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._deliver_lock = threading.Lock()
        self._down_since: float | None = None
        self._client = InfluxDBClient(
            url=config.url,
            token=config.token.get_secret_value(),
            org=config.org or "-",  # InfluxDB 1.8 ignores org; the client wants one
            timeout=int(timeout * 1000),
            enable_gzip=True,
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: Sequence[str]) -> None:
        """Queue ``lines`` (line protocol, ns timestamps) durably; delivery is :meth:`flush`.

        Raises ValueError for a line that contains a newline (it would become
        two points, or a broken one); nothing of that call is queued then.
        """
        batch = [text for text in lines if text]
        for text in batch:
            if "\n" in text or "\r" in text:
                raise ValueError(f"a line-protocol point contains a newline: {text[:80]!r}")
        self.queue.append(batch)

    def pending(self) -> int:
        """Points in the on-disk queue, not yet delivered."""
        return self.queue.pending()

    def flush(self) -> int:
        """Deliver queued segments in order; returns the number of points the server took.

        Stops at the first segment the server cannot take now (it stays first
        in the queue). Never raises for a server or network failure.
        """
        delivered = 0
        with self._deliver_lock:
            while (head := self.queue.head()) is not None:
                seg, body = head
                try:
                    self._send(body)
                except _BadData as e:
                    path = self.queue.quarantine(seg, str(e))
                    log.error(
                        "influx refused a batch as bad data (%s): %s quarantined to %s",
                        e,
                        describe(seg.points, seg.first_ns, seg.last_ns),
                        path,
                    )
                    continue
                except (_Retry, _Keep) as e:
                    self.queue.release(seg)
                    self._note_down(e)
                    break
                self.queue.delivered(seg)
                delivered += seg.points
                self._note_up()
        return delivered

    def close(self) -> None:
        """One last :meth:`flush`; what the server does not take stays on disk for next time."""
        try:
            self.flush()
        finally:
            self._client.close()
            self.queue.close()

    # -- one request -------------------------------------------------------------------

    def _send(self, body: bytes) -> None:
        for attempt in range(self.attempts):
            try:
                self._request(body)
                return
            except _Retry as e:
                if attempt + 1 == self.attempts:
                    raise
                delay = self.backoff * 2**attempt
                if e.after is not None:
                    delay = max(delay, e.after)
                time.sleep(min(delay, self.max_backoff))

    def _request(self, body: bytes) -> None:
        """One write; translates influxdb-client and urllib3 errors into the three outcomes."""
        try:
            self._api.write(
                bucket=self.config.bucket,
                org=self.config.org or "-",
                record=body,
                write_precision=cast(WritePrecision, WritePrecision.NS),  # a str in its stubs
            )
        except ApiException as e:
            status = int(e.status or 0)
            text = f"HTTP {status} {e.reason or ''}: {_body_text(e.body)}".strip()
            if status in BAD_DATA:
                raise _BadData(text) from e
            if status == 429 or status >= 500:
                raise _Retry(text, _retry_after(e)) from e
            raise _Keep(text + _hint(status)) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _Retry(f"{type(e).__name__}: {e}") from e

    def _note_down(self, error: Exception) -> None:
        # a config error (401/403/404) is logged at every flush until fixed; an outage once
        keep = isinstance(error, _Keep)
        if self._down_since is None or keep:
            if self._down_since is None:
                self._down_since = time.monotonic()
            log.log(
                logging.ERROR if keep else logging.WARNING,
                "influx at %s did not take a batch (%s); %d points queued on disk",
                self.config.url,
                error,
                self.queue.pending(),
            )

    def _note_up(self) -> None:
        if self._down_since is not None:
            log.info(
                "influx at %s takes writes again after %.0f s",
                self.config.url,
                time.monotonic() - self._down_since,
            )
            self._down_since = None


def _body_text(body: object) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    return str(body or "")[:300]


def _retry_after(e: ApiException) -> float | None:
    headers: Any = e.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def open_writer(config: InfluxConfig | None, *, name: str = "") -> PointWriter:
    """An :class:`InfluxWriter` for ``config``, a :class:`NullWriter` for ``None``.

    ``name``: see :class:`InfluxWriter` (one buffer sub-directory per process
    that writes). Raises :class:`BufferBusy` when another writer holds it.
    """
    if config is None:
        return NullWriter()
    return InfluxWriter(config, name=name)


def _hint(status: int) -> str:
    """What an operator should look at for a configuration error of the write endpoint."""
    if status == 404:
        return (
            " (hint: no InfluxDB v2 write API at this URL: use InfluxDB 1.8+, 2.x or 3.x, or "
            "VictoriaMetrics; for 1.8 set [influxdb] bucket = \"db/retention-policy\"; check "
            "the URL's port and path, and that the bucket exists)"
        )
    if status in (401, 403):
        return " (hint: check [influxdb] token and org, and the token's write permission)"
    return ""

"""``repmon run``: the sink, the scheduler and the HTTP API in one asyncio process.

Jobs (intervals from ``[schedule]``, each with jitter; a job never overlaps
itself and missed runs coalesce into one):

| job | runs on | does |
|---|---|---|
| ``dnsbl_sweep`` | leader | every inventory IP and domain against every zone |
| ``hygiene_sweep`` | leader | SPF/DMARC/DKIM/MX/... and PTR/SPF authorization |
| ``evaluate`` | leader | threshold rules -> cases, then webhook delivery |
| ``timeseries_flush`` | all | feedback, DMARC, case points (leader); deliver the buffer |
| ``spool`` | all | wakes the spool processor (safety net; it also runs on arrival) |
| ``housekeeping`` | leader | retention of spool files, events and history |

With PostgreSQL several instances may run; the leader is whoever holds the
advisory lock (monitor/daemon/leader.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from checks.result import CheckResult
from collectors.config import mask_url, parse_listen
from collectors.registry import sweeps
from collectors.sink import Sink
from collectors.sweep import SweepSummary
from collectors.unit import Collector, SweepContext
from monitor.adhoc import AdhocRunner, CheckRequest
from monitor.api import create_app
from monitor.cases import deliver_notifications, evaluate
from monitor.config import Config
from monitor.daemon.leader import Leadership
from monitor.daemon.metrics import Metrics
from monitor.exporter import Exporter
from monitor.housekeeping import housekeeping
from monitor.intake import make_process, sink_config
from monitor.inventory import Inventory
from monitor.recorder import StoreRecorder
from monitor.store import Store, utcnow
from monitor.store.jobs import note_job
from monitor.timeseries import open_writer

log = logging.getLogger("repmon.run")

#: the application's own jobs -> runs only on the leader; each scheduled collector adds its
#: job (``dnsbl_sweep``, ``hygiene_sweep``, …) from the registry
OWN_JOBS: dict[str, bool] = {
    "evaluate": True,
    "timeseries_flush": False,
    "spool": False,
    "housekeeping": True,
}
#: job name -> the collector it runs
COLLECTOR_JOBS: dict[str, Collector] = {c.job: c for c in sweeps() if c.job}
#: every job -> runs only on the leader
JOBS: dict[str, bool] = {
    **{job: unit.leader_only for job, unit in COLLECTOR_JOBS.items()},
    **OWN_JOBS,
}
LEADER_REFRESH_SECONDS = 5.0
#: how long running jobs may take to finish after SIGTERM
JOB_GRACE_SECONDS = 15.0
#: after SIGTERM the process ends within this, whatever is in flight
STOP_BOUND_SECONDS = 30.0


def _start_watchdog(bound: float) -> None:
    """End the process ``bound`` seconds from now if it is still running (a daemon thread)."""

    def expire() -> None:
        log.error("did not stop within %.0fs; exiting now (spool and store are durable)", bound)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(bound, expire)
    timer.daemon = True
    timer.start()


class Monitor:
    def __init__(self, config: Config, instance: str | None = None) -> None:
        self.config = config
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self.inventory = Inventory.from_config(config)
        self.store = Store.open(config.store.url)
        self.writer = open_writer(config.influxdb)
        self.metrics = Metrics()
        self.leadership = Leadership(self.store, self.instance)
        self.recorder = StoreRecorder(self.store, self.inventory, self.writer)
        self.exporter = Exporter(
            self.store,
            self.writer,
            self.inventory,
            receiving_domains=config.influxdb.receiving_domains if config.influxdb else (),
        )
        self.sink = Sink(sink_config(config), self._make_process())  # [sink] + [abuse] recipients
        self.adhoc = AdhocRunner(config)
        self.stopping = threading.Event()
        self.scheduler = AsyncIOScheduler(timezone=dt.UTC)
        self.api_server: Any = None
        self._api_task: asyncio.Task[None] | None = None
        self._leader_task: asyncio.Task[None] | None = None
        self.started_at = utcnow()

    def _make_process(self) -> Any:
        return make_process(self.config, self.store)

    # ---- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self._describe()
        await asyncio.to_thread(self.leadership.refresh)
        self.metrics.leader.set(1 if self.leadership.is_leader else 0)
        self._leader_task = asyncio.create_task(self._keep_leadership())
        await self.sink.start()
        jitter = int(self.config.schedule.seconds("jitter"))
        now = dt.datetime.now(dt.UTC)
        for job in JOBS:
            interval = self.config.schedule.seconds(job)
            first = now + dt.timedelta(seconds=2 if job in COLLECTOR_JOBS else 1)
            self.scheduler.add_job(
                self._runner(job),
                "interval",
                seconds=interval,
                jitter=jitter or None,
                id=job,
                name=job,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(max(interval, 60)),
                next_run_time=first,
            )
        self.scheduler.start()
        if self.config.api.enabled:
            await self._start_api()
        log.info("repmon run: instance %s started", self.instance)

    def _describe(self) -> None:
        c = self.config
        store = mask_url(c.store.url)
        zones = [z.label for z in c.dnsbl.active_zones()]
        log.info(
            "watching %d IP addresses and %d domains in %d pools; %d blocklist zones",
            self.inventory.addresses(),
            len(self.inventory.domains()),
            len(c.inventory.pools),
            len(zones),
        )
        log.info(
            "store %s; time series %s; sink %s (accepting %s); API %s",
            store,
            mask_url(c.influxdb.url) if c.influxdb else "off",
            c.sink.listen,
            ", ".join(c.sink.accept_domains + c.sink.accept_addresses)
            or "nothing: set sink.accept_domains",
            f"http://{c.api.listen}" if c.api.enabled else "off",
        )
        if not c.inventory.pools and not c.inventory.domains:
            log.warning(
                "the inventory is empty: add [[inventory.pools]] (cidrs, domains) to a config "
                "file and pass it with --config to watch your sending IPs and domains"
            )
        log.info(
            "resolver %s",
            ", ".join(c.resolver.nameservers) or "system (/etc/resolv.conf)",
        )

    # ---- what the API sees (monitor.api.seam.Daemon) -----------------------

    def is_leader(self) -> bool:
        return self.leadership.is_leader

    def spool_depth(self) -> int:
        return self.sink.spool.depth()

    def timeseries_pending(self) -> int:
        return self.writer.pending()

    async def check(
        self, request: CheckRequest, gone: Callable[[], Awaitable[bool]] | None = None
    ) -> list[CheckResult]:
        return await self.adhoc.run(request, gone)

    def metrics_text(self) -> bytes:
        self.metrics.spool_depth.set(self.spool_depth())
        self.metrics.buffer_depth.set(self.timeseries_pending())
        self.metrics.leader.set(1 if self.is_leader() else 0)
        return self.metrics.render()

    async def _start_api(self) -> None:
        host, port = parse_listen(self.config.api.listen)
        uv_config = uvicorn.Config(
            create_app(self),
            host=host,
            port=int(port),
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=3,
            backlog=2048,
            lifespan="off",
        )
        self.api_server = uvicorn.Server(uv_config)
        # the monitor handles SIGTERM/SIGINT itself
        self.api_server.install_signal_handlers = lambda: None
        self._api_task = asyncio.create_task(self.api_server.serve())
        for _ in range(100):
            if self.api_server.started or self._api_task.done():
                break
            await asyncio.sleep(0.05)
        if self._api_task.done():
            exc = self._api_task.exception()
            raise OSError(f"[api] cannot listen on {self.config.api.listen}: {exc}")
        log.info("API listening on http://%s", self.config.api.listen)

    async def stop(self) -> None:
        """Stop accepting SMTP, finish in-flight work, flush buffers, release leadership.

        Bounded: the API and ad hoc checks stop first (cancelled), running jobs get
        :data:`JOB_GRACE_SECONDS` (a sweep stops between chunks), and a watchdog ends the
        process :data:`STOP_BOUND_SECONDS` after the signal whatever still hangs. Nothing
        accepted is lost by that: the spool and the store are durable.
        """
        log.info("stopping: no new SMTP sessions or API requests; finishing in-flight work")
        _start_watchdog(STOP_BOUND_SECONDS)
        self.stopping.set()
        self.adhoc.close()  # the checks answer 504 now, before the API stops
        if self.api_server is not None:
            self.api_server.should_exit = True
        await self.sink.stop()
        self.scheduler.shutdown(wait=False)
        await self._wait_jobs(JOB_GRACE_SECONDS)
        if self._running:
            log.warning("stopping without waiting for %s", ", ".join(sorted(self._running)))
            # they are abandoned on purpose: their cancellation is no error to report
            logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
        if self._api_task is not None:
            await asyncio.wait([self._api_task], timeout=3)
        if self._leader_task is not None:
            self._leader_task.cancel()
        try:
            await asyncio.to_thread(self._final_flush)
        finally:
            await asyncio.to_thread(self.leadership.release)
            self.writer.close()
            self.store.close()
        log.info("stopped cleanly")

    def _final_flush(self) -> None:
        if self.leadership.is_leader:
            self.exporter.export()
        self.writer.flush()

    async def _wait_jobs(self, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while self._running and time.monotonic() < end:
            await asyncio.sleep(0.1)

    async def run_until_signal(self) -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await self.start()
        try:
            await stopping.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()

    async def _keep_leadership(self) -> None:
        while True:
            await asyncio.sleep(LEADER_REFRESH_SECONDS)
            await asyncio.to_thread(self.leadership.refresh)
            self.metrics.leader.set(1 if self.leadership.is_leader else 0)

    # ---- jobs --------------------------------------------------------------

    _running: set[str] = set()

    def _runner(self, job: str) -> Callable[[], Awaitable[None]]:
        leader_only = JOBS[job]
        unit = COLLECTOR_JOBS.get(job)
        body = self._sweep_job(unit) if unit is not None else getattr(self, f"job_{job}")

        async def run() -> None:
            # check(), not is_leader: a process that was stopped re-confirms the lock first
            if leader_only and not await asyncio.to_thread(self.leadership.check):
                await asyncio.to_thread(self._note, job, status="skipped")
                return
            self._running = self._running | {job}
            start = utcnow()
            t0 = time.monotonic()
            await asyncio.to_thread(note_job, self.store, job, self.instance, start=start)
            status, error = "ok", None
            try:
                await body()
            except Exception as exc:  # a failing job is logged and retried next time
                status, error = "error", f"{exc.__class__.__name__}: {exc}"
                log.exception("job %s failed", job)
            finally:
                self._running = self._running - {job}
                self.metrics.job_runs.labels(job, status).inc()
                self.metrics.job_duration.labels(job).set(time.monotonic() - t0)
                await asyncio.to_thread(self._note, job, status=status, error=error, end=utcnow())

        return run

    def _note(
        self, job: str, status: str, error: str | None = None, end: dt.datetime | None = None
    ) -> None:
        j = self.scheduler.get_job(job) if self.scheduler.running else None
        next_run = j.next_run_time if j is not None else None
        note_job(
            self.store,
            job,
            self.instance,
            end=end or (utcnow() if status == "skipped" else None),
            status=status,
            error=error,
            next_run=next_run,
        )

    def _sweep_job(self, unit: Collector) -> Callable[[], Awaitable[None]]:
        assert unit.sweep is not None
        sweep = unit.sweep

        async def body() -> None:
            ctx = SweepContext(
                section=unit.config_of(self.config),
                resolver=self.config.resolver,
                targets=self.inventory,
                recorder=self.recorder,
                progress=False,
                stop=self.stopping,
            )
            self._sweep_metrics(await sweep(ctx))

        return body

    def _sweep_metrics(self, summary: SweepSummary) -> None:
        self.metrics.sweep_duration.labels(summary.sweep).set(summary.duration)
        self.metrics.sweep_unknown_ratio.labels(summary.sweep).set(
            summary.unknown / summary.results if summary.results else 0
        )
        for source, n in summary.unknown_by_source.items():
            self.metrics.zone_unknown.labels(summary.sweep, source).set(n)

    async def job_evaluate(self) -> None:
        summary = await asyncio.to_thread(evaluate, self.store, self.config)
        log.info("evaluate: %s", summary)
        delivery = await asyncio.to_thread(deliver_notifications, self.store, self.config)
        self.metrics.notify_pending.set(delivery.pending)
        if delivery.failed:
            self.metrics.notify_failures.inc(delivery.failed)

    async def job_timeseries_flush(self) -> None:
        if self.config.influxdb is not None and await asyncio.to_thread(self.leadership.check):
            await asyncio.to_thread(self.exporter.export)
        await asyncio.to_thread(self.writer.flush)
        self.metrics.buffer_depth.set(self.writer.pending())

    async def job_spool(self) -> None:
        self.sink.processor.wake()
        self.metrics.spool_depth.set(self.sink.spool.depth())

    async def job_housekeeping(self) -> None:
        await asyncio.to_thread(housekeeping, self.store, self.config)

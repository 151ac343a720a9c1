"""repmon's own health in Prometheus text format (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.leader = Gauge(
            "repmon_leader", "1 when this instance runs the scheduled jobs", registry=r
        )
        self.job_runs = Counter(
            "repmon_job_runs", "Job runs by outcome", ["job", "outcome"], registry=r
        )
        self.job_duration = Gauge(
            "repmon_job_last_duration_seconds",
            "Duration of the last run of each job",
            ["job"],
            registry=r,
        )
        self.sweep_duration = Gauge(
            "repmon_sweep_duration_seconds", "Duration of the last sweep", ["sweep"], registry=r
        )
        self.sweep_unknown_ratio = Gauge(
            "repmon_sweep_unknown_ratio",
            "Share of results of the last sweep that were unknown",
            ["sweep"],
            registry=r,
        )
        self.zone_unknown = Gauge(
            "repmon_zone_unknown_results",
            "Unknown results per source (blocklist zone) in the last sweep",
            ["sweep", "source"],
            registry=r,
        )
        self.spool_depth = Gauge("repmon_spool_depth", "Messages waiting in the spool", registry=r)
        self.quarantined = Gauge(
            "repmon_spool_quarantined", "Messages in the spool's quarantine", registry=r
        )
        self.buffer_depth = Gauge(
            "repmon_timeseries_buffer_points",
            "Time-series points waiting in the on-disk buffer",
            registry=r,
        )
        self.notify_pending = Gauge(
            "repmon_notifications_pending", "Case notifications not yet delivered", registry=r
        )
        self.notify_failures = Counter(
            "repmon_notification_failures", "Failed webhook delivery attempts", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

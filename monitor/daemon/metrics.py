"""repmon's own health in Prometheus text format (``GET /metrics``)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.providers import HEALTH, ProviderHealth


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

        r.register(ProviderMetrics(HEALTH))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ProviderMetrics(Collector):
    """The mailbox-provider fetches (SNDS, Postmaster Tools) of this process, read at each
    scrape from :data:`monitor.providers.HEALTH` (the leader runs the fetches)."""

    def __init__(self, health: ProviderHealth) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        last = self.health.snapshot()
        fetched = GaugeMetricFamily(
            "repmon_provider_last_fetch_timestamp_seconds",
            "When the provider was last fetched (Unix time)",
            labels=["provider"],
        )
        success = GaugeMetricFamily(
            "repmon_provider_last_success_timestamp_seconds",
            "When a fetch of the provider last ended without errors (Unix time)",
            labels=["provider"],
        )
        errors = GaugeMetricFamily(
            "repmon_provider_errors",
            "Errors of the provider's last fetch (repmon status shows them)",
            labels=["provider"],
        )
        refused = GaugeMetricFamily(
            "repmon_provider_credentials_refused",
            "1 when the provider refused the key at the last fetch: renew it",
            labels=["provider"],
        )
        unknown = GaugeMetricFamily(
            "repmon_provider_unknown_results",
            "Results of the provider's last fetch that were unknown",
            labels=["provider"],
        )
        fetches = CounterMetricFamily(
            "repmon_provider_fetches",
            "Provider fetches by outcome (error: the fetch reported errors)",
            labels=["provider", "outcome"],
        )
        for name, h in sorted(last.items()):
            fetched.add_metric([name], h.fetched_at.timestamp())
            if h.last_success_at is not None:
                success.add_metric([name], h.last_success_at.timestamp())
            errors.add_metric([name], h.errors)
            refused.add_metric([name], int(h.credentials_refused))
            unknown.add_metric([name], h.unknown)
            fetches.add_metric([name, "ok"], h.ok_fetches)
            fetches.add_metric([name, "error"], h.failed_fetches)
        yield from (fetched, success, errors, refused, unknown, fetches)

"""Prometheus metrics and the health verdict, both read from one EngineStatus at scrape time.

Nothing on the hot path touches prometheus_client: the engine keeps its own counters
and histograms, and this collector turns a status snapshot into metric families when
``/metrics`` is scraped, so an idle scrape costs nothing and numbers never disagree
with the dashboard.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bus.breaker import BreakerState
from bus.latency import HistogramSnapshot
from collectors.engine import EngineStatus
from monitoring.http import Health, HealthState, MonitoringServer, combine

log = logging.getLogger(__name__)


def _histogram(name: str, doc: str, snap: HistogramSnapshot) -> HistogramMetricFamily:
    buckets, running = [], 0
    for bound, count in zip(snap.bounds_ns, snap.counts):
        running += count
        buckets.append((repr(bound / 1e9), running))
    buckets.append(("+Inf", snap.count))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=snap.sum_ns / 1e9)


class EngineCollector(Collector):
    def __init__(self, status: Callable[[], EngineStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        s = self._status()
        yield CounterMetricFamily("tickops_events_ingested", "Events received from the feed", value=s.ingested)
        p = s.producer
        for name, value in (("published", p.published), ("delivered", p.delivered), ("failed", p.failed),
                            ("spooled", p.spooled), ("replayed", p.replayed), ("dropped", p.dropped)):
            yield CounterMetricFamily(f"tickops_producer_{name}", f"Producer events {name}", value=value)
        yield GaugeMetricFamily("tickops_spool_bytes", "Bytes in the producer spool", value=p.spool.bytes_used)
        yield GaugeMetricFamily("tickops_bus_breaker_open", "1 when the bus circuit breaker is open or probing",
                                value=int(p.breaker.state is not BreakerState.CLOSED))
        yield _histogram("tickops_latency_recv_to_ack_seconds", "Feed receive to broker ack", p.latency)
        if s.writer is not None:
            w = s.writer
            yield CounterMetricFamily("tickops_writer_stored", "Rows stored", value=w.stored)
            yield CounterMetricFamily("tickops_writer_write_failures", "Failed insert attempts", value=w.write_failures)
            yield CounterMetricFamily("tickops_writer_dead_lettered", "Records sent to the dead-letter topic",
                                      value=w.dead_lettered)
            yield GaugeMetricFamily("tickops_writer_lag", "Bus records not yet stored", value=w.total_lag)
            yield _histogram("tickops_latency_recv_to_stored_seconds", "Feed receive to stored", w.latency)
        if s.backup is not None:
            b = s.backup
            yield CounterMetricFamily("tickops_backup_events_written", "Events in backup segments",
                                      value=b.events_written)
            yield CounterMetricFamily("tickops_backup_events_dropped", "Events the backup could not write",
                                      value=b.events_dropped)
            yield GaugeMetricFamily("tickops_backup_degraded", "1 when the backup is failing",
                                    value=int(b.state == "degraded"))
        for name, value in s.feed_counters.items():
            yield CounterMetricFamily(f"tickops_feed_{name}", f"Feed client {name}", value=value)
        if s.backfill is not None:
            b = s.backfill
            for name, value, doc in (
                ("windows", b.windows_backfilled, "Feed outage windows backfilled from tick history"),
                ("windows_failed", b.windows_failed, "Outage windows whose backfill was given up"),
                ("trades", b.trades_backfilled, "Trades recovered by backfill"),
                ("trades_already_there", b.trades_already_there, "History trades already stored or ingested"),
                ("deferred", b.deferred, "Backfill passes put off while the pipeline was behind"),
                ("recent_trades_evicted", b.recent_trades_evicted,
                 "Ingested trade identities dropped for room before their age"),
            ):
                yield CounterMetricFamily(f"tickops_backfill_{name}", doc, value=value)
            yield GaugeMetricFamily("tickops_backfill_recent_trades", "Ingested trade identities held for dedup",
                                    value=b.recent_trades)
        if s.feed is not None:
            yield GaugeMetricFamily("tickops_feed_connected", "1 when Level 1 is up and DTN is not down",
                                    value=int(s.feed.connected))
        if s.notifications is not None:
            yield GaugeMetricFamily("tickops_notifications_queued", "Alert notifications waiting for delivery",
                                    value=s.notifications.queued)
            outcomes = CounterMetricFamily("tickops_notifications", "Alert notifications by channel and outcome",
                                           labels=["channel", "outcome"])
            for channel, counts in s.notifications.channels.items():
                for outcome in ("sent", "failed", "dropped", "retries"):
                    outcomes.add_metric([channel, outcome], getattr(counts, outcome))
            yield outcomes
        jobs = CounterMetricFamily("tickops_job_failures", "Background job failures", labels=["job"])
        for job in s.jobs:
            jobs.add_metric([job.name], job.failures)
        yield jobs
        if s.host is not None:
            yield GaugeMetricFamily("tickops_process_rss_bytes", "Resident memory", value=s.host.rss_bytes)
            yield GaugeMetricFamily("tickops_disk_free_ratio", "Free disk under data_dir",
                                    value=s.host.disk_free_pct / 100)


def engine_registry(status: Callable[[], EngineStatus]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(status))
    return registry


def assess(s: EngineStatus) -> Health:
    """ok / degraded / down with reasons, for load balancers and restart scripts."""
    checks: list[tuple[HealthState, str]] = []
    if s.feed is not None:
        checks.append(("ok" if s.feed.level1.connected else "down", "IQFeed Level 1 disconnected"))
        checks.append(("degraded" if s.feed.dtn_connected is False else "ok", "IQConnect not connected to DTN"))
    checks.append(("degraded" if s.producer.breaker.state is not BreakerState.CLOSED else "ok", "bus unreachable: events spooling"))
    checks.append(("down" if s.producer.dropped else "ok", f"{s.producer.dropped} events dropped by a full spool"))
    if s.writer is not None:
        checks.append(("degraded" if s.writer.retrying else "ok", "storage writes failing; batch held for retry"))
    if s.backup is not None:
        checks.append(("degraded" if s.backup.state == "degraded" else "ok", f"backup failing: {s.backup.last_error}"))
    for job in s.jobs:
        checks.append(("degraded" if job.consecutive_failures >= 3 else "ok", f"job {job.name}: {job.last_error}"))
    health = combine(checks)
    return Health(health.state, health.reasons, {"source": s.source, "ingested": s.ingested})


def start_monitoring(status: Callable[[], EngineStatus], host: str, port: int) -> MonitoringServer | None:
    """Serve /metrics and /healthz; a busy port is logged, not fatal (the pipeline matters more)."""
    try:
        server = MonitoringServer(host, port, engine_registry(status), lambda: assess(status()))
    except OSError as exc:
        log.error("monitoring endpoint not started", extra={"host": host, "port": port, "error": str(exc)})
        return None
    server.start()
    return server

"""Prometheus metrics read from one EngineStatus at scrape time, and the server for them and ``/healthz``.

Nothing on the hot path touches prometheus_client: the engine keeps its own counters
and histograms, and this collector turns a status snapshot into metric families when
``/metrics`` is scraped, so an idle scrape costs nothing and numbers never disagree
with the dashboard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bus.breaker import BreakerState
from monitoring.http import MonitoringServer
from monitoring.uptime import UptimeReport
from runtime.health import HealthCheck
from runtime.status import EngineStatus
from storage.writer_metrics import histogram_family as _histogram
from storage.writer_metrics import writer_families

log = logging.getLogger(__name__)


def _uptime(report: UptimeReport) -> Iterator[Metric]:
    """Availability and error budget per component, window (24h, 30d) and scope (all, session)."""
    labels = ["component", "window", "scope"]
    ratio = GaugeMetricFamily("tickops_availability_ratio", "Good minutes / tracked minutes", labels=labels)
    minutes = GaugeMetricFamily("tickops_availability_minutes", "Tracked minutes by verdict",
                                labels=[*labels, "verdict"])
    left = GaugeMetricFamily("tickops_error_budget_remaining_ratio",
                             "Share of the window's error budget not spent (<= 0: spent)", labels=labels)
    left_minutes = GaugeMetricFamily("tickops_error_budget_remaining_minutes",
                                     "Bad minutes the objective still allows in the window", labels=labels)
    for row in report.rows:
        key = [row.component, row.window, row.scope]
        if row.ratio is not None:
            ratio.add_metric(key, row.ratio)
        minutes.add_metric([*key, "good"], row.good_minutes)
        minutes.add_metric([*key, "bad"], row.bad_minutes)
        if row.budget_left_ratio is not None:
            left.add_metric(key, row.budget_left_ratio)
        left_minutes.add_metric(key, row.budget_left_minutes)
    yield GaugeMetricFamily("tickops_availability_objective", "Availability objective per component",
                            value=report.objective)
    yield from (ratio, minutes, left, left_minutes)


def _labelled(name: str, doc: str, values: dict[str, int]) -> GaugeMetricFamily:
    """One gauge per entry of a component's stats dict, labelled by the entry's name."""
    family = GaugeMetricFamily(name, doc, labels=["stat"])
    for stat, value in sorted(values.items()):
        family.add_metric([stat], value)
    return family


def _counters(prefix: str, rows: tuple[tuple[str, int, str], ...]) -> Iterator[CounterMetricFamily]:
    """``prefix_name`` counters from (name, value, doc) rows of one component's stats."""
    for name, value, doc in rows:
        yield CounterMetricFamily(f"{prefix}_{name}", doc, value=value)


class EngineCollector(Collector):
    def __init__(self, status: Callable[[], EngineStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        s = self._status()
        yield CounterMetricFamily("tickops_events_ingested", "Events received from the feed", value=s.ingested)
        p = s.producer
        for name, value in (("published", p.published), ("delivered", p.delivered), ("failed", p.failed),
                            ("spooled", p.spooled), ("replayed", p.replayed), ("dropped", p.dropped),
                            ("rejected", p.rejected)):
            yield CounterMetricFamily(f"tickops_producer_{name}", f"Producer events {name}", value=value)
        yield GaugeMetricFamily("tickops_spool_bytes", "Bytes in the producer spool", value=p.spool.bytes_used)
        yield CounterMetricFamily("tickops_spool_write_failures", "Spool appends the disk refused",
                                  value=p.spool.write_failures)
        yield CounterMetricFamily("tickops_spool_corrupt_bytes", "Spool bytes cut as torn or corrupt",
                                  value=p.spool.corrupt_bytes)
        yield GaugeMetricFamily("tickops_spool_failing", "1 while the spool cannot write and records wait on disk",
                                value=int(p.spool.failing))
        yield _labelled("tickops_bus_resource", "The bus's own bounds and how often they were hit", s.bus_stats)
        yield _labelled("tickops_store_resource", "The store's own resources (connection pool)", s.store_stats)
        yield GaugeMetricFamily("tickops_bus_breaker_open", "1 when the bus circuit breaker is open or probing",
                                value=int(p.breaker.state is not BreakerState.CLOSED))
        yield _histogram("tickops_latency_recv_to_ack_seconds", "Feed receive to broker ack", p.latency)
        if s.writer is not None:
            yield from writer_families(s.writer)
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
            yield from _counters("tickops_backfill", (
                ("windows", b.windows_backfilled, "Feed outage windows backfilled from tick history"),
                ("windows_failed", b.windows_failed, "Outage windows whose backfill was given up"),
                ("trades", b.trades_backfilled, "Trades recovered by backfill"),
                ("trades_already_there", b.trades_already_there, "History trades already stored or ingested"),
                ("deferred", b.deferred, "Backfill passes put off while the pipeline was behind"),
                ("recent_trades_evicted", b.recent_trades_evicted,
                 "Ingested trade identities dropped for room before their age"),
            ))
            yield GaugeMetricFamily("tickops_backfill_recent_trades", "Ingested trade identities held for dedup",
                                    value=b.recent_trades)
        if s.catch_up is not None:
            c = s.catch_up
            yield from _counters("tickops_catch_up", (
                ("symbols", c.symbols_done, "Newly watched symbols caught up from their watermark"),
                ("symbols_failed", c.symbols_failed, "Newly watched symbols whose catch-up was given up"),
                ("trades", c.trades_recovered, "Trades recovered by catch-ups"),
                ("restart_gaps", c.gaps_recorded, "Restart gaps (quotes, depth lost) recorded in feed_outages"),
            ))
            yield GaugeMetricFamily("tickops_catch_up_pending", "Newly watched symbols waiting for their catch-up",
                                    value=c.symbols_pending)
        if s.feed is not None:
            yield GaugeMetricFamily("tickops_feed_connected", "1 when Level 1 is up and DTN is not down",
                                    value=int(s.feed.connected))
        if s.iqconnect is not None:
            yield CounterMetricFamily("tickops_iqconnect_restarts", "IQConnect restarts by the supervisor",
                                      value=s.iqconnect.restarts)
            yield GaugeMetricFamily("tickops_iqconnect_running", "1 while the supervised IQConnect process runs",
                                    value=int(s.iqconnect.running))
        yield GaugeMetricFamily("tickops_symbols_watched", "Level 1 symbols watched now", value=len(s.watched))
        yield GaugeMetricFamily("tickops_symbols_unwatched", "Wanted symbols beyond the watch limit",
                                value=len(s.unwatched))
        membership = s.fleet.membership if s.fleet is not None else None
        if membership is not None:
            yield GaugeMetricFamily("tickops_fleet_partitions_owned", "Assignment partitions this collector owns",
                                    value=len(membership.partitions))
            yield GaugeMetricFamily("tickops_fleet_rules_owner", "1 while this collector evaluates fleet-wide rules",
                                    value=int(membership.rules_owner))
            yield GaugeMetricFamily("tickops_fleet_standalone", "1 while not in the collector group (Kafka down "
                                    "since start)", value=int(membership.standalone))
            yield GaugeMetricFamily("tickops_fleet_collectors", "Responsive collectors in the fleet",
                                    value=len(s.fleet.live))
        if s.redundancy is not None:
            r = s.redundancy
            yield GaugeMetricFamily("tickops_standby_symbols", "Critical symbols watched only as hot standby",
                                    value=len(r.standby))
            yield from _counters("tickops_standby", (
                ("events_unpublished", r.standby_unpublished, "Events of standby symbols not published (all but trades)"),
            ))
            yield from _counters("tickops_consistency", (
                ("digests_published", r.digests_published, "Per-minute trade digests published"),
                ("comparisons", r.check.comparisons if r.check else 0, "Owner/standby minute digests compared"),
                ("differences", r.check.differences if r.check else 0, "Compared minutes whose digests differed"),
            ))
        if s.notifications is not None:
            yield GaugeMetricFamily("tickops_notifications_queued", "Alert notifications waiting for delivery",
                                    value=s.notifications.queued)
            outcomes = CounterMetricFamily("tickops_notifications", "Alert notifications by channel and outcome",
                                           labels=["channel", "outcome"])
            for channel, counts in s.notifications.channels.items():
                for outcome in ("sent", "failed", "dropped", "retries"):
                    outcomes.add_metric([channel, outcome], getattr(counts, outcome))
            yield outcomes
        yield GaugeMetricFamily("tickops_storage_available", "1 when storage answers and its schema is migrated",
                                value=int(s.storage.ready))
        yield GaugeMetricFamily("tickops_storage_pending_writes",
                                "Operator actions, alert states and symbols waiting in memory for storage",
                                value=s.storage.pending_writes)
        yield CounterMetricFamily("tickops_storage_pending_writes_dropped",
                                  "Pending storage writes lost to the bound or refused", value=s.storage.dropped_writes)
        if s.uptime is not None:
            yield from _uptime(s.uptime)
        if s.mirror is not None:
            m = s.mirror
            yield GaugeMetricFamily("tickops_backup_mirror_failing", "1 while the backup mirror cannot copy",
                                    value=int(m.state == "failing"))
            yield GaugeMetricFamily("tickops_backup_mirror_pending", "Sealed backup files not in the mirror",
                                    value=m.pending)
            for name, value, doc in (("files_copied", m.files_copied, "Backup files copied to the mirror and verified"),
                                     ("bytes_copied", m.bytes_copied, "Bytes copied to the mirror"),
                                     ("failures", m.failures, "Backup files the mirror could not copy (per attempt)"),
                                     ("checksum_mismatches", m.checksum_mismatches,
                                      "Copies or sources whose sha256 differed from the manifest")):
                yield CounterMetricFamily(f"tickops_backup_mirror_{name}", doc, value=value)
        if s.operator_snapshots is not None:
            o = s.operator_snapshots
            for name, value, doc in (("snapshots_written", o.written, "Operator table snapshots written"),
                                     ("snapshot_failures", o.failures, "Operator table snapshots that failed")):
                yield CounterMetricFamily(f"tickops_operator_{name}", doc, value=value)
            if o.last_ok_ns is not None:
                yield GaugeMetricFamily("tickops_operator_snapshot_last_success_seconds",
                                        "Unix time of the last operator table snapshot", value=o.last_ok_ns / 1e9)
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


def start_monitoring(status: Callable[[], EngineStatus], host: str, port: int, *,
                     clock: Callable[[], float] = time.monotonic) -> MonitoringServer | None:
    """Serve /metrics and /healthz; a busy port is logged, not fatal (the pipeline matters more)."""
    health = HealthCheck(clock)
    try:
        server = MonitoringServer(host, port, engine_registry(status), lambda: health(status()))
    except OSError as exc:
        log.error("monitoring endpoint not started", extra={"host": host, "port": port, "error": str(exc)})
        return None
    server.start()
    return server

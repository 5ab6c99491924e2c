"""Prometheus families of a writer's stats, shared by the engine's ``/metrics`` and the writer process's own.

Built at scrape time from one :class:`storage.writer.WriterStats`, like every TickOps metric: nothing
on the write path touches prometheus_client.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from bus.latency import HistogramSnapshot
from storage.writer import WriterStats

# Coarse bounds for export (the fine log-linear buckets would make hundreds of series); a value is
# counted under a bound only when its whole fine bucket lies below it, so the export errs slow.
EXPORT_BOUNDS_NS: tuple[int, ...] = tuple(
    int(ms * 1_000_000) for ms in (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 60_000)
)


def histogram_family(name: str, doc: str, snap: HistogramSnapshot) -> HistogramMetricFamily:
    buckets = [(repr(bound / 1e9), count) for bound, count in snap.cumulative(EXPORT_BOUNDS_NS)]
    buckets.append(("+Inf", snap.count))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=snap.sum_ns / 1e9)


def writer_families(w: WriterStats) -> Iterator[Metric]:
    yield CounterMetricFamily("tickops_writer_stored", "Rows stored", value=w.stored)
    yield CounterMetricFamily("tickops_writer_write_failures", "Failed insert attempts", value=w.write_failures)
    yield CounterMetricFamily("tickops_writer_dead_lettered", "Records sent to the dead-letter topic",
                              value=w.dead_lettered)
    yield CounterMetricFamily("tickops_writer_duplicates", "Re-sent copies of stored events dropped before insert",
                              value=w.duplicates)
    yield CounterMetricFamily("tickops_writer_dedup_evicted", "Keys the duplicate filter let go of (window moves)",
                              value=w.dedup_evicted)
    yield GaugeMetricFamily("tickops_writer_lag", "Bus records not yet stored", value=w.total_lag)
    yield histogram_family("tickops_latency_recv_to_stored_seconds", "Feed receive to stored", w.latency)

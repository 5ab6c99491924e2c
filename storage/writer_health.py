"""``/healthz`` and ``/metrics`` of a writer process (``python -m storage.writer``), which has no engine.

A writer process first waits for storage (migrations) and the broker (topics), then writes. Its
verdict reads the present only, like the engine's (runtime/health.py): degraded while it is not
writing yet or while a batch waits for storage; never down, because restarting a writer does not
bring storage back (and the orchestrator restarts a process that answers down).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bus.base import TopicPartition
from monitoring.http import Health, MonitoringServer
from storage.writer import Writer, WriterStats
from storage.writer_metrics import writer_families


class WriterProcessState:
    """What the process is doing now, set by its main loop and read by the HTTP thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._doing = "starting"
        self._error = ""
        self._writer: Writer | None = None

    def preparing(self, doing: str, error: str = "") -> None:
        with self._lock:
            self._doing, self._error = doing, error

    def writing(self, writer: Writer) -> None:
        with self._lock:
            self._writer, self._doing, self._error = writer, "writing", ""

    def snapshot(self) -> tuple[str, str, WriterStats | None]:
        with self._lock:
            writer, doing, error = self._writer, self._doing, self._error
        return doing, error, writer.stats() if writer is not None else None

    def status_sample(self) -> tuple[Health, WriterStats | None, list[TopicPartition]]:
        """Health, counters and held partitions, for the fleet status channel (storage/writer_status.py)."""
        with self._lock:
            writer, doing, error = self._writer, self._doing, self._error
        stats = writer.stats() if writer is not None else None
        return assess_writer(doing, error, stats), stats, list(writer.progress().next) if writer is not None else []


def assess_writer(doing: str, error: str, stats: WriterStats | None) -> Health:
    if stats is None:
        return Health("degraded", (f"writer not started yet: {doing}" + (f" ({error})" if error else ""),),
                      {"role": "writer"})
    reasons = (f"storage writes failing; batch held for retry: {stats.last_error}",) if stats.retrying else ()
    return Health("degraded" if stats.retrying else "ok", reasons, {
        "role": "writer", "consumed": stats.consumed, "stored": stats.stored, "lag": stats.total_lag,
        "dead_lettered": stats.dead_lettered, "write_failures": stats.write_failures})


class _WriterCollector(Collector):
    def __init__(self, state: WriterProcessState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        doing, _, stats = self._state.snapshot()
        yield GaugeMetricFamily("tickops_writer_writing", "1 once storage is migrated and the writer runs",
                                value=int(doing == "writing"))
        if stats is not None:
            yield from writer_families(stats)


def writer_monitoring(state: WriterProcessState, host: str, port: int) -> MonitoringServer:
    """The HTTP server (not started) for ``state``; raises OSError when the port is taken."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_WriterCollector(state))
    return MonitoringServer(host, port, registry, lambda: assess_writer(*state.snapshot()))

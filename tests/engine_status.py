"""An idle engine's :class:`EngineStatus`, with the few fields a test changes, for /metrics and /healthz tests."""

from __future__ import annotations

from dataclasses import replace

from bus.breaker import BreakerSnapshot, BreakerState
from bus.latency import HistogramSnapshot
from bus.producer import ProducerStats
from bus.spool import SpoolStats
from runtime.status import EngineStatus
from runtime.validation import ValidationSnapshot
from storage.availability import StorageState


def idle_status(*, feed_counters: dict[str, int] | None = None, dropped: int = 0,
                breaker: BreakerState = BreakerState.CLOSED, storage: StorageState | None = None) -> EngineStatus:
    latency = HistogramSnapshot()
    producer = ProducerStats(0, 0, 0, 0, 0, 0, 0, SpoolStats(0, 0, 0, 0, 0),
                             BreakerSnapshot(BreakerState.CLOSED, 0, 0, 0.0, 30.0), latency)
    producer = replace(producer, dropped=dropped, breaker=replace(producer.breaker, state=breaker))
    return EngineStatus(
        source="test", started_ns=0, feed=None, feed_counters=feed_counters or {}, outages=[], rejected_symbols={},
        producer=producer, writer=None, backup=None,
        validation=ValidationSnapshot(checked=0, counts={}, missing=0, recent=[], gaps=[]),
        jobs=[], host=None, ingested=0, storage=storage or StorageState(),
    )

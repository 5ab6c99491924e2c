"""Where storage stands on the trades topic when this process runs no writer (writers apart).

The catch-up's gate (runtime/catchup.py) waits until storage holds every trade that was on the bus
when a catch-up was asked for, and reads that from the in-process writer's progress. A collector whose
writers run as their own processes (``storage.embedded_writer = false``, a fleet's usual shape) has no
such writer, so its catch-ups, a takeover's included, would wait forever. This answers the gate from the
two records the writers themselves trust: storage's ``max(bus_offset) + 1`` per partition of the trades
table (where a writer resumes, storage/positions.py) and the trades topic's end offsets on the broker.

Asked at most once per ``interval_s`` (a query and a metadata round trip), and only while a catch-up
waits. A partition without stored rows counts from the log's first offset. Storage's position trails
the end by the records that are not rows (a copy of a stored trade dropped, a dead letter) until the
next stored trade passes them, which live trading does within moments.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from bus.base import TopicPartition
from bus.topics import TopicSet
from storage.kafka_read import KafkaReadError, partition_ranges, throwaway_consumer
from storage.positions import StoredPositions
from storage.store import StorageError, Store
from storage.writer import WriterProgress

log = logging.getLogger(__name__)
_QUIET = logging.getLogger(f"{__name__}.librdkafka")


class StoredProgress:
    def __init__(self, store: Store, topics: TopicSet, bootstrap_servers: str, *, interval_s: float = 1.0,
                 security: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._positions = StoredPositions(store, topics)
        self._topic = topics.trades
        self._bootstrap = bootstrap_servers
        self._security = dict(security or {})  # librdkafka's TLS/SASL settings (bus/security.py)
        self._interval_s = interval_s
        self._clock = clock
        self._consumer = None
        self._asked_at = float("-inf")
        self._last: WriterProgress | None = None
        self._refreshes = 0
        self._error = ""

    def __call__(self) -> WriterProgress | None:
        """The latest progress (refreshed when ``interval_s`` passed); None until one could be read."""
        if self._clock() - self._asked_at < self._interval_s:
            return self._last
        self._asked_at = self._clock()
        try:
            if self._consumer is None:
                self._consumer = throwaway_consumer(self._bootstrap, _QUIET, "catch-up-progress", self._security)
            ranges = partition_ranges(self._consumer, [self._topic], {})
            stored = self._positions.next_offsets(TopicPartition(r.topic, r.partition) for r in ranges)
        except (KafkaReadError, StorageError) as exc:
            if str(exc) != self._error:
                log.warning("where storage stands on the trades topic is unknown; catch-ups wait",
                            extra={"error": str(exc)})
            self._error = str(exc)
            return self._last
        self._error = ""
        self._refreshes += 1
        ends = {TopicPartition(r.topic, r.partition): r.high for r in ranges}
        begins = {TopicPartition(r.topic, r.partition): r.low for r in ranges}
        self._last = WriterProgress({tp: stored.get(tp, begins[tp]) for tp in ends}, ends, self._refreshes)
        return self._last

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()

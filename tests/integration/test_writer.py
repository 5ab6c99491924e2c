"""The writer over each bus (MemoryBus, real Kafka) and each store (ClickHouse 18.16, chDB): every event
stored exactly once, restarts resume after what is stored, failed writes are retried without doubling."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bus.base import Bus, TopicPartition
from bus.deadletter import DeadLetterSink
from bus.factory import build_producer, open_bus
from bus.memory import MemoryBus
from bus.topics import TopicSet
from events import Trade
from config import Settings
from storage.migrate import migrate
from storage.rows import to_batches
from storage.store import StorageUnavailable, Store
from storage.writer import Writer, build_writer
from tests.integration.pipeline import (
    assert_stored_exactly_once,
    delete_topics,
    make_events,
    stored_count,
    stored_kinds,
    wait_until,
)
from tests.integration.test_writer_table_faults import WrappedStore


@dataclass
class Pipeline:
    settings: Settings
    bus: Bus
    store: Store

    @property
    def topics(self) -> TopicSet:
        return TopicSet(self.settings.kafka.topic_prefix)


@pytest.fixture(params=["memory", "kafka"])
def pipeline(request: pytest.FixtureRequest, store: Store, tmp_path: Path) -> Iterator[Pipeline]:
    """One bus (parametrized) and one store (parametrized by conftest's ``store``), migrated, unique topics."""
    prefix = f"w-{uuid.uuid4().hex[:10]}"
    kafka: dict[str, Any] = {"topic_prefix": prefix, "partitions": 3, "consumer_group": f"{prefix}-writer",
                             "session_timeout_ms": 6000}
    if request.param == "kafka":
        kafka["bootstrap_servers"] = request.getfixturevalue("kafka_bootstrap")
    settings = Settings(data_dir=tmp_path, bus={"kind": request.param}, kafka=kafka,
                        storage={"batch_rows": 500, "batch_age_ms": 50, "retry_initial_ms": 20})
    migrate(store)
    yield Pipeline(settings, open_bus(settings), store)
    if request.param == "kafka":
        delete_topics(settings.kafka.bootstrap_servers, prefix)


def publish(pipeline: Pipeline, events: Sequence) -> None:
    producer = build_producer(pipeline.settings, pipeline.bus)
    producer.publish_many(events)
    assert producer.flush(30), producer.stats()
    stats = producer.stats()
    producer.close()
    assert stats.delivered == len(events) and stats.dropped == 0


@pytest.mark.timeout(200)
def test_every_event_is_stored_exactly_once_and_poison_goes_to_the_dead_letter_topic(pipeline):
    events = make_events(3000)
    publish(pipeline, events)
    raw = pipeline.bus.producer()
    for index in range(5):
        raw.produce(pipeline.topics.trades, b"AAPL", b"\x01\xc1not an event" + bytes([index]), lambda *r: None)
    raw.flush(10)
    writer = build_writer(pipeline.settings, pipeline.bus, pipeline.store)
    writer.start()
    try:
        # >=: a rebalance on a loaded machine makes the writer read some messages again
        wait_until(lambda: writer.stats().consumed >= len(events) + 5, 120, "the writer to read every message")
        wait_until(lambda: writer.stats().batches and not writer.stats().retrying and
                   stored_count(pipeline.store) == len(stored_kinds(events)), 30, "every row to be stored")
    finally:
        writer.stop()
    stats = writer.stats()
    assert stats.dead_lettered == 5 and stats.skipped == len(events) - len(stored_kinds(events))
    assert stats.write_failures == 0 and stats.latency.count == len(stored_kinds(events))
    assert stats.total_lag == 0 and len(stats.lag) == 12  # 4 event topics x 3 partitions
    assert_stored_exactly_once(pipeline.store, events)


class CrashBeforeCommit(Exception):
    """Raised by the after-insert hook: the writer 'dies' between insert and commit."""


@pytest.mark.timeout(120)
def test_writer_restart_between_insert_and_commit_stores_each_event_once(pipeline):
    events = make_events(2000)
    publish(pipeline, events)
    group = pipeline.settings.kafka.consumer_group
    consumer = pipeline.bus.consumer(group)
    dead_letters = DeadLetterSink(pipeline.bus.producer(), pipeline.topics.deadletter)

    def crash(batch) -> None:
        raise CrashBeforeCommit

    doomed = Writer(consumer, pipeline.store, pipeline.topics, dead_letters, batch_rows=300, after_insert=crash)
    with pytest.raises(CrashBeforeCommit):
        while True:
            doomed.step()
    consumer.close()  # gone without committing
    first_batch = stored_count(pipeline.store)
    assert 0 < first_batch < len(stored_kinds(events))
    if isinstance(pipeline.bus, MemoryBus):
        assert all(pipeline.bus.committed(group, TopicPartition(t, p)) is None
                   for t in pipeline.topics.event_topics for p in range(3))

    successor = build_writer(pipeline.settings, pipeline.bus, pipeline.store)
    successor.start()
    try:
        wait_until(lambda: stored_count(pipeline.store) >= len(stored_kinds(events)), 60, "the rest to be stored")
        time.sleep(0.5)  # a duplicate insert would land now
    finally:
        successor.stop()
    assert successor.stats().stored == len(stored_kinds(events)) - first_batch
    assert_stored_exactly_once(pipeline.store, events)


class LostAcknowledgementStore(WrappedStore):
    """The real store, except that chosen inserts fail: some after the server stored the rows (the
    acknowledgement was lost), some before. Reproduces an ambiguous outage deterministically."""

    def __init__(self, inner: Store, fail_after: set[int], fail_before: set[int]) -> None:
        super().__init__(inner)
        self._after, self._before = fail_after, fail_before
        self.inserts = 0
        self.injected = {"before": 0, "after": 0}
        self._lock = threading.Lock()  # the writer inserts tables concurrently

    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> int:
        with self._lock:
            self.inserts += 1
            number = self.inserts
            if number in self._before:
                self.injected["before"] += 1
        if number in self._before:
            raise StorageUnavailable("injected: connection refused")
        rows = self._inner.insert_columns(table, columns, data)
        if number in self._after:
            with self._lock:
                self.injected["after"] += 1
            raise StorageUnavailable("injected: connection reset after the insert was sent")
        return rows


@pytest.mark.timeout(120)
def test_a_failed_write_is_retried_without_losing_or_doubling_rows(pipeline):
    events = make_events(1500)
    publish(pipeline, events)
    flaky = LostAcknowledgementStore(pipeline.store, fail_after={2, 5}, fail_before={3, 6})
    writer = build_writer(pipeline.settings, pipeline.bus, flaky)
    writer.start()
    try:
        wait_until(lambda: stored_count(pipeline.store) >= len(stored_kinds(events)), 60, "every row to be stored")
        wait_until(lambda: not writer.stats().retrying, 10, "the retry to finish")
        time.sleep(0.3)
    finally:
        writer.stop()
    stats = writer.stats()
    assert flaky.injected["before"] >= 1 and flaky.injected["after"] >= 1
    # a failed attempt counts once even when two of its concurrent table inserts failed
    assert 1 <= stats.write_failures <= sum(flaky.injected.values()) and "injected" in stats.last_error
    assert_stored_exactly_once(pipeline.store, events)


@pytest.mark.timeout(60)
def test_a_lone_event_is_stored_after_the_age_bound_not_when_a_batch_fills(pipeline):
    writer = build_writer(pipeline.settings, pipeline.bus, pipeline.store)
    writer.start()
    producer = build_producer(pipeline.settings, pipeline.bus)
    producer.start()
    try:
        for seq in (1, 2):  # the first one pays for group join and topic metadata
            now = time.time_ns()
            producer.publish(Trade(symbol="AAPL", price=1.0, size=1, ts_ns=now, source="lone", seq=seq, recv_ns=now))
            wait_until(lambda n=seq: writer.stats().stored == n, 10, f"event {seq} to be stored", interval_s=0.005)
    finally:
        producer.close()
        writer.stop()
    (latency_ms,) = pipeline.store.query(
        f"SELECT (stored_ns - recv_ns) / 1e6 FROM {pipeline.store.table('trades')} WHERE seq = 2")[0]
    # 500 rows per batch would never fill: the 50 ms age bound sends it (plus bus and insert time).
    assert 50 <= latency_ms < 500, f"recv -> insert started after {latency_ms:.1f} ms with a 50 ms age bound"


@pytest.mark.timeout(60)
def test_stored_positions_beyond_the_end_of_the_bus_are_ignored_not_skipped_to(store, tmp_path):
    """A new in-process bus (or a recreated topic) must not make the writer skip new events."""
    migrate(store)
    settings = Settings(data_dir=tmp_path, kafka={"topic_prefix": "stale", "partitions": 1})
    bus = MemoryBus(first_offset=0)
    stale = Trade(symbol="OLD", price=1.0, size=1, ts_ns=1, source="old", seq=1)
    rows = to_batches([stale], stored_ns=1, positions=[(0, 10**6)])["trades"]  # stored by an earlier bus
    store.insert_columns("trades", rows.columns, rows.data)
    events = [Trade(symbol="NEW", price=1.0, size=1, ts_ns=2, total_volume=i, source="new", seq=i) for i in range(1, 4)]
    producer = build_producer(settings, bus)
    producer.publish_many(events)
    assert producer.flush(5)
    writer = build_writer(settings, bus, store)
    deadline = time.monotonic() + 30
    while writer.stats().stored < 3 and time.monotonic() < deadline:
        writer.step()
    writer.close()
    assert_stored_exactly_once(store, [stale, *events])

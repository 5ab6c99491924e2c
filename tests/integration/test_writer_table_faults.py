"""The writer when one table misbehaves, over each bus and each store: a slow table failing before and
after storing while the other tables of the same batches succeed, and an insert that raises something
other than a storage error. Every commit is checked against storage (it may only cover stored rows and
only move forward), and every event ends up stored exactly once."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from pathlib import Path
from typing import Any

import pytest

from bus.base import BusConsumer, BusRecord, Record, TopicPartition
from bus.deadletter import DeadLetterSink
from bus.factory import build_producer, open_bus
from bus.topics import TopicSet
from config import Settings
from storage.migrate import migrate
from storage.rows import IDENTITY_COLUMNS, Identity, identity_of, stored_identity, table_for
from storage.store import StorageUnavailable, Store
from storage.writer import Writer
from tests.integration.pipeline import (
    assert_stored_exactly_once,
    delete_topics,
    make_events,
    stored_count,
    stored_kinds,
    wait_until,
)


class WrappedStore(Store):
    """The real store, every call passed through; a test's subclass changes ``insert_columns`` to inject a fault."""

    def __init__(self, inner: Store) -> None:
        self.database = inner.database
        self._inner = inner

    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> int:
        return self._inner.insert_columns(table, columns, data)

    def execute(self, sql: str) -> None:
        self._inner.execute(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self._inner.query(sql)

    def close(self) -> None:
        self._inner.close()


class SlowFlakyTrades(WrappedStore):
    """The real store, except that trades inserts are slow (the batch's other tables finish first) and the
    chosen ones fail: before storing, after storing (the acknowledgement lost), or with a non-storage error."""

    def __init__(self, inner: Store, fail_before: set[int], fail_after: set[int], delay_s: float = 0.03,
                 fail_other: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        super().__init__(inner)
        self._before, self._after, self._delay_s = fail_before, fail_after, delay_s
        self._other = fail_other
        self.trade_inserts = 0
        self._lock = threading.Lock()

    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> int:
        if table != "trades":
            return self._inner.insert_columns(table, columns, data)
        with self._lock:
            self.trade_inserts += 1
            number = self.trade_inserts
        time.sleep(self._delay_s)
        if number in self._before:
            raise StorageUnavailable("injected: trades refused")
        if number in self._other:
            raise TypeError("injected: a column value the driver cannot encode")
        rows = self._inner.insert_columns(table, columns, data)
        if number in self._after:
            raise StorageUnavailable("injected: trades acknowledgement lost")
        return rows


class CheckedCommits(BusConsumer):
    """Wraps the writer's consumer: at every commit, each stored-kind record read below the committed
    offset must already be in storage (its row, or another row of its identity), or be acknowledged as a dead
    letter (``dead_lettered()``), and no committed offset may move backwards."""

    def __init__(self, inner: BusConsumer, store: Store, topics: TopicSet,
                 dead_lettered: Callable[[], Set[tuple[TopicPartition, int]]] = frozenset) -> None:
        self._inner, self._store, self._topics, self._dead_lettered = inner, store, topics, dead_lettered
        self.read: dict[TopicPartition, dict[int, Identity]] = defaultdict(dict)  # offset -> the event's identity
        self.committed: dict[TopicPartition, int] = {}
        self.commits = 0
        self.violations: list[str] = []

    def subscribe(self, topics, on_assign, on_revoke) -> None:  # type: ignore[no-untyped-def]
        self._inner.subscribe(topics, on_assign, on_revoke)

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        records = self._inner.poll_batch(max_records, timeout_s)
        for record in records:
            table = table_for(record.event) if isinstance(record, BusRecord) else None
            if table is not None and table == self._topics.table_for_topic(record.topic):
                self.read[record.position][record.offset] = identity_of(table, record.event)
        return records

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if offset < self.committed.get(tp, 0):
                self.violations.append(f"{tp} committed {offset} after {self.committed[tp]}")
            table = self._topics.table_for_topic(tp.topic)
            below = {o for o in self.read[tp] if o < offset}
            if table is None or not below:
                continue
            rows = self._store.query(f"SELECT bus_offset, {', '.join(IDENTITY_COLUMNS[table])} "
                                     f"FROM {self._store.table(table)} "
                                     f"WHERE bus_partition = {tp.partition} AND bus_offset < {offset}")
            stored = {int(o) for o, *_ in rows}
            events = {stored_identity(table, identity) for _, *identity in rows}
            missing = {o for o in below - stored if self.read[tp][o] not in events}
            missing -= {o for (p, o) in self._dead_lettered() if p == tp}
            if missing:
                self.violations.append(f"{tp} committed {offset} with {len(missing)} rows below it neither stored "
                                       f"nor dead-lettered")
        self._inner.commit(offsets)
        self.committed.update(offsets)
        self.commits += 1

    def pause(self) -> None:
        self._inner.pause()

    def resume(self) -> None:
        self._inner.resume()

    def assignment(self) -> list[TopicPartition]:
        return self._inner.assignment()

    def high_watermarks(self) -> dict[TopicPartition, int]:
        return self._inner.high_watermarks()

    def close(self) -> None:
        self._inner.close()


def writer_settings(bus_kind: str, tmp_path: Path, bootstrap: str | None = None) -> Settings:
    """Fresh topics (2 partitions) and consumer group; ``bootstrap`` for Kafka."""
    prefix = f"wp-{uuid.uuid4().hex[:10]}"
    kafka: dict[str, Any] = {"topic_prefix": prefix, "partitions": 2, "consumer_group": f"{prefix}-writer",
                             "session_timeout_ms": 6000}
    if bootstrap is not None:
        kafka["bootstrap_servers"] = bootstrap
    return Settings(data_dir=tmp_path, bus={"kind": bus_kind}, kafka=kafka)


@pytest.fixture(params=["memory", "kafka"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    kafka = request.param == "kafka"
    made = writer_settings(request.param, tmp_path, request.getfixturevalue("kafka_bootstrap") if kafka else None)
    yield made
    if kafka:
        delete_topics(made.kafka.bootstrap_servers, made.kafka.topic_prefix)


def run_writer(settings: Settings, store: Store, flaky: SlowFlakyTrades, events: list) -> tuple[Writer, CheckedCommits]:
    bus = open_bus(settings)
    topics = TopicSet(settings.kafka.topic_prefix)
    bus.ensure_topics(topics.all_topics, settings.kafka.partitions)
    producer = build_producer(settings, bus)
    producer.publish_many(events)
    assert producer.flush(30)
    producer.close()
    consumer = CheckedCommits(bus.consumer(settings.kafka.consumer_group), store, topics)
    writer = Writer(consumer, flaky, topics, DeadLetterSink(bus.producer(), topics.deadletter),
                    batch_rows=60, batch_age_s=0.02, retry_initial_s=0.02, retry_max_s=0.2)
    writer.start()
    try:
        wait_until(lambda: stored_count(store) >= len(stored_kinds(events)), 120, "every row to be stored")
        wait_until(lambda: not writer.stats().retrying and writer.stats().total_lag == 0, 30, "the writer to settle")
        time.sleep(0.3)  # a doubled insert would land now
    finally:
        writer.stop()
    return writer, consumer


@pytest.mark.timeout(180)
def test_a_slow_table_failing_before_and_after_storing_commits_only_stored_rows_and_stores_each_event_once(
    settings, store
):
    migrate(store)
    events = make_events(2500)
    flaky = SlowFlakyTrades(store, fail_before={3, 9}, fail_after={5, 12})
    writer, consumer = run_writer(settings, store, flaky, events)
    stats = writer.stats()
    assert flaky.trade_inserts > 12, "every injected failure happened"
    assert 4 <= stats.write_failures <= 6 and "injected" in stats.last_error
    assert consumer.commits > 0 and consumer.violations == []
    assert_stored_exactly_once(store, events)


@pytest.mark.timeout(180)
def test_an_insert_failing_with_a_non_storage_error_is_kept_and_retried_not_dropped(settings, store):
    migrate(store)
    events = make_events(1500)
    flaky = SlowFlakyTrades(store, fail_before=set(), fail_after=set(), delay_s=0.0, fail_other={2})
    writer, consumer = run_writer(settings, store, flaky, events)
    assert writer.stats().write_failures >= 1 and "cannot encode" in writer.stats().last_error
    assert consumer.violations == []
    assert_stored_exactly_once(store, events)

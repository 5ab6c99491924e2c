"""The bus interfaces on the real Kafka broker: topics, the idempotent producer with its spool, the group
consumer (assignment, commits, pause), dead letters."""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from collections.abc import Iterator

import pytest

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from bus.base import BusRecord, PartitionStart, PoisonRecord, TopicPartition
from bus.breaker import BreakerState
from bus.codec import decode
from bus.deadletter import DeadLetterSink
from bus.factory import build_producer, open_bus, spool_directory
from bus.kafka import KafkaBus
from bus.spool import Spool
from bus.topics import Retention, TopicSet, event_key
from config import Settings
from events import Trade
from tests.integration.pipeline import delete_topics, make_events, wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[TopicSet]:
    topics = TopicSet(f"kb-{uuid.uuid4().hex[:10]}")
    yield topics
    delete_topics(kafka_bootstrap, topics.prefix)


@pytest.fixture
def kafka(kafka_bootstrap: str) -> KafkaBus:
    return KafkaBus(kafka_bootstrap, session_timeout_ms=6000)


def settings_for(tmp_path, bootstrap: str, topics: TopicSet) -> Settings:
    return Settings(data_dir=tmp_path, bus={"kind": "kafka"},
                    kafka={"bootstrap_servers": bootstrap, "topic_prefix": topics.prefix, "partitions": 3})


def read_all(consumer, count: int, timeout_s: float = 30.0) -> list:
    records: list = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        records.extend(consumer.poll_batch(count - len(records), 0.5))
    return records


@pytest.mark.timeout(60)
def test_missing_topics_are_created_with_the_configured_partitions_once(kafka, topics):
    assert sorted(kafka.ensure_topics(topics.all_topics, 3)) == sorted(topics.all_topics)
    assert kafka.ensure_topics(topics.all_topics, 3) == []
    metadata = kafka._admin().list_topics(timeout=10)
    assert {len(metadata.topics[t].partitions) for t in topics.all_topics} == {3}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("batched", [False, True], ids=["one-per-message", "batches"])
def test_published_events_arrive_decoded_in_order_per_symbol(kafka, kafka_bootstrap, topics, tmp_path, batched):
    producer = build_producer(settings_for(tmp_path, kafka_bootstrap, topics), kafka)
    if batched:
        producer.poll(0)  # the polling thread learns the partition counts; batches from then on
    events = make_events(2000)
    producer.publish_many(events)
    assert producer.flush(30)
    stats = producer.stats()
    assert (stats.delivered, stats.failed, stats.spooled, stats.dropped) == (2000, 0, 0, 0)
    assert stats.latency.count == 2000 and stats.latency.percentile(0.99) is not None
    producer.close()

    consumer = kafka.consumer(f"{topics.prefix}-reader")
    consumer.subscribe(topics.event_topics, lambda starts: {}, lambda tps: None)
    records = read_all(consumer, 2000)
    consumer.close()
    assert all(isinstance(r, BusRecord) for r in records)
    messages = {(r.topic, r.partition, r.offset) for r in records}
    assert (len(messages) < 2000 / 5) if batched else (len(messages) == 2000)
    by_key: dict[bytes, list[int]] = {}
    for record in records:
        by_key.setdefault(event_key(record.event), []).append(record.event.seq)
    expected: dict[bytes, list[int]] = {}
    for event in events:
        expected.setdefault(event_key(event), []).append(event.seq)
    assert {k: sorted(v) for k, v in by_key.items()} == expected  # nothing lost or doubled
    streams: dict[tuple[bytes, str], list[int]] = {}  # a key's events on one topic share a partition
    partitions: dict[tuple[bytes, str], set[int]] = {}
    for record in records:
        where = (event_key(record.event), record.topic)
        streams.setdefault(where, []).append(record.event.seq)
        partitions.setdefault(where, set()).add(record.partition)
    assert all(seqs == sorted(seqs) for seqs in streams.values())  # and arrive in publish order
    # librdkafka's partitioner and the producer's grouping agree: CRC-32 of the key modulo the partitions
    assert all(found == {zlib.crc32(key) % 3} for (key, _), found in partitions.items())


@pytest.mark.timeout(90)
def test_assignment_reports_committed_and_end_offsets_and_starts_where_told(kafka, kafka_bootstrap, topics, tmp_path):
    producer = build_producer(settings_for(tmp_path, kafka_bootstrap, topics), kafka)
    producer.publish_many([Trade(symbol="AAPL", price=1.0, size=1, ts_ns=i, source="s", seq=i) for i in range(10)])
    assert producer.flush(30)
    producer.close()
    group = f"{topics.prefix}-g"

    first = kafka.consumer(group)
    first.subscribe([topics.trades], lambda starts: {}, lambda tps: None)
    records = read_all(first, 10)
    tp = records[0].position
    first.commit({tp: 4})
    first.close()

    seen: dict[TopicPartition, PartitionStart] = {}

    def on_assign(starts):
        seen.update(starts)
        return {tp: 7}

    second = kafka.consumer(group)
    second.subscribe([topics.trades], on_assign, lambda tps: None)
    assert [r.offset for r in read_all(second, 3)] == [7, 8, 9]
    assert seen[tp] == PartitionStart(committed=4, begin=0, end=10)
    assert all(start.committed is None for other, start in seen.items() if other != tp)

    second.pause()
    assert second.poll_batch(10, 1.0) == []
    wait_until(lambda: second.high_watermarks().get(tp) == 10, 10, "the cached high watermark")
    second.resume()
    second.close()


@pytest.mark.timeout(60)
def test_dead_letters_keep_payload_and_key_and_say_where_from(kafka, kafka_bootstrap, topics):
    kafka.ensure_topics(topics.all_topics, 1)
    sink = DeadLetterSink(kafka.producer(), topics.deadletter)
    sink.send([PoisonRecord(topics.trades, 2, 41, b"AAPL", b"\x01\xc1", "does not decode")])
    sink.close()
    reader = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"{topics.prefix}-dlq",
                       "auto.offset.reset": "earliest", "enable.auto.commit": False})
    reader.subscribe([topics.deadletter])
    try:
        message = None
        deadline = time.monotonic() + 30
        while message is None and time.monotonic() < deadline:
            message = reader.poll(0.5)
    finally:
        reader.close()
    assert message is not None and message.error() is None
    assert (message.key(), message.value()) == (b"AAPL", b"\x01\xc1")
    assert dict(message.headers()) == {
        "tickops.source_topic": topics.trades.encode(), "tickops.source_partition": b"2",
        "tickops.source_offset": b"41", "tickops.source_index": b"0", "tickops.reason": b"does not decode",
    }


@pytest.mark.timeout(60)
def test_an_unreachable_broker_at_start_sends_events_to_the_spool_not_to_memory(tmp_path, topics):
    dead = "127.0.0.1:1"  # nothing listens there
    settings = Settings(data_dir=tmp_path, bus={"kind": "kafka"},
                        kafka={"bootstrap_servers": dead, "topic_prefix": topics.prefix})
    producer = build_producer(settings, KafkaBus(dead, admin_timeout_s=0.5))
    events = make_events(50)
    producer.publish_many(events)
    stats = producer.stats()
    assert stats.breaker.state is BreakerState.OPEN
    assert (stats.spooled, stats.dropped) == (50, 0)
    producer.close(timeout_s=0)
    spool = Spool(spool_directory(settings), budget_bytes=1 << 20)  # what the next run replays
    assert [decode(record.value) for _, record in spool.peek(100)] == events
    spool.close()


def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return {name: entry.value for name, entry in entries.items()}


@pytest.mark.timeout(60)
def test_the_configured_bus_creates_the_dead_letter_topic_with_the_retention_limits_of_the_settings(
    kafka_bootstrap, topics, tmp_path
):
    settings = settings_for(tmp_path, kafka_bootstrap, topics)
    build_producer(settings, open_bus(settings)).close(timeout_s=1)
    configs = topic_configs(kafka_bootstrap, topics.deadletter)
    # The defaults: kafka.deadletter_retention_ms = 7 days, kafka.deadletter_retention_mb = 64 per partition.
    assert (configs["retention.ms"], configs["retention.bytes"]) == (str(7 * 86_400_000), str(64 << 20))
    assert topic_configs(kafka_bootstrap, topics.trades)["retention.bytes"] == "-1"  # event topics keep the broker's


@pytest.mark.timeout(60)
def test_an_existing_dead_letter_topic_gets_the_retention_limits_once_a_bus_starts(kafka, kafka_bootstrap, topics, caplog):
    kafka.ensure_topics(topics.all_topics, 1)  # created by a bus that knew no limits
    assert topic_configs(kafka_bootstrap, topics.deadletter)["retention.bytes"] == "-1"
    limited = KafkaBus(kafka_bootstrap, retention={topics.deadletter: Retention(ms=3_600_000, partition_bytes=8 << 20)})
    with caplog.at_level(logging.INFO, logger="bus.kafka"):
        assert limited.ensure_topics(topics.all_topics, 1) == []
    configs = topic_configs(kafka_bootstrap, topics.deadletter)
    assert (configs["retention.ms"], configs["retention.bytes"]) == ("3600000", str(8 << 20))
    (updated,) = [r for r in caplog.records if r.getMessage() == "topic retention updated"]
    assert "retention.bytes=8388608 (was -1)" in updated.changes

"""MemoryBus: Kafka's model in process (partitions, offsets, groups, delivery reports), thread-safe."""

from __future__ import annotations

import threading
import time

import pytest

from bus.base import BusError, BusQueueFull, BusRecord, DeliveryFailed, PoisonRecord, TopicPartition
from bus.codec import encode
from bus.factory import open_bus
from bus.memory import MemoryBus
from bus.topics import Retention, TopicSet
from config import Settings
from events import Trade


def trade(symbol: str, seq: int) -> bytes:
    return encode(Trade(symbol=symbol, price=1.0, size=1, ts_ns=seq, source="t", seq=seq))


def produce_all(bus: MemoryBus, topic: str, items: list[tuple[bytes, bytes]]) -> list[tuple[BusError | None, int, int]]:
    producer = bus.producer()
    reports: list[tuple[BusError | None, int, int]] = []
    for key, value in items:
        producer.produce(topic, key, value, lambda e, p, o: reports.append((e, p, o)))
    assert producer.flush(1) == 0
    return reports


def consume(consumer, expected: int) -> list:
    records: list = []
    while len(records) < expected:
        batch = consumer.poll_batch(expected - len(records), 1.0)
        assert batch, f"got {len(records)} of {expected}"
        records.extend(batch)
    return records


@pytest.fixture
def bus() -> MemoryBus:
    bus = MemoryBus(first_offset=0)
    bus.ensure_topics(["t"], 4)
    return bus


def test_a_key_always_lands_in_one_partition_with_consecutive_offsets(bus):
    reports = produce_all(bus, "t", [(b"AAPL", trade("AAPL", i)) for i in range(10)])
    assert {p for _, p, _ in reports} == {reports[0][1]}
    assert [o for _, _, o in reports] == list(range(10))
    assert all(error is None for error, _, _ in reports)


def test_delivery_reports_wait_for_poll_like_librdkafka(bus):
    producer = bus.producer()
    reports: list = []
    producer.produce("t", b"k", b"v", lambda *r: reports.append(r))
    assert reports == [] and producer.in_flight() == 1
    assert producer.poll(0) == 1 and len(reports) == 1 and producer.in_flight() == 0


def test_producing_to_an_unknown_topic_fails_its_delivery_report(bus):
    (report,) = produce_all(bus, "missing", [(b"k", b"v")])
    assert isinstance(report[0], DeliveryFailed)


def test_a_new_consumer_in_the_group_resumes_after_the_committed_offset(bus):
    produce_all(bus, "t", [(b"K", trade("K", i)) for i in range(6)])
    first = bus.consumer("g")
    first.subscribe(["t"], lambda starts: {}, lambda tps: None)
    records = consume(first, 6)
    tp = records[0].position
    first.commit({tp: records[3].offset + 1})
    first.close()
    second = bus.consumer("g")
    second.subscribe(["t"], lambda starts: {}, lambda tps: None)
    assert [r.event.seq for r in consume(second, 2)] == [4, 5]


def test_the_assign_handler_sees_committed_and_end_offsets_and_chooses_the_start(bus):
    produce_all(bus, "t", [(b"K", trade("K", i)) for i in range(6)])
    seen = {}

    def on_assign(starts):
        seen.update(starts)
        return {tp: 4 for tp, start in starts.items() if start.end == 6}

    consumer = bus.consumer("g")
    consumer.subscribe(["t"], on_assign, lambda tps: None)
    assert [r.offset for r in consume(consumer, 2)] == [4, 5]
    assert len(seen) == 4 and all(start.committed is None for start in seen.values())


def test_one_consumer_per_group(bus):
    bus.consumer("g").subscribe(["t"], lambda s: {}, lambda t: None)
    with pytest.raises(BusError, match="one consumer per group"):
        bus.consumer("g").subscribe(["t"], lambda s: {}, lambda t: None)


def test_a_full_partition_refuses_until_the_group_commits_past_it():
    bus = MemoryBus(capacity=3, first_offset=0)
    bus.ensure_topics(["t"], 1)
    consumer = bus.consumer("g")
    consumer.subscribe(["t"], lambda s: {}, lambda t: None)
    producer = bus.producer()
    for i in range(3):
        producer.produce("t", b"k", trade("k", i), lambda *r: None)
    with pytest.raises(BusQueueFull):
        producer.produce("t", b"k", trade("k", 3), lambda *r: None)
    records = consume(consumer, 3)
    consumer.commit({TopicPartition("t", 0): records[-1].offset + 1})
    producer.produce("t", b"k", trade("k", 3), lambda *r: None)
    assert [r.event.seq for r in consume(consumer, 1)] == [3]


def test_paused_consumers_read_nothing_and_resume_where_they_stopped(bus):
    produce_all(bus, "t", [(b"K", trade("K", i)) for i in range(4)])
    consumer = bus.consumer("g")
    consumer.subscribe(["t"], lambda s: {}, lambda t: None)
    assert [r.event.seq for r in consumer.poll_batch(2, 1.0)] == [0, 1]
    consumer.pause()
    assert consumer.poll_batch(10, 0.05) == []
    consumer.resume()
    assert [r.event.seq for r in consumer.poll_batch(10, 1.0)] == [2, 3]


def test_undecodable_payloads_come_back_as_poison_records(bus):
    produce_all(bus, "t", [(b"K", b"\x07junk"), (b"K", trade("K", 1))])
    consumer = bus.consumer("g")
    consumer.subscribe(["t"], lambda s: {}, lambda t: None)
    poison, good = consume(consumer, 2)
    assert isinstance(poison, PoisonRecord) and "version 7" in poison.reason
    assert isinstance(good, BusRecord) and good.offset == poison.offset + 1


def test_concurrent_producers_lose_nothing_and_keep_per_key_order(bus):
    def publish(key: str) -> None:
        producer = bus.producer()
        for i in range(2000):
            producer.produce("t", key.encode(), trade(key, i), lambda *r: None)
        producer.flush(1)

    threads = [threading.Thread(target=publish, args=(f"K{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    consumer = bus.consumer("g")
    consumer.subscribe(["t"], lambda s: {}, lambda t: None)
    records = consume(consumer, 12_000)
    for thread in threads:
        thread.join()
    by_key: dict[str, list[int]] = {}
    for record in records:
        by_key.setdefault(record.event.symbol, []).append(record.event.seq)
    assert by_key == {f"K{n}": list(range(2000)) for n in range(6)}
    assert len({(r.partition, r.offset) for r in records}) == 12_000


def test_a_new_bus_starts_offsets_after_anything_an_earlier_process_stored():
    before = time.time_ns()
    bus = MemoryBus()
    bus.ensure_topics(["t"], 1)
    ((_, _, offset),) = produce_all(bus, "t", [(b"k", b"v")])
    assert offset >= before


def produce_until_refused(producer, topic: str, value: bytes, attempts: int) -> tuple[int, int]:
    """(accepted, refused) after ``attempts`` produce calls of ``value``."""
    accepted = refused = 0
    for i in range(attempts):
        try:
            producer.produce(topic, str(i).encode(), value, lambda *r: None)
            accepted += 1
        except BusQueueFull:
            refused += 1
    return accepted, refused


def test_the_default_in_process_bus_refuses_messages_beyond_its_byte_budget_so_the_producer_spools(tmp_path):
    bus = open_bus(Settings(data_dir=tmp_path))
    topic = TopicSet(Settings(data_dir=tmp_path).kafka.topic_prefix).trades
    bus.ensure_topics([topic], 6)
    payload = bytes(1 << 20)  # one object shared by every message: the test holds 1 MiB, the bus counts each
    accepted, refused = produce_until_refused(bus.producer(), topic, payload, attempts=600)
    assert refused > 0, f"{accepted} MiB accepted: the 512 MiB budget (bus.memory_max_mb) was not enforced"
    assert accepted < 512 and accepted + refused == 600
    stats = bus.stats()
    assert stats["refused_bytes"] == refused and stats["bytes"] <= stats["max_bytes"] == 512 << 20


def test_each_byte_budget_refusal_is_counted_logged_once_with_the_bound_and_consumption_frees_the_budget(caplog):
    bus = MemoryBus(max_bytes=10_000, first_offset=0)
    bus.ensure_topics(["t"], 2)
    consumer = bus.consumer("g")
    consumer.subscribe(["t"], lambda s: {}, lambda t: None)
    producer = bus.producer()
    accepted, refused = produce_until_refused(producer, "t", bytes(1000), attempts=20)
    assert (accepted, refused) == (8, 12)  # 1000 bytes of payload, about 130 of key and bookkeeping each
    assert bus.stats()["refused_bytes"] == 12 and 8 * 1000 < bus.stats()["bytes"] <= 10_000
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("in-memory bus limit reached")]
    assert (logged.limit, logged.bound) == ("bytes", 10_000)
    records = consume(consumer, 8)
    ends: dict[TopicPartition, int] = {}
    for record in records:
        ends[record.position] = record.offset + 1
    consumer.commit(ends)
    assert bus.stats()["bytes"] == 0
    assert produce_until_refused(producer, "t", bytes(1000), attempts=8) == (8, 0)


def test_the_dead_letter_topic_keeps_its_newest_messages_within_its_retention_and_never_refuses():
    bus = MemoryBus(max_bytes=5_000, capacity=50, retention={"dl": Retention(ms=60_000, partition_bytes=4_000)},
                    first_offset=0)
    bus.ensure_topics(["t", "dl"], 1)
    producer = bus.producer()
    assert produce_until_refused(producer, "t", bytes(1000), attempts=10)[1] > 0  # the event topics are full ...
    reports = produce_all(bus, "dl", [(b"k", bytes([i]) * 1000) for i in range(100)])
    assert all(error is None for error, _, _ in reports)  # ... and poison messages are still set aside
    kept = bus.messages("dl")
    assert [value[0] for _, _, _, value, _ in kept] == [97, 98, 99]  # the newest, within 4000 bytes
    assert [offset for _, offset, _, _, _ in kept] == [97, 98, 99]
    stats = bus.stats()
    assert stats["retention_deleted"] == 97 and stats["retained_bytes"] <= 4_000


def test_the_dead_letter_topic_keeps_at_most_the_partition_message_cap():
    bus = MemoryBus(capacity=5, retention={"dl": Retention(ms=60_000, partition_bytes=1 << 30)}, first_offset=0)
    bus.ensure_topics(["dl"], 1)
    reports = produce_all(bus, "dl", [(b"k", str(i).encode()) for i in range(12)])
    assert all(error is None for error, _, _ in reports)
    assert [value for _, _, _, value, _ in bus.messages("dl")] == [str(i).encode() for i in range(7, 12)]
    assert bus.stats()["retention_deleted"] == 7


def test_the_configured_bus_bounds_its_dead_letter_topic_by_the_retention_settings(tmp_path):
    settings = Settings(data_dir=tmp_path, kafka={"deadletter_retention_mb": 1, "partitions": 1})
    topics = TopicSet(settings.kafka.topic_prefix)
    bus = open_bus(settings)
    bus.ensure_topics(topics.all_topics, 1)
    payload = bytes(100_000)
    produce_all(bus, topics.deadletter, [(b"k", payload) for _ in range(30)])
    assert len(bus.messages(topics.deadletter)) == 10  # 10 x 100 kB fit in 1 MiB, 11 do not
    assert bus.stats()["retention_deleted"] == 20

"""MemoryBus: Kafka's model in process (partitions, offsets, groups, delivery reports), thread-safe."""

from __future__ import annotations

import threading
import time

import pytest

from bus.base import BusError, BusQueueFull, BusRecord, DeliveryFailed, PoisonRecord, TopicPartition
from bus.codec import encode
from bus.memory import MemoryBus
from collectors.events import Trade


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

"""EventProducer: every event is acknowledged or spooled; the spool is replayed in order; drops are loud.

The transport is a MemoryBus producer behind a switch that can make it unreachable,
full, or fail deliveries after accepting them; the breaker runs on a fake clock.
"""

from __future__ import annotations

import json
import zlib
from collections import deque
from collections.abc import Callable, Mapping

import pytest

from bus.base import BusError, BusQueueFull, BusUnavailable, DeliveryCallback, DeliveryFailed, MessageProducer
from bus.breaker import BreakerState, CircuitBreaker
from bus.codec import decode_many
from bus.memory import MemoryBus
from bus.producer import TIME_BUCKET_NS, EventProducer
from bus.spool import Spool
from bus.topics import TopicSet
from events import HistoryBar, Quote, Trade
from tests.unit.file_size_limit import file_size_limit, run_in_child

TOPICS = TopicSet("p")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SwitchableTransport(MessageProducer):
    """A real in-memory producer with faults switched on and off by the test."""

    def __init__(self, bus: MemoryBus) -> None:
        self.inner = bus.producer()
        self.down = False
        self.capacity: int | None = None
        self.fail_deliveries = 0
        self._failed: deque[DeliveryCallback] = deque()

    def produce(self, topic: str, key: bytes | None, value: bytes, on_delivery: DeliveryCallback,
                headers: Mapping[str, bytes] | None = None) -> None:
        if self.down:
            raise BusUnavailable("broker down")
        if self.capacity is not None and self.in_flight() >= self.capacity:
            raise BusQueueFull("queue full")
        if self.fail_deliveries:
            self.fail_deliveries -= 1
            self._failed.append(on_delivery)
            return
        self.inner.produce(topic, key, value, on_delivery, headers)

    def poll(self, timeout_s: float = 0.0) -> int:
        served = 0
        while self._failed:
            self._failed.popleft()(DeliveryFailed("_MSG_TIMED_OUT"), -1, -1)
            served += 1
        return served + self.inner.poll(0)

    def flush(self, timeout_s: float) -> int:
        self.poll()
        return self.in_flight()

    def in_flight(self) -> int:
        return self.inner.in_flight() + len(self._failed)

    def partitions(self, topic: str, timeout_s: float) -> int | None:
        return None if self.down else self.inner.partitions(topic, timeout_s)

    def set_error_listener(self, listener: Callable[[BusError], None]) -> None:
        self.listener = listener

    def close(self, timeout_s: float = 10.0) -> None:
        self.poll()


@pytest.fixture
def bus() -> MemoryBus:
    bus = MemoryBus(first_offset=0)
    bus.ensure_topics(TOPICS.all_topics, 3)
    return bus


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def transport(bus) -> SwitchableTransport:
    return SwitchableTransport(bus)


def make_producer(transport, clock, directory, budget=1 << 20) -> EventProducer:
    def probe() -> None:
        if transport.down:
            raise BusUnavailable("probe: broker down")

    spool = Spool(directory, budget_bytes=budget, fsync_interval_s=0, clock=clock)
    breaker = CircuitBreaker("test", reset_timeout_s=1.0, max_reset_timeout_s=2.0, clock=clock)
    return EventProducer(transport, TOPICS, spool, breaker, probe=probe, clock=clock)


def trades(n: int, start: int = 0, symbols: int = 4) -> list[Trade]:
    return [Trade(symbol=f"S{i % symbols}", price=1.0, size=1, ts_ns=i, source="src", seq=i, recv_ns=1)
            for i in range(start, start + n)]


def on_bus(bus: MemoryBus) -> dict[str, list[int]]:
    """seq per symbol in bus order (the order a consumer of the symbol's partition sees)."""
    seen: dict[str, list[int]] = {}
    for topic in TOPICS.event_topics:
        for _, _, _, value, _ in sorted(bus.messages(topic)):
            for event in decode_many(value):
                seen.setdefault(event.symbol, []).append(event.seq)
    return seen


def per_symbol(events: list[Trade]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for event in events:
        out.setdefault(event.symbol, []).append(event.seq)
    return out


def test_healthy_broker_delivers_everything_and_measures_latency(bus, transport, clock, tmp_path):
    producer = make_producer(transport, clock, tmp_path)
    producer.publish_many(trades(100))
    assert producer.flush(1)
    stats = producer.stats()
    assert (stats.published, stats.delivered, stats.spooled, stats.dropped, stats.in_flight) == (100, 100, 0, 0, 0)
    assert stats.latency.count == 100 and stats.breaker.state is BreakerState.CLOSED
    assert on_bus(bus) == per_symbol(trades(100))


def test_broker_outage_spools_then_replays_in_order_when_the_probe_succeeds(bus, transport, clock, tmp_path):
    producer = make_producer(transport, clock, tmp_path)
    producer.publish_many(trades(10))
    transport.down = True
    producer.publish_many(trades(10, start=10))  # the first refused send opens the breaker
    producer.publish_many(trades(30, start=20))
    producer.poll()
    stats = producer.stats()
    assert stats.breaker.state is BreakerState.OPEN and stats.spooled == 40 and stats.spool.unsent == 40
    clock.now += 1.0
    producer.poll()  # half-open probe fails: stays open with a longer timeout
    assert producer.stats().breaker.state is BreakerState.OPEN
    transport.down = False
    clock.now += 2.0
    assert producer.flush(1)
    stats = producer.stats()
    assert (stats.delivered, stats.replayed, stats.dropped, stats.spool.bytes_used) == (50, 40, 0, 0)
    assert stats.breaker.state is BreakerState.CLOSED
    assert on_bus(bus) == per_symbol(trades(50))


def test_events_published_while_the_spool_drains_queue_behind_it(bus, transport, clock, tmp_path):
    producer = make_producer(transport, clock, tmp_path)
    transport.down = True
    producer.publish_many(trades(20))
    transport.down = False
    producer.publish_many(trades(20, start=20))  # breaker open: behind the spooled ones
    clock.now += 1.0
    assert producer.flush(1)
    producer.publish_many(trades(5, start=40))
    assert producer.flush(1)
    assert on_bus(bus) == per_symbol(trades(45))


def test_a_full_local_queue_spools_the_overflow_and_drains_it_in_order(bus, transport, clock, tmp_path):
    producer = make_producer(transport, clock, tmp_path)
    transport.capacity = 5
    producer.publish_many(trades(30))
    assert producer.stats().spooled == 25
    assert producer.stats().breaker.state is BreakerState.CLOSED  # full is not down
    assert producer.flush(1)
    assert on_bus(bus) == per_symbol(trades(30))


def test_a_delivery_that_fails_after_being_accepted_is_spooled_and_delivered_later(bus, transport, clock, tmp_path):
    producer = make_producer(transport, clock, tmp_path)
    transport.fail_deliveries = 3
    producer.publish_many(trades(10))
    producer.poll()
    stats = producer.stats()
    assert stats.failed == 3 and stats.spooled == 3 and stats.breaker.state is BreakerState.OPEN
    clock.now += 1.0
    assert producer.flush(1)
    stats = producer.stats()
    assert stats.delivered == 10 and stats.replayed == 3 and stats.dropped == 0
    assert sorted(seq for seqs in on_bus(bus).values() for seq in seqs) == list(range(10))


def test_a_replayed_event_that_fails_again_is_not_lost(bus, transport, clock, tmp_path):
    producer = make_producer(transport, clock, tmp_path)
    transport.down = True
    producer.publish_many(trades(5))
    transport.down = False
    transport.fail_deliveries = 2
    clock.now += 1.0
    producer.poll()
    clock.now += 2.0
    assert producer.flush(1)
    assert sorted(seq for seqs in on_bus(bus).values() for seq in seqs) == list(range(5))
    assert producer.stats().replayed == 5


def test_a_full_spool_drops_with_a_counter_and_an_error_log(bus, transport, clock, tmp_path, caplog):
    producer = make_producer(transport, clock, tmp_path, budget=2000)
    transport.down = True
    with caplog.at_level("ERROR", logger="bus.producer"):
        producer.publish_many(trades(100))
    stats = producer.stats()
    assert stats.dropped > 0 and stats.spooled + stats.dropped == 100
    assert "EVENTS DROPPED" in caplog.text


def test_closing_while_the_broker_is_down_keeps_events_for_the_next_run(bus, transport, clock, tmp_path):
    producer = make_producer(transport, clock, tmp_path)
    transport.down = True
    producer.publish_many(trades(12))
    producer.close(timeout_s=0)
    transport.down = False
    successor = make_producer(transport, clock, tmp_path)
    assert successor.stats().spool.unsent == 12
    assert successor.flush(1)
    assert on_bus(bus) == per_symbol(trades(12))


def dead_letters(bus: MemoryBus) -> list[tuple[bytes | None, dict]]:
    """(key, decoded JSON payload) of every message on the dead-letter topic, in bus order."""
    return [(key, json.loads(value)) for _, _, key, value, _ in sorted(bus.messages(TOPICS.deadletter))]


def test_one_event_that_cannot_be_encoded_is_dead_lettered_and_the_rest_of_the_read_is_delivered(
    bus, transport, clock, tmp_path, caplog
):
    producer = make_producer(transport, clock, tmp_path)
    read = trades(10)
    read[4] = Trade(symbol="S0", price=1.0, size=10**20, ts_ns=4, source="src", seq=4, recv_ns=1)  # msgpack: OverflowError
    with caplog.at_level("WARNING", logger="bus.producer"):
        producer.publish_many(read)  # raised before the fix, and none of the ten reached the bus
    assert producer.flush(1)
    stats = producer.stats()
    assert (stats.published, stats.rejected, stats.delivered, stats.dropped) == (10, 1, 10, 0)
    assert on_bus(bus) == per_symbol(read[:4] + read[5:])
    ((key, letter),) = dead_letters(bus)
    assert key == b"S0" and letter["rejected_by"] == "producer" and letter["kind"] == "Trade"
    assert "OverflowError" in letter["reason"] and letter["fields"]["size"] == 10**20
    assert letter["fields"]["seq"] == 4 and letter["fields"]["source"] == "src"
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("event rejected")]
    assert "OverflowError" in logged.error and f"size={10**20}" in logged.sample and logged.rejected_total == 1


def test_an_unroutable_event_is_dead_lettered_and_the_others_are_published(bus, transport, clock, tmp_path):
    producer = make_producer(transport, clock, tmp_path)
    bar = HistoryBar(symbol="A", ts_ns=1, open=1.0, high=1.0, low=1.0, close=1.0, volume=1, source="src", seq=99)
    producer.publish_many([*trades(3), bar, *trades(3, start=3)])
    assert producer.flush(1)
    assert producer.stats().rejected == 1
    assert on_bus(bus) == per_symbol(trades(6))
    ((key, letter),) = dead_letters(bus)
    assert key == b"A" and letter["kind"] == "HistoryBar" and "no bus topic" in letter["reason"]


def test_a_rejected_event_takes_the_spool_path_while_the_broker_is_down(bus, transport, clock, tmp_path):
    producer = make_producer(transport, clock, tmp_path)
    transport.down = True
    read = trades(6)
    read[2] = Trade(symbol="S2", price=1.0, size=-(10**20), ts_ns=2, source="src", seq=2, recv_ns=1)
    producer.publish_many(read)
    assert producer.stats().spooled == 6 and producer.stats().rejected == 1
    transport.down = False
    clock.now += 1.0
    assert producer.flush(1)
    assert on_bus(bus) == per_symbol(read[:2] + read[3:])
    assert [letter["fields"]["seq"] for _, letter in dead_letters(bus)] == [2]


def test_a_failed_redelivery_that_the_full_disk_cannot_respool_is_kept_and_delivered_in_this_run(
    bus, transport, clock, tmp_path
):
    def in_child() -> dict:
        producer = make_producer(transport, clock, tmp_path)
        transport.down = True
        producer.publish_many(trades(5))  # on disk in the spool
        (segment,) = tmp_path.glob("*.seg")
        with file_size_limit(segment.stat().st_size):  # the disk is full from here on
            producer.publish_many(trades(3, start=5))  # nothing left to put them: dropped, counted
            transport.down = False
            transport.fail_deliveries = 2  # two replayed events fail and cannot go back to the spool's tail
            clock.now += 1.0
            job_failures = poll_like_the_job_runner(producer, clock, rounds=1)
            full = producer.stats()
        job_failures += poll_like_the_job_runner(producer, clock, rounds=20)
        return {"full": full, "after": producer.stats(), "job_failures": job_failures,
                "on_bus": sorted(seq for seqs in on_bus(bus).values() for seq in seqs)}

    result = run_in_child(in_child)
    full, after = result["full"], result["after"]
    assert result["on_bus"] == list(range(5))  # before the fix one of the two was stranded until a restart
    assert result["job_failures"] == 0  # before the fix SpoolFull escaped from the delivery report
    assert (full.failed, full.dropped, full.spool.redelivering, full.spool.unsent) == (2, 3, 2, 2)
    assert full.spool.failing and full.spool.write_failures >= 2
    assert (after.replayed, after.dropped, after.spool.unsent, after.spool.unacked, after.spool.bytes_used) == (5, 3, 0, 0, 0)
    assert not after.spool.failing


def poll_like_the_job_runner(producer: EventProducer, clock: Clock, rounds: int) -> int:
    """Poll as the engine's supervised producer job does, one second apart: an exception is counted and
    the job goes on. Returns how many polls raised."""
    failures = 0
    for _ in range(rounds):
        try:
            producer.poll()
        except Exception:  # noqa: BLE001 - counted, as JobRunner does
            failures += 1
        clock.now += 1.0
    return failures


def test_a_transport_all_brokers_down_error_opens_the_breaker(bus, transport, clock, tmp_path):
    producer = make_producer(transport, clock, tmp_path)
    transport.listener(BusUnavailable("_ALL_BROKERS_DOWN"))
    producer.publish(Quote(symbol="A", bid=1.0, bid_size=1, ask=2.0, ask_size=1, ts_ns=1, seq=1))
    stats = producer.stats()
    assert stats.breaker.state is BreakerState.OPEN and stats.spooled == 1 and transport.in_flight() == 0


def batching_producer(bus: MemoryBus, transport, clock, directory, per_message: int = 50) -> EventProducer:
    spool = Spool(directory, budget_bytes=1 << 20, fsync_interval_s=0, clock=clock)
    breaker = CircuitBreaker("test", reset_timeout_s=1.0, max_reset_timeout_s=2.0, clock=clock)
    producer = EventProducer(transport, TOPICS, spool, breaker, probe=lambda: None, clock=clock,
                             events_per_message=per_message)
    producer.poll(0)  # learns the partition counts (from the polling thread, as in the engine)
    return producer


def test_events_of_a_partition_travel_together_in_order_and_each_symbol_stays_on_its_partition(bus, transport,
                                                                                              clock, tmp_path):
    producer = batching_producer(bus, transport, clock, tmp_path, per_message=50)
    events = trades(400, symbols=7)
    producer.publish_many(events)
    assert producer.flush(1)
    stats = producer.stats()
    assert (stats.published, stats.delivered, stats.spooled) == (400, 400, 0) and stats.latency.count == 400
    messages = bus.messages(TOPICS.trades)
    assert len(messages) < 400 / 10  # 3 partitions, at most 50 events a message
    for partition, _, key, value, _ in messages:
        batch = decode_many(value)
        assert 1 <= len(batch) <= 50 and key == batch[0].symbol.encode()
        assert {zlib.crc32(e.symbol.encode()) % 3 for e in batch} == {partition}
    assert on_bus(bus) == per_symbol(events)


def test_a_message_never_holds_events_of_two_storage_time_buckets(bus, transport, clock, tmp_path):
    producer = batching_producer(bus, transport, clock, tmp_path)
    bucket = TIME_BUCKET_NS
    times = [bucket - 2, bucket - 1, bucket, bucket + 1, bucket - 3, 2 * bucket]  # one symbol, out of order once
    producer.publish_many([Trade(symbol="S", price=1.0, size=1, ts_ns=t, source="src", seq=i, recv_ns=1)
                           for i, t in enumerate(times)])
    assert producer.flush(1)
    batches = [[e.ts_ns // bucket for e in decode_many(value)] for _, _, _, value, _ in bus.messages(TOPICS.trades)]
    assert batches == [[0, 0], [1, 1], [0], [2]]
    assert on_bus(bus) == {"S": list(range(6))}


def test_batched_events_the_broker_does_not_take_are_spooled_and_replayed_counted_per_event(bus, transport, clock,
                                                                                           tmp_path):
    producer = batching_producer(bus, transport, clock, tmp_path)
    transport.fail_deliveries = 1
    events = trades(120, symbols=3)
    producer.publish_many(events)
    producer.poll()
    failed = producer.stats()
    assert failed.failed >= 2 and failed.spooled == failed.failed and failed.breaker.state is BreakerState.OPEN
    clock.now += 1.0  # half-open: the probe succeeds and the spool is replayed
    producer.poll()
    assert producer.flush(2)
    stats = producer.stats()
    assert stats.failed == failed.failed and stats.replayed == stats.failed
    assert (stats.published, stats.delivered, stats.dropped, stats.spool.unsent) == (120, 120, 0, 0)
    assert stats.latency.count == 120
    assert sorted(seq for seqs in on_bus(bus).values() for seq in seqs) == list(range(120))


def test_until_the_partition_counts_are_known_events_go_one_per_message(bus, transport, clock, tmp_path):
    spool = Spool(tmp_path, budget_bytes=1 << 20, fsync_interval_s=0, clock=clock)
    breaker = CircuitBreaker("test", reset_timeout_s=1.0, max_reset_timeout_s=2.0, clock=clock)
    producer = EventProducer(transport, TOPICS, spool, breaker, probe=lambda: None, clock=clock,
                             events_per_message=50)
    producer.publish_many(trades(10))  # nobody polled yet
    assert producer.flush(1)
    assert len(bus.messages(TOPICS.trades)) == 10

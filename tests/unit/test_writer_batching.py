"""The writer's pure parts: batches close on size or age, routing covers every record's offset,
and inserts split into runs that each land in one table partition."""

from __future__ import annotations

import pytest

from bus.base import BusRecord, PoisonRecord, TopicPartition
from bus.codec import decode
from bus.topics import TopicSet
from collectors.events import Heartbeat, Quote, Trade
from storage.batching import BatchBuffer, route
from storage.inserter import _BUCKET_NS, _leading_run

TOPICS = TopicSet("p")


def trade_record(offset: int, partition: int = 0, ts_ns: int = 0) -> BusRecord:
    event = Trade(symbol="A", price=1.0, size=1, ts_ns=ts_ns, source="s", seq=offset)
    return BusRecord(TOPICS.trades, partition, offset, b"A", event)


def test_a_batch_is_due_when_full():
    buffer = BatchBuffer(TOPICS, max_records=3, max_age_s=10.0)
    buffer.add([trade_record(0), trade_record(1)], now=0.0)
    assert not buffer.due(0.0) and buffer.room() == 1
    buffer.add([trade_record(2)], now=0.0)
    assert buffer.due(0.0)


def test_a_batch_is_due_when_its_oldest_record_reaches_the_age_bound():
    buffer = BatchBuffer(TOPICS, max_records=1000, max_age_s=0.05)
    assert buffer.time_left(0.0) is None and not buffer.due(0.0)
    buffer.add([trade_record(0)], now=1.0)
    buffer.add([trade_record(1)], now=1.04)
    assert buffer.time_left(1.04) == pytest.approx(0.01)
    assert not buffer.due(1.049) and buffer.due(1.05)


def test_take_keeps_bus_order_and_leaves_the_excess_buffered():
    buffer = BatchBuffer(TOPICS, max_records=2, max_age_s=1.0)
    buffer.add([trade_record(i) for i in range(5)], now=0.0)
    batch = buffer.take()
    assert [r.offset for r in batch.rows["trades"]] == [0, 1]
    assert batch.offsets == {TopicPartition(TOPICS.trades, 0): 2}
    assert len(buffer) == 3 and buffer.due(0.0)
    assert buffer.clear() == 3 and len(buffer) == 0 and buffer.time_left(5.0) is None


def test_routing_covers_every_offset_whatever_happens_to_the_record():
    quote_on_trades = BusRecord(TOPICS.trades, 1, 7, b"A",
                                Quote(symbol="A", bid=1.0, bid_size=1, ask=None, ask_size=None, ts_ns=1, seq=9))
    records = [
        trade_record(5, partition=1),
        PoisonRecord(TOPICS.trades, 1, 6, b"A", b"\x01junk", "bad"),
        quote_on_trades,
        BusRecord(TOPICS.status, 0, 3, b"s", Heartbeat(ts_ns=1)),
        trade_record(8, partition=1),
    ]
    batch = route(records, TOPICS)
    assert [r.offset for r in batch.rows["trades"]] == [5, 8]
    assert batch.row_count == 2 and batch.skipped == 1
    assert [d.offset for d in batch.dead_letters] == [6, 7]
    misrouted = batch.dead_letters[1]
    assert misrouted.reason.startswith("misrouted") and decode(misrouted.payload) == quote_on_trades.event
    assert batch.offsets == {TopicPartition(TOPICS.trades, 1): 9, TopicPartition(TOPICS.status, 0): 4}


def test_insert_runs_stop_where_the_time_bucket_changes_so_each_insert_is_one_part():
    day_end = 20_000 * 86_400 * 10**9 - 1  # a midnight UTC, which is also a 15-minute boundary
    records = [trade_record(0, ts_ns=day_end - 5), trade_record(1, ts_ns=day_end),
               trade_record(2, ts_ns=day_end + 1), trade_record(3, ts_ns=day_end - 2)]
    assert _leading_run(records) == 2
    assert _leading_run(records[2:]) == 1
    assert _leading_run([trade_record(i, ts_ns=i * (_BUCKET_NS // 10)) for i in range(10)]) == 10

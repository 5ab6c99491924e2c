"""The writer's pure parts: batches close on size or age, routing covers every record's offset,
inserts split into runs that each land in one table partition, values out of their column's range
are named, and copies of an event are dropped within the bounds of the recent-key cache."""

from __future__ import annotations

import msgspec
import pytest

from bus.base import BusRecord, PoisonRecord, TopicPartition
from bus.codec import decode
from bus.topics import TopicSet
from events import Heartbeat, Quote, Trade
from storage.batching import BatchBuffer, InsertBatch, route
from storage.dedup import DuplicateFilter, RecentKeys, StoredTail, identities
from storage.inserter import _BUCKET_NS, _leading_run
from storage.rows import identity_of, out_of_range, stored_identity, to_batches

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


def test_values_a_column_cannot_hold_are_named_with_the_row_and_the_reason():
    good = Trade(symbol="A", price=1.5, size=2**63 - 1, ts_ns=-(2**63), market_center=2**31 - 1, source="s", seq=2**64 - 1)
    bad_size = msgspec.structs.replace(good, size=2**63)
    bad_center = msgspec.structs.replace(good, market_center=2**31)
    nan_price = msgspec.structs.replace(good, price=float("nan"))
    batch = to_batches([good, bad_size, good, bad_center, nan_price], stored_ns=1)["trades"]
    assert out_of_range(batch) == {
        1: "trades.size = 9223372036854775808 does not fit its column type Int64",
        3: "trades.market_center = 2147483648 does not fit its column type Int32",
        4: "trades.price = nan does not fit its column type Float64 (finite)",
    }
    assert out_of_range(to_batches([good] * 3, stored_ns=1)["trades"]) == {}


def test_missing_quote_sides_are_in_range_and_infinite_ones_are_not():
    quote = Quote(symbol="A", bid=None, bid_size=None, ask=1.0, ask_size=5, ts_ns=1, seq=1)
    infinite = msgspec.structs.replace(quote, ask=float("-inf"))
    batch = to_batches([quote, infinite, quote], stored_ns=1)["quotes"]
    assert out_of_range(batch) == {1: "quotes.ask = -inf does not fit its column type Nullable(Float64) (finite)"}


def routed(*offsets_and_events: tuple[int, int, Trade], topic: str = TOPICS.trades) -> InsertBatch:
    return route([BusRecord(topic, p, o, b"A", e) for p, o, e in offsets_and_events], TOPICS)


TABLE_OF_TOPIC = {topic: TOPICS.table_for_topic(topic) for topic in TOPICS.event_topics}


def test_a_copy_of_an_event_is_dropped_in_its_batch_and_in_later_batches_of_its_partition():
    duplicates = DuplicateFilter(capacity=100)
    duplicates.load([TopicPartition(TOPICS.quotes, 0)], {}, TABLE_OF_TOPIC)
    a, b, c = (Quote(symbol="A", bid=1.0, bid_size=1, ask=2.0, ask_size=1, ts_ns=1, source="s", seq=seq)
               for seq in (1, 2, 3))
    first = routed((0, 10, a), (0, 11, b), (0, 12, a), topic=TOPICS.quotes)
    assert duplicates.drop_duplicates(first) == 1
    assert [r.offset for r in first.rows["quotes"]] == [10, 11]  # same content, other seq: a real repeated quote
    assert first.offsets == {TopicPartition(TOPICS.quotes, 0): 13}  # the commit still moves past the copy
    later = routed((0, 13, msgspec.structs.replace(b, recv_ns=99)), (0, 14, c), topic=TOPICS.quotes)
    assert duplicates.drop_duplicates(later) == 1 and [r.offset for r in later.rows["quotes"]] == [14]
    assert duplicates.duplicates == 2


def test_a_trade_is_dropped_by_content_whoever_delivered_it_and_prints_differing_in_total_volume_are_kept():
    duplicates = DuplicateFilter(capacity=100)
    duplicates.load([TopicPartition(TOPICS.trades, 0)], {}, TABLE_OF_TOPIC)
    print_ = Trade(symbol="A", price=1.0, size=5, ts_ns=1, total_volume=100, source="sim-a@1", seq=1)
    twin = msgspec.structs.replace(print_, total_volume=105, seq=2)  # same time, price and size: another print
    other_source = msgspec.structs.replace(print_, source="sim-b@1", seq=40)
    backfilled = msgspec.structs.replace(print_, source="sim-a@2", seq=7, backfilled=True)
    batch = routed((0, 1, print_), (0, 2, twin), (0, 3, other_source))
    assert duplicates.drop_duplicates(batch) == 1
    assert [r.event for r in batch.rows["trades"]] == [print_, twin]
    later = routed((0, 4, backfilled))
    assert duplicates.drop_duplicates(later) == 0 and [r.event for _, r in later.unchecked] == [backfilled]
    assert duplicates.drop_stored(later, {"trades": {identity_of("trades", print_)}}) == 1  # storage has it
    assert later.rows["trades"] == []


def test_a_backfilled_trade_remembered_but_missing_from_storage_is_inserted_again():
    """A backfill comes because storage lacks the trade (a row deleted, or dead-lettered after its key was
    remembered): the writer's memory must not drop it; storage decides. A copy within one batch stays dropped."""
    duplicates = DuplicateFilter(capacity=100)
    duplicates.load([TopicPartition(TOPICS.trades, 0)], {}, TABLE_OF_TOPIC)
    lost = Trade(symbol="A", price=1.0, size=5, ts_ns=1, total_volume=100, source="sim-a@1", seq=1)
    assert duplicates.drop_duplicates(routed((0, 1, lost))) == 0
    recovered = msgspec.structs.replace(lost, source="sim-a@2", seq=1, backfilled=True)
    live_again = msgspec.structs.replace(lost, seq=9)
    batch = routed((0, 2, recovered), (0, 3, live_again), (0, 4, recovered))
    assert duplicates.drop_duplicates(batch) == 2  # the live copy (not a backfill) and the second recovery
    assert [r.offset for _, r in batch.unchecked] == [2]
    assert duplicates.drop_stored(batch, {"trades": set()}) == 0
    assert [r.offset for r in batch.rows["trades"]] == [2]
    fresh = Trade(symbol="A", price=2.0, size=1, ts_ns=2, total_volume=101, source="sim-a@2", seq=2, backfilled=True)
    same_batch = routed((0, 5, fresh), (0, 6, msgspec.structs.replace(fresh, seq=3)))
    assert duplicates.drop_duplicates(same_batch) == 1 and [r.offset for r in same_batch.rows["trades"]] == [5]


def test_keys_loaded_from_storage_catch_a_copy_after_a_restart():
    trade = Trade(symbol="A", price=1.5, size=3, ts_ns=1, source="sim@1", seq=7)
    quote = Quote(symbol="A", bid=1.0, bid_size=1, ask=2.0, ask_size=1, ts_ns=1, source="sim@1", seq=8)
    duplicates = DuplicateFilter(capacity=100)
    trades, quotes = TopicPartition(TOPICS.trades, 1), TopicPartition(TOPICS.quotes, 1)
    duplicates.load([trades, quotes], {  # as chDB returns them: 64-bit integers as text
        trades: StoredTail([stored_identity("trades", ("A", "1", "-1", 1.5, "3"))]),
        quotes: StoredTail([stored_identity("quotes", ("sim@1", "8"))])}, TABLE_OF_TOPIC)
    batch = route([BusRecord(TOPICS.trades, 1, 50, b"A", trade), BusRecord(TOPICS.quotes, 1, 9, b"A", quote)], TOPICS)
    assert duplicates.drop_duplicates(batch) == 2 and batch.rows == {"trades": [], "quotes": []}
    assert identities("trades", [trade]) == [identity_of("trades", trade)] == [("A", 1, -1, 1.5, 3)]
    assert identities("quotes", [quote]) == [("sim@1", 8)]


def test_a_new_trade_no_newer_than_a_forgotten_stored_row_is_checked_against_storage_and_a_later_one_is_not():
    duplicates = DuplicateFilter(capacity=2)
    tp = TopicPartition(TOPICS.trades, 0)
    duplicates.load([tp], {tp: StoredTail(horizon=500)}, TABLE_OF_TOPIC)  # storage holds rows before the window
    old, stored_copy, live = (Trade(symbol="A", price=1.0, size=1, ts_ns=ts, source="s", seq=ts)
                              for ts in (400, 500, 501))
    batch = routed((0, 1, old), (0, 2, stored_copy), (0, 3, live))
    assert duplicates.drop_duplicates(batch) == 0
    assert [record.event for _, record in batch.unchecked] == [old, stored_copy]
    assert duplicates.drop_stored(batch, {"trades": {identity_of("trades", stored_copy)}}) == 1
    assert [r.event for r in batch.rows["trades"]] == [old, live] and batch.unchecked == []
    assert duplicates.duplicates == 1


def test_forgetting_a_trade_moves_the_horizon_so_its_copy_is_checked_against_storage():
    keys = RecentKeys(capacity=1, time_index=1)
    assert keys.admit(("A", 10)) and keys.admit(("A", 20))
    keys.trim()
    assert keys.horizon == 10 and keys.admit(("A", 10))  # forgotten: only storage can say it is a copy
    duplicates = DuplicateFilter(capacity=1)
    tp = TopicPartition(TOPICS.trades, 0)
    duplicates.load([tp], {}, TABLE_OF_TOPIC)
    first, second = (Trade(symbol="A", price=1.0, size=1, ts_ns=ts, source="s", seq=ts) for ts in (10, 20))
    duplicates.drop_duplicates(routed((0, 1, first), (0, 2, second)))
    again = routed((0, 3, msgspec.structs.replace(first, source="t")))
    assert duplicates.drop_duplicates(again) == 0 and [r.event.source for _, r in again.unchecked] == ["t"]


def test_recent_keys_stay_within_their_capacity_and_count_what_they_forget():
    keys = RecentKeys(capacity=3)
    assert all(keys.admit(k) for k in "abcde")
    keys.trim()
    assert len(keys) == 3 and keys.evicted == 2
    assert not keys.admit("e") and keys.admit("a")  # the oldest were forgotten first
    duplicates = DuplicateFilter(capacity=2)
    duplicates.load([TopicPartition(TOPICS.quotes, 0)], {TopicPartition(TOPICS.quotes, 0): StoredTail(["x", "y", "z"])},
                    TABLE_OF_TOPIC)
    assert duplicates.evicted == 1
    duplicates.forget()
    assert duplicates.evicted == 1  # counted for good, not only while the partition is assigned


def message_records(offset: int, size: int, partition: int = 0) -> list[BusRecord]:
    """The records of one bus message holding ``size`` trades (bus/codec.py's batch format)."""
    return [BusRecord(TOPICS.trades, partition, offset, b"A",
                      Trade(symbol="A", price=1.0, size=1, ts_ns=0, source="s", seq=offset * 100 + index),
                      index, index == size - 1) for index in range(size)]


def test_a_batch_takes_the_records_of_a_multi_event_message_together_and_commits_past_it_only_then():
    buffer = BatchBuffer(TOPICS, max_records=4, max_age_s=10.0)
    buffer.add(message_records(7, 3) + message_records(8, 3) + message_records(9, 1), now=0.0)
    first = buffer.take()  # 4 wanted: the second message's three go with its first
    assert [(r.offset, r.index) for r in first.rows["trades"]] == [(7, 0), (7, 1), (7, 2), (8, 0), (8, 1), (8, 2)]
    assert first.offsets == {TopicPartition(TOPICS.trades, 0): 9}
    second = buffer.take()
    assert [(r.offset, r.index) for r in second.rows["trades"]] == [(9, 0)] and len(buffer) == 0


def test_a_row_set_aside_from_a_multi_event_message_names_its_place_in_it():
    quote = Quote(symbol="A", bid=1.0, bid_size=1, ask=2.0, ask_size=1, ts_ns=0, source="s", seq=1)
    records = message_records(5, 2)
    records.insert(1, BusRecord(TOPICS.trades, 0, 5, b"A", quote, 1, False))
    batch = route(records, TOPICS)
    [misrouted] = batch.dead_letters
    assert (misrouted.offset, misrouted.index) == (5, 1) and decode(misrouted.payload) == quote
    assert batch.offsets == {TopicPartition(TOPICS.trades, 0): 6}


def test_the_buffer_asks_the_bus_for_messages_by_how_many_events_a_message_has_held_lately():
    buffer = BatchBuffer(TOPICS, max_records=20_000, max_age_s=10.0, records_per_message=200)
    assert buffer.room() == 100  # the producers' setting, before anything was read
    for offset in range(10):  # single-event messages (an old producer, a quiet feed)
        buffer.add([trade_record(offset)], now=0.0)
    assert buffer.room() >= 2_500  # 100 at first: the estimate follows what the bus returns
    buffer.take()
    for offset in range(10, 20):  # then full batches: the ask shrinks at once, the buffer never balloons
        buffer.add(message_records(offset, 200), now=0.0)
    assert buffer.room() <= (20_000 - 2_000) / 150

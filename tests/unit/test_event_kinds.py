"""The registry of event kinds is the one place that names topic, table and columns of each kind."""

from __future__ import annotations

import typing

import pytest

from bus.topics import TopicSet, UnroutableEvent
from events import Depth, Event, FeedError, Heartbeat, HistoryBar, HistoryTick, Quote, SymbolNotFound, System, Trade
from events.kinds import FAMILY_TABLE, KINDS, TABLES, kind_of
from storage.rows import TABLE_COLUMNS, to_batches


def test_every_live_event_type_has_a_kind_and_history_replies_have_none():
    live = set(typing.get_args(Event)) - {HistoryTick, HistoryBar}
    assert {kind.type for kind in KINDS} == live
    assert kind_of(HistoryTick(symbol="A", ts_ns=1, price=1.0, size=1, total_volume=1, bid=None, ask=None,
                               tick_id=1, basis="C", market_center=None)) is None


SAMPLES = {
    Trade: Trade(symbol="A", price=1.0, size=1, ts_ns=1),
    Quote: Quote(symbol="A", bid=1.0, bid_size=1, ask=2.0, ask_size=1, ts_ns=1),
    Depth: Depth(symbol="A", action="add", side="bid"),
    System: System(name="STATS"),
    Heartbeat: Heartbeat(ts_ns=1),
    SymbolNotFound: SymbolNotFound(symbol="A"),
    FeedError: FeedError(message="x"),
}


def test_topics_and_tables_come_from_the_registry():
    topics = TopicSet("t")
    assert topics.event_topics == tuple(f"t.{family}" for family in FAMILY_TABLE)
    for kind in KINDS:
        assert topics.topic_for(SAMPLES[kind.type]) == f"t.{kind.family}"
        if kind.table is not None:
            assert topics.table_for_topic(f"t.{kind.family}") == kind.table.name
    with pytest.raises(UnroutableEvent):
        topics.topic_for(HistoryBar(symbol="A", ts_ns=1, open=1.0, high=1.0, low=1.0, close=1.0, volume=1))


def test_rows_follow_the_registry_columns_then_the_envelope():
    trade = Trade(symbol="A", price=1.5, size=3, ts_ns=10, total_volume=7, source="s", seq=1, recv_ns=2)
    status = System(name="STATS", fields=("x",), connected=True, ts_ns=11, source="s", seq=2, recv_ns=3)
    quote = Quote(symbol="A", bid=1.0, bid_size=None, ask=2.0, ask_size=1, ts_ns=12, source="s", seq=3, recv_ns=4)
    batches = to_batches([trade, status, quote], stored_ns=99)
    assert set(batches) == {"trades", "feed_status", "quotes"}
    for name, batch in batches.items():
        assert batch.columns == TABLE_COLUMNS[name] == (*TABLES[name].columns, "source", "seq", "recv_ns",
                                                        "stored_ns", "bus_partition", "bus_offset")
    trades = batches["trades"]
    assert trades.data[trades.columns.index("total_volume")] == [7]
    assert trades.data[trades.columns.index("market_center")] == [-1]  # absent optional integers are -1

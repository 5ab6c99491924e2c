"""Topic layout: one topic per event family, keyed by symbol, each topic tied to one table."""

from __future__ import annotations

import pytest

from bus.topics import TopicSet, UnroutableEvent, event_key
from events import Depth, FeedError, Heartbeat, HistoryBar, HistoryTick, Quote, SymbolNotFound, System, Trade

TOPICS = TopicSet("tickops")


def test_topic_names_follow_the_prefix():
    assert TOPICS.event_topics == ("tickops.trades", "tickops.quotes", "tickops.depth", "tickops.status")
    assert TOPICS.all_topics[-1] == TOPICS.deadletter == "tickops.deadletter"


@pytest.mark.parametrize(
    "event, topic",
    [
        (Trade(symbol="A", price=1.0, size=1, ts_ns=1), "tickops.trades"),
        (Quote(symbol="A", bid=1.0, bid_size=1, ask=None, ask_size=None, ts_ns=1), "tickops.quotes"),
        (Depth(symbol="A", action="clear", side=None), "tickops.depth"),
        (System(name="SERVER DISCONNECTED"), "tickops.status"),
        (Heartbeat(ts_ns=1), "tickops.status"),
        (SymbolNotFound(symbol="X"), "tickops.status"),
        (FeedError(message="m"), "tickops.status"),
    ],
)
def test_each_live_event_kind_has_one_topic(event, topic):
    assert TOPICS.topic_for(event) == topic


@pytest.mark.parametrize(
    "event",
    [
        HistoryTick(symbol="A", ts_ns=1, price=1.0, size=1, total_volume=1, bid=None, ask=None, tick_id=1, basis="C",
                    market_center=None),
        HistoryBar(symbol="A", ts_ns=1, open=1.0, high=1.0, low=1.0, close=1.0, volume=1),
    ],
)
def test_history_replies_are_not_published(event):
    with pytest.raises(UnroutableEvent, match="no bus topic"):
        TOPICS.topic_for(event)


def test_key_is_the_symbol_or_else_the_source_so_per_symbol_and_per_collector_order_holds():
    assert event_key(Trade(symbol="MSFT", price=1.0, size=1, ts_ns=1, source="c1")) == b"MSFT"
    assert event_key(System(name="S", source="c1")) == b"c1"


def test_each_event_topic_maps_to_its_table_and_foreign_topics_to_none():
    assert [TOPICS.table_for_topic(t) for t in TOPICS.event_topics] == ["trades", "quotes", "depth", "feed_status"]
    assert TOPICS.table_for_topic(TOPICS.deadletter) is None
    assert TopicSet("other").table_for_topic("tickops.trades") is None


@pytest.mark.parametrize("prefix", ["", "has space", "a/b"])
def test_invalid_prefixes_are_rejected_at_construction(prefix):
    with pytest.raises(ValueError, match="topic prefix"):
        TopicSet(prefix)

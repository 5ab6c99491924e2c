"""The pure parts of the catch-up after a (re)start (runtime/catchup.py): how far back it reaches,
when a symbol's range is fixed and due, and the gate that waits for the writer to store what
another process left on the bus."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bus.base import TopicPartition
from runtime.backfill import BACKFILL_MARGIN_NS, BACKFILL_SETTLE_NS
from runtime.catchup import BacklogGate, _Pending, catch_up_start_ns
from storage.writer import WriterProgress

S = 1_000_000_000
EASTERN = ZoneInfo("America/New_York")
TRADES = TopicPartition("p.trades", 0)
TRADES_1 = TopicPartition("p.trades", 1)
QUOTES = TopicPartition("p.quotes", 0)


def _eastern(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=EASTERN).timestamp()) * S


def test_by_default_a_catch_up_reaches_back_to_the_start_of_the_trading_day_at_the_feeds_clock():
    assert catch_up_start_ns(_eastern("2021-03-02 10:00"), 0) == _eastern("2021-03-02 04:00")
    assert catch_up_start_ns(_eastern("2021-03-02 19:59"), 0) == _eastern("2021-03-02 04:00")


def test_before_the_pre_market_or_on_a_closed_day_it_reaches_back_to_the_last_trading_days_start():
    assert catch_up_start_ns(_eastern("2021-03-02 03:00"), 0) == _eastern("2021-03-01 04:00")
    assert catch_up_start_ns(_eastern("2021-03-06 12:00"), 0) == _eastern("2021-03-05 04:00")  # a Saturday
    assert catch_up_start_ns(_eastern("2021-04-04 12:00"), 0) == _eastern("2021-04-01 04:00")  # Good Friday before


def test_a_configured_maximum_reaches_back_that_many_seconds_from_the_watch():
    assert catch_up_start_ns(_eastern("2021-03-02 10:00"), 600) == _eastern("2021-03-02 09:50")


def test_a_symbols_range_waits_for_the_feeds_clock_to_pass_the_watch_by_the_margin_then_settles():
    watched = 1_000 * S
    pending = _Pending("A", "restart", watched, feed_ns=None)
    assert not pending.due(None, watched + 60 * S)  # no heartbeat: the feed's "now" is unknown
    feed = 5_000 * S
    assert not pending.due(feed, watched + 1 * S)
    assert pending.feed_ns == feed  # the first heartbeat after the watch stands for it
    assert not pending.due(feed + BACKFILL_MARGIN_NS - 1, watched + 2 * S)
    assert not pending.due(feed + BACKFILL_MARGIN_NS, watched + 3 * S)  # the end is fixed here ...
    assert pending.end_ns == feed + BACKFILL_MARGIN_NS
    assert not pending.due(feed + 99 * S, watched + 3 * S + BACKFILL_SETTLE_NS - 1)  # ... and settles on our clock
    assert pending.due(feed + 99 * S, watched + 3 * S + BACKFILL_SETTLE_NS)
    assert pending.end_ns == feed + BACKFILL_MARGIN_NS


def test_a_feed_clock_that_stands_still_fixes_the_end_once_our_clock_passes_the_margin():
    watched, feed = 1_000 * S, 5_000 * S
    pending = _Pending("A", "restart", watched, feed_ns=feed)
    assert not pending.due(feed, watched + BACKFILL_MARGIN_NS - 1)
    assert not pending.due(feed, watched + BACKFILL_MARGIN_NS)
    assert pending.end_ns == feed
    assert pending.due(feed, watched + BACKFILL_MARGIN_NS + BACKFILL_SETTLE_NS)


def _progress(next_: dict, ends: dict, refreshes: int) -> WriterProgress:
    return WriterProgress(next_, ends, refreshes)


def test_the_gate_opens_once_the_writer_stored_the_trades_topic_up_to_its_end_seen_after_arming():
    gate = BacklogGate("p.trades")
    assert gate.reason("", None) == "the writer is not running yet"
    assert gate.reason("", _progress({TRADES: 10}, {TRADES: 50}, refreshes=7))  # armed at refresh 7
    assert gate.reason("", _progress({TRADES: 10}, {TRADES: 60}, refreshes=7))  # no refresh since
    assert gate.reason("", _progress({TRADES: 20, QUOTES: 0}, {TRADES: 80, QUOTES: 900}, refreshes=8)) \
        == "60 trades on the bus not stored yet"  # the target is 80; quotes do not count
    assert gate.reason("", _progress({TRADES: 79, QUOTES: 0}, {TRADES: 500, QUOTES: 900}, refreshes=9)) \
        == "1 trades on the bus not stored yet"  # later live trades do not move the target
    assert gate.reason("", _progress({TRADES: 80, QUOTES: 0}, {TRADES: 500, QUOTES: 900}, refreshes=9)) == ""


def test_the_gate_waits_until_every_owned_trades_partition_has_a_known_end():
    gate = BacklogGate("p.trades")
    gate.reason("", _progress({TRADES: 0, TRADES_1: 0}, {}, refreshes=1))
    assert gate.reason("", _progress({TRADES: 0, TRADES_1: 0}, {TRADES: 5}, refreshes=2))
    assert gate.reason("", _progress({TRADES: 5, TRADES_1: 0}, {TRADES: 5, TRADES_1: 3}, refreshes=3)) \
        == "3 trades on the bus not stored yet"
    # Partition 1 revoked (another group member stores it): not waited for.
    assert gate.reason("", _progress({TRADES: 5}, {TRADES: 9}, refreshes=4)) == ""


def test_a_spool_holding_events_rearms_the_gate_so_what_it_replays_is_stored_first():
    gate = BacklogGate("p.trades")
    gate.reason("", _progress({TRADES: 0}, {TRADES: 0}, refreshes=1))
    assert gate.reason("", _progress({TRADES: 0}, {TRADES: 0}, refreshes=2)) == ""
    assert gate.reason("12 events in the spool", _progress({TRADES: 0}, {TRADES: 0}, refreshes=3)) \
        == "12 events in the spool"
    assert gate.reason("", _progress({TRADES: 0}, {TRADES: 12}, refreshes=3))  # re-armed: needs a newer refresh
    assert gate.reason("", _progress({TRADES: 0}, {TRADES: 12}, refreshes=4)) == "12 trades on the bus not stored yet"
    assert gate.reason("", _progress({TRADES: 12}, {TRADES: 12}, refreshes=5)) == ""

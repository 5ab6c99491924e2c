"""An event the producer sent twice (a delivery timed out after the broker had it, the spool sent it again: same
source and seq, a later offset of the same partition) is stored once, over the real broker and each store:
``count()`` without FINAL and the 1-minute bars' volume count it once, whether the copy arrives in the same
batch, a later batch, or after a writer restart (when the writer must learn the stored keys from storage).

A trade is one print whoever delivered it: the same prints from two collectors and a backfill are stored
once, even when the copies come after the writer forgot the originals (then it asks storage), while the
same quote from two collectors is two quotes (quotes keep their per-source identity)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import pytest

from events import Event, Quote, Trade
from storage.bars import query_bars
from storage.migrate import migrate
from storage.writer import Writer
from tests.integration.pipeline import SYMBOLS, BASE_TS_NS, assert_stored_exactly_once, make_events, stored_count, stored_kinds
from tests.integration.test_writer_bars import MINUTE, expected_bars
from tests.integration.test_writer_poison import publish, settings, settle, start_writer  # noqa: F401 - fixture
from tests.integration.test_writer_table_faults import CheckedCommits
from tests.integration.trade_market import SYMBOLS as MARKET_SYMBOLS
from tests.integration.trade_market import delivered_as, market
from tests.integration.trade_market import expected_bars as market_bars

_CHECKED_FROM = BASE_TS_NS // MINUTE * MINUTE


def copies_of(events: Sequence[Event], every: int) -> list[Event]:
    """Every ``every``-th stored-kind event again, as the spool re-sends it: the same object, same source and seq."""
    return [event for event in stored_kinds(events)[::every]]


def interleaved(events: Sequence[Event], copies: Sequence[Event]) -> list[Event]:
    """``events`` with each copy published a few events after its original (close enough to share a batch)."""
    again = {id(copy) for copy in copies}
    out: list[Event] = []
    due: list[Event] = []
    for event in events:
        out.append(event)
        out.extend(due)
        due = [event] if id(event) in again else []
    return out + due


@pytest.mark.timeout(180)
@pytest.mark.parametrize("copy_arrives", ["in the same batch", "in a later batch", "after a writer restart"])
def test_an_event_sent_twice_is_stored_once_and_counted_once_in_the_bars(settings, store, copy_arrives):
    migrate(store)
    first, later = make_events(700), make_events(300, first_seq=701)
    copies = copies_of(first, every=9)
    unique = first + later
    writers = []

    def started() -> Writer:
        writer, consumer, _ = start_writer(settings, store, batch_rows=5000, batch_age_s=0.2)
        writers.append(writer)
        checked.append(consumer)
        writer.start()
        return writer

    checked: list[CheckedCommits] = []
    try:
        if copy_arrives == "in the same batch":
            publish(settings, interleaved(first, copies) + later)
            writer = started()
        else:
            publish(settings, first)
            writer = started()
            settle(writer, lambda: stored_count(store) >= len(stored_kinds(first)), "the originals to be stored")
            if copy_arrives == "after a writer restart":
                writer.stop()
                writer = started()
            publish(settings, [*copies, *later])
        settle(writer, lambda: stored_count(store) >= len(stored_kinds(unique)), "every event to be stored")
    finally:
        for running in writers:
            running.stop()

    assert_stored_exactly_once(store, unique)  # count() without FINAL included
    trades = [event for event in unique if isinstance(event, Trade)]
    last_minute = max(t.ts_ns for t in trades) // MINUTE * MINUTE + MINUTE
    for symbol in SYMBOLS:
        assert query_bars(store, symbol, _CHECKED_FROM, last_minute) == expected_bars(trades, symbol), symbol
    assert sum(w.stats().duplicates for w in writers) == len(copies)
    if copy_arrives == "after a writer restart":
        assert writers[0].stats().duplicates == 0 and writers[1].stats().stored == len(stored_kinds(later))
    assert all(consumer.violations == [] for consumer in checked)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("copies_arrive", ["with the originals", "after the writer forgot the originals",
                                           "after a writer restart"])
def test_a_trade_from_two_collectors_and_a_backfill_is_stored_once_and_counted_once_in_the_bars(
        settings, store, copies_arrive):
    migrate(store)
    prints = market()  # collector a's session; pairs of prints share time, price and size, not total volume
    from_b = delivered_as(prints[::2], "col-b@1")
    backfilled = delivered_as(prints[100:160], "col-a@2", backfilled=True)
    quote = Quote(symbol="AAPL", bid=1.0, bid_size=1, ask=2.0, ask_size=1, ts_ns=prints[0].ts_ns, source="col-a@1",
                  seq=10_000)
    quotes = [quote, msgspec.structs.replace(quote, source="col-b@1", seq=1)]  # heartbeat-stamped: both real
    dedup_keys = 20_000 if copies_arrive == "with the originals" else 40
    writers: list[Writer] = []
    checked: list[CheckedCommits] = []

    def started() -> Writer:
        writer, consumer, _ = start_writer(settings, store, batch_rows=100, dedup_keys=dedup_keys)
        writers.append(writer)
        checked.append(consumer)
        writer.start()
        return writer

    try:
        if copies_arrive == "with the originals":
            publish(settings, [event for pair in zip(prints, [*from_b, *backfilled]) for event in pair]
                    + prints[len(from_b) + len(backfilled):] + quotes)
            writer = started()
        else:
            publish(settings, prints)
            writer = started()
            settle(writer, lambda: stored_count(store) >= len(prints), "collector a's trades to be stored")
            if copies_arrive == "after a writer restart":
                writer.stop()
                writer = started()
            publish(settings, [*from_b, *backfilled, *quotes])
        settle(writer, lambda: stored_count(store) >= len(prints) + len(quotes), "everything to be stored")
    finally:
        for running in writers:
            running.stop()

    assert_stored_exactly_once(store, [*prints, *from_b, *backfilled, *quotes])  # trades by content
    assert store.query(f"SELECT count() FROM {store.table('trades')}")[0][0] == len(prints)
    assert store.query(f"SELECT count() FROM {store.table('quotes')}")[0][0] == 2
    for symbol in MARKET_SYMBOLS:
        assert query_bars(store, symbol, 0, 2**62) == market_bars(prints, symbol), symbol
    assert sum(w.stats().duplicates for w in writers) == len(from_b) + len(backfilled)
    assert all(consumer.violations == [] for consumer in checked)

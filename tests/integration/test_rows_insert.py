"""Every stored event kind maps onto its table's columns and inserts on both backends."""

from __future__ import annotations

import pytest

from events import Depth, Heartbeat, Quote, System, Trade
from storage.migrate import migrate
from storage.rows import TABLE_COLUMNS, to_batches

EVENTS = [
    Trade(symbol="AAPL", price=123.0, size=50, ts_ns=1_700_000_000_000_000_000, conditions=("40", "01"),
          market_center=11, tick_id=9, total_volume=100, basis="C", source="s", seq=1, recv_ns=5),
    Quote(symbol="AAPL", bid=122.9, bid_size=100, ask=None, ask_size=None, ts_ns=1_700_000_000_000_000_001,
          source="s", seq=2, recv_ns=6),
    Depth(symbol="@ESM19", action="add", side="bid", price=2938.25, size=65, order_id="12345678",
          ts_ns=1_700_000_000_000_000_002, source="s", seq=3, recv_ns=7),
    System(name="SERVER DISCONNECTED", connected=False, ts_ns=1_700_000_000_000_000_003, source="s", seq=4),
    Heartbeat(ts_ns=1_700_000_000_000_000_004, source="s", seq=5),
]


def test_events_group_into_one_batch_per_table_and_skip_unstored_kinds():
    batches = to_batches(EVENTS, stored_ns=99, positions=[(0, 10), (1, 11), (2, 12), (0, 13), (0, 14)])
    assert set(batches) == {"trades", "quotes", "depth", "feed_status"}
    trades = batches["trades"]
    row = dict(zip(trades.columns, (column[0] for column in trades.data)))
    assert row["conditions"] == ["40", "01"] and row["bus_offset"] == 10 and row["stored_ns"] == 99
    assert row["seq"] == 1 and row["market_center"] == 11
    assert all(len(b.data) == len(TABLE_COLUMNS[b.table]) for b in batches.values())


@pytest.mark.timeout(120)
def test_every_table_batch_inserts_on_both_backends(store):
    migrate(store)
    for batch in to_batches(EVENTS, stored_ns=99).values():
        assert store.insert_columns(batch.table, batch.columns, batch.data) == 1
    (ask,) = store.query(f"SELECT ask FROM {store.table('quotes')}")[0]
    assert ask is None
    (connected,) = store.query(f"SELECT connected FROM {store.table('feed_status')}")[0]
    assert connected == 0

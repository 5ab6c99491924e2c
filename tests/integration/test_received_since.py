"""Which symbols had events received since a moment, from storage: an attached dashboard's evidence that a
rollout stage's symbols flow (storage/received.py), on both backends."""

from __future__ import annotations

from events import Quote, Trade
from storage.migrate import migrate
from storage.received import received_since
from storage.rows import to_batches

NOW = 1_796_000_000_000_000_000
S = 1_000_000_000


def _insert(store, events) -> None:
    for batch in to_batches(events, stored_ns=NOW).values():
        store.insert_columns(batch.table, batch.columns, batch.data)


def test_only_events_received_live_since_the_moment_count_trades_and_quotes_alike(store):
    migrate(store)
    _insert(store, [
        Trade(symbol="NVDA", price=1.0, size=1, ts_ns=NOW, source="c1", seq=1, recv_ns=NOW + 2 * S),
        Quote(symbol="AMZN", bid=1.0, bid_size=1, ask=1.1, ask_size=1, ts_ns=NOW, source="c1", seq=2,
              recv_ns=NOW + 3 * S),
        Trade(symbol="META", price=1.0, size=1, ts_ns=NOW, source="c1", seq=3, recv_ns=NOW - S),  # before it
        Trade(symbol="TSLA", price=1.0, size=1, ts_ns=NOW, source="c1", seq=4, recv_ns=NOW + S),  # not asked
    ])
    assert received_since(store, ["NVDA", "AMZN", "META", "ZZZZ"], NOW) == {"NVDA": NOW + 2 * S, "AMZN": NOW + 3 * S}
    assert received_since(store, [], NOW) == {}

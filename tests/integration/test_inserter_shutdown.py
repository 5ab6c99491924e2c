"""A final flush during interpreter shutdown (atexit) still writes every table."""

from __future__ import annotations

from bus.base import BusRecord
from bus.deadletter import DeadLetterSink
from bus.latency import LatencyHistogram
from bus.memory import MemoryBus
from events import Quote, Trade
from storage.batching import InsertBatch
from storage.inserter import Inserter
from storage.migrate import migrate


def test_tables_are_written_inline_once_the_thread_pool_refuses_work(chdb_store):
    migrate(chdb_store)
    bus = MemoryBus()
    inserter = Inserter(chdb_store, DeadLetterSink(bus.producer(), "t.deadletter"), LatencyHistogram())
    inserter.close()  # what interpreter shutdown does to every executor before atexit runs
    trade = Trade(symbol="AAPL", price=1.0, size=1, ts_ns=1, source="s", seq=1, recv_ns=1)
    quote = Quote(symbol="AAPL", bid=1.0, bid_size=1, ask=1.1, ask_size=1, ts_ns=2, source="s", seq=2, recv_ns=2)
    batch = InsertBatch(
        rows={"trades": [BusRecord("t.trades", 0, 5, b"AAPL", trade)],
              "quotes": [BusRecord("t.quotes", 0, 6, b"AAPL", quote)]},
        dead_letters=[], offsets={},
    )
    inserter.write(batch)
    assert batch.stored == 2
    for table in ("trades", "quotes"):
        assert chdb_store.query(f"SELECT seq FROM {chdb_store.table(table)}") != []

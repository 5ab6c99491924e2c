"""1-minute bars (migration 2): trades stored by the writer, in many small batches, finalize to exact OHLCV
on ClickHouse 18.16 and on chDB."""

from __future__ import annotations

import pytest

from bus.factory import build_producer
from bus.memory import MemoryBus
from config import Settings
from events import Trade
from storage.bars import Bar, query_bars
from storage.migrate import migrate
from storage.writer import build_writer
from tests.integration.pipeline import wait_until

MINUTE = 60_000_000_000
START = 1_780_000_020 * 1_000_000_000  # a whole minute


def expected_bars(trades: list[Trade], symbol: str) -> list[Bar]:
    bars = []
    for minute in sorted({t.ts_ns // MINUTE * MINUTE for t in trades if t.symbol == symbol}):
        group = sorted((t for t in trades if t.symbol == symbol and t.ts_ns // MINUTE * MINUTE == minute),
                       key=lambda t: t.ts_ns)
        prices = [t.price for t in group]
        bars.append(Bar(symbol, minute, prices[0], max(prices), min(prices), prices[-1], sum(t.size for t in group),
                        len(group)))
    return bars


@pytest.mark.timeout(120)
def test_bars_from_trades_written_in_small_batches_finalize_to_exact_ohlcv(store, tmp_path):
    migrate(store)
    # Published out of time order within each minute: open/close follow ts_ns, not arrival.
    trades = [
        Trade(symbol=symbol, price=100.0 + ((i * 37) % 23) / 4, size=1 + i % 5,
              ts_ns=START + ((i * 7919) % 180) * 1_000_000_000, source="bars", seq=i)
        for i in range(180) for symbol in ("AAPL", "MSFT") if (i + len(symbol)) % 3
    ]
    settings = Settings(data_dir=tmp_path, kafka={"topic_prefix": "bars", "partitions": 2},
                        storage={"batch_rows": 7})  # many batches: many partial aggregate states
    bus = MemoryBus()
    producer = build_producer(settings, bus)
    producer.publish_many(trades)
    assert producer.flush(5)
    writer = build_writer(settings, bus, store)
    writer.start()
    try:
        wait_until(lambda: writer.stats().stored == len(trades), 60, "the trades to be stored")
    finally:
        writer.stop()
        producer.close()
    assert writer.stats().batches > 20
    for symbol in ("AAPL", "MSFT"):
        assert query_bars(store, symbol, START, START + 3 * MINUTE) == expected_bars(trades, symbol)
    assert query_bars(store, "AAPL", START + MINUTE, START + 2 * MINUTE) == expected_bars(trades, "AAPL")[1:2]
    assert query_bars(store, "NOPE'; DROP TABLE x --", START, START + 3 * MINUTE) == []

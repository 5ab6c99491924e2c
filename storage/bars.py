"""Read 1-minute OHLCV bars (migration 2): finalize the aggregate states of ``bars_1m``.

``bars_1m`` holds partial states, one row per (symbol, minute) per inserted batch until
merges combine them, so a read must GROUP BY and ``-Merge`` the states; this helper is
the one place that knows how. Works the same on ClickHouse 18.16 and chDB.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.store import Store, sql_string


@dataclass(frozen=True)
class Bar:
    symbol: str
    minute_ns: int  # bar start, UTC epoch ns
    open: float
    high: float
    low: float
    close: float
    volume: int
    trades: int


def query_bars(store: Store, symbol: str, start_ns: int, end_ns: int) -> list[Bar]:
    """Bars of ``symbol`` whose minute starts in [start_ns, end_ns), oldest first."""
    rows = store.query(
        f"""SELECT minute_ns, argMinMerge(open), maxMerge(high), minMerge(low), argMaxMerge(close),
       sumMerge(volume), countMerge(trades)
FROM {store.table('bars_1m')}
WHERE symbol = {sql_string(symbol)} AND minute_ns >= {int(start_ns)} AND minute_ns < {int(end_ns)}
GROUP BY minute_ns
ORDER BY minute_ns"""
    )
    return [
        Bar(symbol, int(minute), float(o), float(h), float(lo), float(c), int(volume), int(trades))
        for minute, o, h, lo, c, volume, trades in rows
    ]

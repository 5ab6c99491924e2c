"""Where each symbol's stored data ends: the point a catch-up after a (re)start fetches from.

A symbol's watermark is its last stored trade (time, and the day's cumulative volume
IQFeed reported with it). Only rows received before the watch that asks are counted
(``recv_ns < received_before_ns``): by the time a catch-up runs, this instance's own live
trades of the new watch are already stored, and they must not hide the gap before them.
Backfilled rows (``recv_ns`` 0) count as stored trades, not as received events.

Every function takes many symbols and asks one query per table, so a start with a
thousand symbols costs a handful of queries, not thousands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.store import Store, sql_string


@dataclass(frozen=True, slots=True)
class Watermark:
    """A symbol's last stored trade: exchange time (UTC ns) and the day's cumulative volume then."""

    ts_ns: int
    total_volume: int


def _symbols_in(symbols: Sequence[str]) -> str:
    return "(" + ", ".join(sql_string(s) for s in symbols) + ")"


def trade_watermarks(store: Store, symbols: Sequence[str], *, received_before_ns: int,
                     since_ns: int) -> dict[str, Watermark]:
    """The watermark of each symbol that has a stored trade at or after ``since_ns``; others are absent."""
    if not symbols:
        return {}
    rows = store.query(
        f"SELECT symbol, max(ts_ns), argMax(total_volume, ts_ns) FROM {store.table('trades')} "
        f"WHERE symbol IN {_symbols_in(symbols)} AND recv_ns < {int(received_before_ns)} "
        f"AND ts_ns >= {int(since_ns)} GROUP BY symbol"
    )
    return {symbol: Watermark(int(ts), int(volume)) for symbol, ts, volume in rows}


def last_received_events(store: Store, symbols: Sequence[str], *, received_before_ns: int,
                         since_ns: int) -> dict[str, int]:
    """Per symbol, the exchange time of its last stored trade or quote received live before
    ``received_before_ns`` (at or after ``since_ns``): where the stream that history cannot replay stopped."""
    if not symbols:
        return {}
    last: dict[str, int] = {}
    for table in ("trades", "quotes"):
        rows = store.query(
            f"SELECT symbol, max(ts_ns) FROM {store.table(table)} "
            f"WHERE symbol IN {_symbols_in(symbols)} AND recv_ns > 0 AND recv_ns < {int(received_before_ns)} "
            f"AND ts_ns >= {int(since_ns)} GROUP BY symbol"
        )
        for symbol, ts in rows:
            last[symbol] = max(last.get(symbol, int(ts)), int(ts))
    return last

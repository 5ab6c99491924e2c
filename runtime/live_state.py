"""What the dashboard shows as "live": the latest trade and quote per symbol and counts.

Updated on the ingest hot path, so an update is a few dict writes under one lock; the
dashboard reads a copied snapshot and never holds the lock while rendering.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from events import Depth, Event, Quote, Trade


@dataclass(frozen=True)
class SymbolSnapshot:
    symbol: str
    last_price: float | None = None
    last_size: int | None = None
    last_trade_ns: int | None = None
    bid: float | None = None
    bid_size: int | None = None
    ask: float | None = None
    ask_size: int | None = None
    trades: int = 0
    quotes: int = 0
    depth_updates: int = 0
    last_event_recv_ns: int | None = None


class _Latest:
    """One symbol's latest values, updated in place: a frozen snapshot rebuilt per event (the previous
    design) cost more than the rest of the ingest bookkeeping together."""

    __slots__ = ("last_price", "last_size", "last_trade_ns", "bid", "bid_size", "ask", "ask_size", "trades",
                 "quotes", "depth_updates", "last_event_recv_ns")

    def __init__(self) -> None:
        self.last_price: float | None = None
        self.last_size: int | None = None
        self.last_trade_ns: int | None = None
        self.bid: float | None = None
        self.bid_size: int | None = None
        self.ask: float | None = None
        self.ask_size: int | None = None
        self.trades = self.quotes = self.depth_updates = 0
        self.last_event_recv_ns: int | None = None

    def frozen(self, symbol: str) -> SymbolSnapshot:
        return SymbolSnapshot(symbol, self.last_price, self.last_size, self.last_trade_ns, self.bid, self.bid_size,
                              self.ask, self.ask_size, self.trades, self.quotes, self.depth_updates,
                              self.last_event_recv_ns)


class LiveState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._symbols: dict[str, _Latest] = {}

    def update(self, events: Iterable[Event]) -> None:
        symbols = self._symbols
        with self._lock:
            for event in events:
                kind = type(event)
                if kind is not Trade and kind is not Quote and kind is not Depth:
                    continue
                latest = symbols.get(event.symbol)  # type: ignore[union-attr]
                if latest is None:
                    latest = symbols[event.symbol] = _Latest()  # type: ignore[union-attr]
                latest.last_event_recv_ns = event.recv_ns
                if kind is Trade:
                    latest.last_price, latest.last_size, latest.last_trade_ns = (
                        event.price, event.size, event.ts_ns)  # type: ignore[union-attr]
                    latest.trades += 1
                elif kind is Quote:
                    latest.bid, latest.bid_size, latest.ask, latest.ask_size = (
                        event.bid, event.bid_size, event.ask, event.ask_size)  # type: ignore[union-attr]
                    latest.quotes += 1
                else:
                    latest.depth_updates += 1

    def snapshot(self) -> dict[str, SymbolSnapshot]:
        with self._lock:
            return {symbol: latest.frozen(symbol) for symbol, latest in self._symbols.items()}

    def forget(self, symbol: str) -> None:
        with self._lock:
            self._symbols.pop(symbol, None)

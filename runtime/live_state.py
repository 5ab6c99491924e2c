"""What the dashboard shows as "live": the latest trade and quote per symbol and counts.

Updated on the ingest hot path, so an update is a few dict writes under one lock; the
dashboard reads a copied snapshot and never holds the lock while rendering.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace

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


class LiveState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._symbols: dict[str, SymbolSnapshot] = {}

    def update(self, events: Iterable[Event]) -> None:
        with self._lock:
            for event in events:
                if isinstance(event, Trade):
                    current = self._symbols.get(event.symbol) or SymbolSnapshot(event.symbol)
                    self._symbols[event.symbol] = replace(
                        current, last_price=event.price, last_size=event.size, last_trade_ns=event.ts_ns,
                        trades=current.trades + 1, last_event_recv_ns=event.recv_ns,
                    )
                elif isinstance(event, Quote):
                    current = self._symbols.get(event.symbol) or SymbolSnapshot(event.symbol)
                    self._symbols[event.symbol] = replace(
                        current, bid=event.bid, bid_size=event.bid_size, ask=event.ask, ask_size=event.ask_size,
                        quotes=current.quotes + 1, last_event_recv_ns=event.recv_ns,
                    )
                elif isinstance(event, Depth):
                    current = self._symbols.get(event.symbol) or SymbolSnapshot(event.symbol)
                    self._symbols[event.symbol] = replace(
                        current, depth_updates=current.depth_updates + 1, last_event_recv_ns=event.recv_ns
                    )

    def snapshot(self) -> dict[str, SymbolSnapshot]:
        with self._lock:
            return dict(self._symbols)

    def forget(self, symbol: str) -> None:
        with self._lock:
            self._symbols.pop(symbol, None)

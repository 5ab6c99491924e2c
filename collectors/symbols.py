"""The desired symbol list, persisted so a restart or a second engine sees the same watches.

Operators start and stop symbols from the dashboard; the engine reconciles the feed
against this list. Symbols are validated (``validate_symbol``) before anything is
stored, because a symbol ends up on an IQFeed command line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from collectors.iqfeed.protocol import validate_symbol
from storage.store import Store

@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    level1: bool
    depth: bool
    silent_after_s: float  # 0 = the global default
    updated_ns: int
    updated_by: str


class SymbolRegistry:
    def __init__(self, store: Store) -> None:
        self._store = store

    def set(self, symbol: str, *, level1: bool, depth: bool = False, silent_after_s: float = 0.0,
            by: str = "system") -> SymbolSpec:
        spec = SymbolSpec(validate_symbol(symbol.strip()), level1, depth, silent_after_s, time.time_ns(), by)
        self._store.insert_columns(
            "symbols",
            ["symbol", "level1", "depth", "silent_after_s", "updated_ns", "updated_by"],
            [[spec.symbol], [int(spec.level1)], [int(spec.depth)], [spec.silent_after_s], [spec.updated_ns], [by]],
        )
        return spec

    def all(self) -> list[SymbolSpec]:
        rows = self._store.query(
            "SELECT symbol, argMax(level1, updated_ns), argMax(depth, updated_ns), "
            "argMax(silent_after_s, updated_ns), max(updated_ns), argMax(updated_by, updated_ns) "
            f"FROM {self._store.table('symbols')} GROUP BY symbol ORDER BY symbol"
        )
        return [SymbolSpec(r[0], bool(r[1]), bool(r[2]), float(r[3]), int(r[4]), r[5]) for r in rows]

    def seed(self, symbols: list[str], depth_symbols: list[str]) -> None:
        """First start only: take the configured symbols when nothing is stored yet."""
        if self.all():
            return
        for symbol in dict.fromkeys(symbols + depth_symbols):
            self.set(symbol, level1=symbol in symbols, depth=symbol in depth_symbols, by="config")

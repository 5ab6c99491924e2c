"""The desired symbol list, persisted so a restart or a second engine sees the same watches.

Operators start and stop symbols from the dashboard; the engine reconciles the feed
against this list. Symbols are validated (``validate_symbol``) before anything is
stored, because a symbol ends up on an IQFeed command line.

The list lives in memory and storage is its durable copy, so the feed and the alert
rules never wait for storage: changes go through the write-behind queue, and
:meth:`SymbolRegistry.refresh` takes in what storage holds (another process's changes)
whenever storage answers. Per symbol the latest ``updated_ns`` wins.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from collectors.iqfeed.protocol import validate_symbol
from storage.store import Store
from storage.write_behind import WriteBehind

_COLUMNS = ("symbol", "level1", "depth", "silent_after_s", "updated_ns", "updated_by", "critical")


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    level1: bool
    depth: bool
    silent_after_s: float  # 0 = the global default
    updated_ns: int  # 0: configured, not stored yet (storage has not answered since the start)
    updated_by: str
    # Watched first when an instance's share of a fleet exceeds its watch limit (runtime/capacity.py).
    # Stored since migration 9 (rows written before read False), so a fleet seeded from storage keeps it.
    critical: bool = False


class SymbolRegistry:
    def __init__(self, store: Store, writes: WriteBehind | None = None) -> None:
        self._store = store
        self._writes = writes or WriteBehind(store)
        self._lock = threading.Lock()
        self._specs: dict[str, SymbolSpec] = {}
        self._seeding = False  # configured symbols are waiting for storage to say whether this is a first start

    def set(self, symbol: str, *, level1: bool, depth: bool = False, silent_after_s: float = 0.0,
            by: str = "system", critical: bool = False) -> SymbolSpec:
        spec = SymbolSpec(validate_symbol(symbol.strip()), level1, depth, silent_after_s, time.time_ns(), by,
                          critical)
        with self._lock:
            self._specs[spec.symbol] = spec
        self._save(spec)
        return spec

    def _save(self, spec: SymbolSpec) -> None:
        self._writes.insert("symbols", _COLUMNS, [[spec.symbol], [int(spec.level1)], [int(spec.depth)],
                                                  [spec.silent_after_s], [spec.updated_ns], [spec.updated_by],
                                                  [int(spec.critical)]])

    def all(self) -> list[SymbolSpec]:
        """The desired state, from memory (never waits for storage)."""
        with self._lock:
            return sorted(self._specs.values(), key=lambda spec: spec.symbol)

    def refresh(self) -> None:
        """Take in the stored state; raises :class:`storage.store.StorageError` (memory stays as it was)."""
        rows = self._store.query(
            "SELECT symbol, argMax(level1, updated_ns), argMax(depth, updated_ns), "
            "argMax(silent_after_s, updated_ns), max(updated_ns), argMax(updated_by, updated_ns), "
            f"argMax(critical, updated_ns) FROM {self._store.table('symbols')} GROUP BY symbol ORDER BY symbol"
        )
        stored = [SymbolSpec(r[0], bool(r[1]), bool(r[2]), float(r[3]), int(r[4]), r[5], bool(r[6])) for r in rows]
        with self._lock:
            for spec in stored:
                current = self._specs.get(spec.symbol)
                if current is None or spec.updated_ns >= current.updated_ns:
                    self._specs[spec.symbol] = spec
            configured = [spec for spec in self._specs.values() if spec.updated_ns == 0]
            first_start = self._seeding and not stored
            self._seeding = False
            if not first_start:  # storage already had a list: configuration seeds only a first start
                for spec in configured:
                    del self._specs[spec.symbol]
        if first_start:
            for spec in configured:
                self.set(spec.symbol, level1=spec.level1, depth=spec.depth, by="config")

    def seed(self, symbols: list[str], depth_symbols: list[str]) -> None:
        """First start only: the configured symbols, when storage holds none yet.

        Until storage has answered they are served from memory (``updated_ns`` 0, so anything
        stored wins); the next :meth:`refresh` stores them if storage is empty, else drops them.
        """
        with self._lock:
            self._seeding = True
            if self._specs:
                return
            for symbol in dict.fromkeys(symbols + depth_symbols):
                name = validate_symbol(symbol.strip())
                self._specs[name] = SymbolSpec(name, symbol in symbols, symbol in depth_symbols, 0.0, 0, "config")

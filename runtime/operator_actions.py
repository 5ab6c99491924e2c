"""What an operator does from the dashboard, the same whether the engine runs in the dashboard's process
or the dashboard is attached to collectors that run apart (runtime/attached.py).

Each action changes the desired state (symbols) or an alert in memory, writes it through to storage
(where other processes take it in) and appends it to the audit log.
"""

from __future__ import annotations

import time

from alerts.lifecycle import Alert, AlertBook
from alerts.notify import Notifier
from alerts.store import AlertStore
from collectors.iqfeed.protocol import SymbolLimitReached, validate_symbol
from runtime.symbols import SymbolRegistry, SymbolSpec


def start_symbol(symbols: SymbolRegistry, audit: AlertStore, symbol: str, *, depth: bool, by: str,
                 watch_limit: int) -> SymbolSpec:
    """Start watching ``symbol``; InvalidSymbol or SymbolLimitReached (nothing stored) when it cannot be."""
    symbol = validate_symbol(symbol.strip())
    started = {s.symbol for s in symbols.all() if s.level1}
    if symbol not in started and len(started) >= watch_limit:
        raise SymbolLimitReached(
            f"cannot start {symbol}: {len(started)} symbols are started and feed.watch_limit is {watch_limit}; "
            "stop one first, or raise the limit (and the IQFeed account's)")
    spec = symbols.set(symbol, level1=True, depth=depth, by=by)
    audit.audit(by, "start_symbol", spec.symbol, f"depth={depth}")
    return spec


def stop_symbol(symbols: SymbolRegistry, audit: AlertStore, symbol: str, *, by: str) -> SymbolSpec:
    spec = symbols.set(symbol, level1=False, depth=False, by=by)
    audit.audit(by, "stop_symbol", spec.symbol)
    return spec


def acknowledge(book: AlertBook, store: AlertStore, notifier: Notifier | None, rule: str, subject: str, *,
                by: str, note: str = "") -> Alert:
    """AlertNotFound when no such alert is firing (it may have resolved meanwhile)."""
    alert = book.acknowledge(rule, subject, by, note, time.time_ns())
    store.save([alert])
    store.audit(by, "acknowledge", f"{rule}/{subject}", note)
    if notifier is not None:
        notifier.notify([alert])
    return alert

"""What an operator does from the dashboard, the same whether the engine runs in the dashboard's process
or the dashboard is attached to collectors that run apart (runtime/attached.py).

Each action changes the desired state (symbols) or an alert in memory, writes it through to storage
(where other processes take it in) and appends it to the audit log. In a collector fleet the desired
state's source of truth is the assignment topic (runtime/fleet.py): a symbol change goes there first.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from alerts.lifecycle import Alert, AlertBook
from alerts.notify import Notifier
from alerts.store import AlertStore
from collectors.iqfeed.protocol import SymbolLimitReached, validate_symbol
from runtime.symbols import SymbolRegistry, SymbolSpec

if TYPE_CHECKING:
    from runtime.fleet import FleetControl


def start_symbol(symbols: SymbolRegistry, audit: AlertStore, symbol: str, *, depth: bool, by: str,
                 watch_limit: int, critical: bool = False, fleet: FleetControl | None = None) -> SymbolSpec:
    """Start watching ``symbol``; InvalidSymbol or SymbolLimitReached (nothing stored) when it cannot be.

    In a fleet (docs/HA.md) the change goes first to the assignment topic, the desired set's source of
    truth (BusUnavailable when Kafka does not take it: nothing changed), and the limit is the fleet's:
    the responsive collectors' watch limits added up (not judged before a status was read; the
    collectors then report what they cannot watch).
    """
    symbol = validate_symbol(symbol.strip())
    if fleet is None:
        started = {s.symbol for s in symbols.all() if s.level1}
        limit: int | None = watch_limit
        whose = "feed.watch_limit is"
    else:
        started = {s.symbol for s in fleet.desired() if s.level1}
        live = fleet.view().live
        limit = sum(s.watch_limit for s in live) if live else None
        whose = f"the {len(live)} responsive collectors' watch limits add up to"
    if limit is not None and symbol not in started and len(started) >= limit:
        raise SymbolLimitReached(
            f"cannot start {symbol}: {len(started)} symbols are started and {whose} {limit}; "
            "stop one first, or raise the limit (and the IQFeed account's)"
            + (", or add a collector" if fleet is not None else ""))
    if fleet is not None:
        fleet.put(SymbolSpec(symbol, True, depth, 0.0, time.time_ns(), by, critical))
    spec = symbols.set(symbol, level1=True, depth=depth, critical=critical, by=by)
    audit.audit(by, "start_symbol", spec.symbol, f"depth={depth}" + (", critical" if critical else ""))
    return spec


def stop_symbol(symbols: SymbolRegistry, audit: AlertStore, symbol: str, *, by: str,
                fleet: FleetControl | None = None) -> SymbolSpec:
    if fleet is not None:  # the source of truth first: a stop Kafka did not take changes nothing
        fleet.put(SymbolSpec(validate_symbol(symbol.strip()), False, False, 0.0, time.time_ns(), by))
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

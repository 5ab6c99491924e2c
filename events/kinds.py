"""The registry of event kinds: which bus topic carries an event type, which table stores it, in which
columns. The one place they are named.

The producer routes by it (:mod:`bus.topics`), the writer and restore build rows by it
(:mod:`storage.rows`), reconciliation and the tests enumerate tables by it, and after the
migrations the storage checks that every table named here has every column named here
(:func:`storage.migrate.check_tables`), so a kind added here without its DDL fails at start,
not at the first insert. Adding a kind: its type in :mod:`events`, its parser, an entry here,
and a migration creating its table.

Row functions return the event's own columns, in :attr:`TableSpec.columns` order; storage
appends the envelope (who received it, when, where on the bus). Absent optional integers are
stored as -1 and absent optional texts as "", as the tables declare them.

Each table also names its identity, what makes two rows the same event: a trade by content,
the rest by (source, seq) (:attr:`TableSpec.identity`; docs/ARCHITECTURE.md, "Identity of an event").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from events import Depth, Event, FeedError, Heartbeat, Quote, SymbolNotFound, System, Trade


_RECEIVED = ("source", "seq")
"""The identity of an event by who received it: one collector session's sequence number."""


@dataclass(frozen=True)
class TableSpec:
    """A table that stores events: its event columns (before the envelope), how a row is made, and what
    makes two rows the same event.

    ``identity`` names the columns of that key and ``identity_of`` computes it from an event, with values
    as the row stores them (a missing total volume is -1), so a key made from an event equals the key
    read back from storage. It is the ReplacingMergeTree sorting key, the writer's duplicate filter,
    and what reconciliation, restore and the delivery tests compare (docs/ARCHITECTURE.md, "Identity
    of an event").
    """

    name: str
    columns: tuple[str, ...]
    row: Callable[[Any], tuple[Any, ...]]
    has_symbol: bool = True
    identity: tuple[str, ...] = _RECEIVED
    identity_of: Callable[[Any], tuple[Any, ...]] = attrgetter(*_RECEIVED)

    @property
    def by_content(self) -> bool:
        """Whether a row is identified by what it is (any collector, a backfill may deliver it), not by
        who received it."""
        return "source" not in self.identity


@dataclass(frozen=True)
class EventKind:
    """An event type on the bus: the topic family (``<prefix>.<family>``) and the table, if stored."""

    type: type
    family: str
    table: TableSpec | None


def _trade_row(e: Trade) -> tuple[Any, ...]:
    return (
        e.symbol, e.ts_ns, e.price, e.size, list(e.conditions),
        -1 if e.market_center is None else e.market_center,
        -1 if e.tick_id is None else e.tick_id,
        -1 if e.total_volume is None else e.total_volume,
        e.basis, int(e.backfilled),
    )


TRADE_IDENTITY = ("symbol", "ts_ns", "total_volume", "price", "size")
"""A trade is one print: the day's cumulative volume tells apart prints sharing time, price and size
(247 of the 32,627 in the shared 2021 tick sample)."""


def _trade_identity(e: Trade) -> tuple[Any, ...]:
    return (e.symbol, e.ts_ns, -1 if e.total_volume is None else e.total_volume, e.price, e.size)


def _quote_row(e: Quote) -> tuple[Any, ...]:
    return (e.symbol, e.ts_ns, e.bid, e.bid_size, e.ask, e.ask_size)


def _depth_row(e: Depth) -> tuple[Any, ...]:
    return (e.symbol, e.ts_ns, e.action, e.side or "", e.price, e.size, e.order_id, e.mmid, e.order_count)


def _status_row(e: System) -> tuple[Any, ...]:
    return (e.ts_ns, e.name, list(e.fields), -1 if e.connected is None else int(e.connected))


TRADES = TableSpec("trades", ("symbol", "ts_ns", "price", "size", "conditions", "market_center", "tick_id",
                              "total_volume", "basis", "backfilled"), _trade_row,
                   identity=TRADE_IDENTITY, identity_of=_trade_identity)
QUOTES = TableSpec("quotes", ("symbol", "ts_ns", "bid", "bid_size", "ask", "ask_size"), _quote_row)
DEPTH = TableSpec("depth", ("symbol", "ts_ns", "action", "side", "price", "size", "order_id", "mmid",
                            "order_count"), _depth_row)
FEED_STATUS = TableSpec("feed_status", ("ts_ns", "name", "fields", "connected"), _status_row, has_symbol=False)

KINDS: tuple[EventKind, ...] = (
    EventKind(Trade, "trades", TRADES),
    EventKind(Quote, "quotes", QUOTES),
    EventKind(Depth, "depth", DEPTH),
    EventKind(System, "status", FEED_STATUS),
    # Published so that bus consumers see the feed's pulse and its complaints; not stored.
    EventKind(Heartbeat, "status", None),
    EventKind(SymbolNotFound, "status", None),
    EventKind(FeedError, "status", None),
)

BY_TYPE: dict[type, EventKind] = {kind.type: kind for kind in KINDS}
TABLES: dict[str, TableSpec] = {kind.table.name: kind.table for kind in KINDS if kind.table is not None}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(kind.family for kind in KINDS))
FAMILY_TABLE: dict[str, str] = {kind.family: kind.table.name for kind in KINDS if kind.table is not None}
"""Each family's table: one per family, which lets the writer resume a partition from its table."""


def kind_of(event: Event) -> EventKind | None:
    """The registry entry of ``event``'s type; None for replies that never go on the bus (history rows)."""
    return BY_TYPE.get(type(event))


def _check() -> None:
    """A family stored in two tables would break the writer's per-table resume: refuse it at import."""
    for family in FAMILIES:
        tables = {kind.table.name for kind in KINDS if kind.family == family and kind.table is not None}
        if len(tables) > 1:
            raise RuntimeError(f"event family {family!r} is stored in several tables {sorted(tables)}: one only")


_check()

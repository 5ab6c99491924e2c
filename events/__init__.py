"""Typed market-data events: the one vocabulary shared by feed, bus, storage and dashboard.

Every event is a msgspec Struct tagged by ``kind`` so a union of them serialises to
msgpack (Kafka) or JSON (the decode CLI) without hand-written converters. The envelope
fields ``source``, ``seq`` and ``recv_ns`` are stamped by the collector that received
the line; with ``symbol`` they identify an event exactly, which is what lets the
pipeline count losses and duplicates.
"""

from __future__ import annotations

from typing import Literal, Union

import msgspec

SCHEMA_VERSION = 1

Side = Literal["bid", "ask"]
DepthAction = Literal["add", "update", "delete", "summary", "clear"]


class _Event(msgspec.Struct, kw_only=True, tag_field="kind", omit_defaults=False):
    """Envelope shared by every event; defaults mean 'not stamped yet'."""

    source: str = ""
    seq: int = 0
    recv_ns: int = 0


class Trade(_Event, tag="trade"):
    symbol: str
    price: float
    size: int
    ts_ns: int
    conditions: tuple[str, ...] = ()
    market_center: int | None = None
    tick_id: int | None = None
    total_volume: int | None = None
    basis: str = ""  # C last qualified, E extended hours, O other
    backfilled: bool = False


class Quote(_Event, tag="quote"):
    symbol: str
    bid: float | None
    bid_size: int | None
    ask: float | None
    ask_size: int | None
    ts_ns: int


class Depth(_Event, tag="depth"):
    """One Level 2 change: an order, a price level or a market maker's quote on one side."""

    symbol: str
    action: DepthAction
    side: Side | None
    price: float | None = None
    size: int | None = None
    order_id: str = ""
    mmid: str = ""
    order_count: int | None = None
    ts_ns: int = 0


class System(_Event, tag="system"):
    """An ``S,`` line; ``connected`` is set when the line tells the DTN connection state."""

    name: str
    fields: tuple[str, ...] = ()
    connected: bool | None = None
    ts_ns: int = 0


class Heartbeat(_Event, tag="heartbeat"):
    ts_ns: int


class SymbolNotFound(_Event, tag="symbol_not_found"):
    symbol: str


class FeedError(_Event, tag="error"):
    message: str
    request_id: str = ""


class HistoryTick(_Event, tag="history_tick"):
    symbol: str
    ts_ns: int
    price: float
    size: int
    total_volume: int
    bid: float | None
    ask: float | None
    tick_id: int
    basis: str
    market_center: int | None
    conditions: tuple[str, ...] = ()
    request_id: str = ""


class HistoryBar(_Event, tag="history_bar"):
    symbol: str
    ts_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    period_volume: int | None = None
    trades: int | None = None
    open_interest: int | None = None
    request_id: str = ""


Event = Union[Trade, Quote, Depth, System, Heartbeat, SymbolNotFound, FeedError, HistoryTick, HistoryBar]

MARKET_EVENT_TYPES: tuple[type, ...] = (Trade, Quote, Depth)

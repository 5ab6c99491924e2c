"""``FeedClient``: the one object the pipeline engine uses to get IQFeed data.

It owns the Level 1, Level 2 and admin connections (each a reader thread that
reconnects by itself) and a lookup client for backfill, and ties them together:
- events from every reader go to ``sink(events)``, stamped with ``recv_ns``;
  the engine stamps ``source`` and ``seq``;
- when the Level 1 heartbeat watchdog declares IQConnect dead, Level 2 (which need
  not have a heartbeat) is recycled too; when DTN comes back after
  ``S,SERVER DISCONNECTED`` each streaming connection re-watches its symbols;
- outage windows from all connections land in one log (``outages``) for gap
  detection and :meth:`backfill`.

Nothing is watched until the engine says so (``watch``/``watch_depth``), because the
desired symbol list is durable state that lives in storage, not in this object.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from events import Trade
from collectors.iqfeed.connections import (
    AdminConnection,
    ConnectionState,
    Counters,
    EventSink,
    Level1Connection,
    Level2Connection,
    OutageLog,
    OutageWindow,
)
from collectors.iqfeed.lookup import LookupClient
from collectors.iqfeed.protocol import (
    SKIPPED_LEVEL1_COUNTERS,
    SKIPPED_LEVEL2_COUNTERS,
    InvalidSymbol,
    IQFeedError,
    LookupFailed,
    LookupThrottled,
    LookupTimeout,
    NoData,
    ProtocolError,
    ProtocolVersionError,
    SymbolLimitReached,
)
from config import FeedSettings

__all__ = [
    "FeedClient",
    "FeedState",
    "ConnectionState",
    "OutageWindow",
    "IQFeedError",
    "ProtocolError",
    "ProtocolVersionError",
    "InvalidSymbol",
    "SymbolLimitReached",
    "LookupFailed",
    "LookupTimeout",
    "LookupThrottled",
    "NoData",
]


@dataclass(frozen=True, slots=True)
class FeedState:
    """A snapshot of the feed: each connection, and whether IQConnect has DTN.

    ``dtn_connected`` is the latest word from either Level 1 (``S,SERVER ...``) or the
    admin port (``S,STATS`` Status); None until one of them has said anything.
    """

    level1: ConnectionState
    level2: ConnectionState
    admin: ConnectionState
    dtn_connected: bool | None

    @property
    def connected(self) -> bool:
        """Level 1 is up and DTN is not known to be down: market data can flow."""
        return self.level1.connected and self.dtn_connected is not False


class FeedClient:
    """Level 1 + Level 2 + admin + lookup behind one thread-safe object (see module doc)."""

    def __init__(self, settings: FeedSettings, sink: EventSink) -> None:
        self.settings = settings
        self._outages = OutageLog()
        self._counters = Counters()
        self._dtn_lock = threading.Lock()
        self._dtn: bool | None = None
        self.level2 = Level2Connection(settings, sink, outages=self._outages, counters=self._counters)
        self.level1 = Level1Connection(
            settings, sink, outages=self._outages, counters=self._counters,
            on_dtn_change=self._set_dtn, on_feed_dead=self._feed_dead,
        )
        self.admin = AdminConnection(
            settings, sink, outages=self._outages, counters=self._counters, on_dtn_change=self._set_dtn
        )
        self.lookup = LookupClient(settings)
        self._connections = (self.level1, self.level2, self.admin)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the reader threads; returns at once (see :meth:`wait_ready`)."""
        for connection in self._connections:
            connection.start()

    def stop(self) -> None:
        """Stop and join the reader threads, close the lookup socket."""
        for connection in self._connections:
            connection.stop()
        self.lookup.close()

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until Level 1 has done its handshake and subscriptions.

        Raises :class:`ProtocolVersionError` when IQConnect refused our protocol, so a
        caller at start-up gets the actionable error instead of a bare timeout.
        """
        ready = self.level1.wait_ready(timeout_s)
        for connection in self._connections:
            if connection.version_error is not None:
                raise connection.version_error
        return ready

    # ----------------------------------------------------------------- symbols

    def watch(self, symbol: str) -> bool:
        """Watch trades and quotes. Raises InvalidSymbol or SymbolLimitReached before sending."""
        return self.level1.watch(symbol)

    def unwatch(self, symbol: str) -> bool:
        return self.level1.unwatch(symbol)

    def watch_depth(self, symbol: str) -> bool:
        """Watch the Level 2 book (``feed.depth_book``: price levels or orders)."""
        return self.level2.watch(symbol)

    def unwatch_depth(self, symbol: str) -> bool:
        return self.level2.unwatch(symbol)

    def watched(self) -> frozenset[str]:
        """Symbols watched on Level 1 (upper case)."""
        with self.level1.subscriptions.lock:
            return frozenset(self.level1.subscriptions.symbols)

    def watched_depth(self) -> frozenset[str]:
        with self.level2.subscriptions.lock:
            return frozenset(self.level2.subscriptions.symbols)

    def rejected_symbols(self) -> dict[str, str]:
        """Watched symbols IQFeed refused, with why (``symbol_not_found``, ``symbol_limit_reached``)."""
        result: dict[str, str] = {}
        for connection in (self.level1, self.level2):
            with connection.subscriptions.lock:
                result.update(connection.subscriptions.rejected)
        return result

    # ----------------------------------------------------------------- status

    @property
    def state(self) -> FeedState:
        with self._dtn_lock:
            dtn = self._dtn
        return FeedState(self.level1.state, self.level2.state, self.admin.state, dtn)

    def feed_time_ns(self) -> int | None:
        """The feed's clock (its latest Level 1 heartbeat, which in a replay is the replay's time), for
        ranges of history that must end at the feed's "now", not ours; None before the first heartbeat."""
        return self.level1.feed_time_ns

    @property
    def outages(self) -> list[OutageWindow]:
        return self._outages.windows()

    @property
    def counters(self) -> dict[str, int]:
        """Totals over all connections since construction.

        Always present: lines, events, protocol_errors, reconnects, rejected_symbols,
        symbol_not_found, lookup_requests, lookup_failures, lookup_protocol_errors;
        reader_errors (a bug in our own code while reading, each logged with its
        traceback at ERROR; the reader went on or reconnected, see
        ``_LineConnection._handle_lines``); the Level 1 lines that yield no event, per
        kind: fundamentals_skipped (``F``, one per watch), regionals_skipped (``R``),
        news_skipped (``N``) and trade_corrections_skipped (``C``: stored trades may
        differ from DTN's corrected history; see ``Level1Decoder``); and the Level 2
        ones: market_maker_names_skipped (``M``, answers to ``m<MMID>``) and
        market_maker_empty_quotes_skipped (``Z``/``2`` with neither side valid; see
        ``decode_level2``).
        Present once non-zero: symbol_limit_reached, heartbeat_timeouts (any watchdog),
        silent_symbols, summary_trades_skipped, feed_errors (``E,`` lines), sink_errors.
        """
        values = {
            name: 0
            for name in ("lines", "events", "protocol_errors", "reconnects", "rejected_symbols", "symbol_not_found",
                         "reader_errors", *SKIPPED_LEVEL1_COUNTERS, *SKIPPED_LEVEL2_COUNTERS)
        }
        values.update(self._counters.snapshot())
        values["lookup_requests"] = self.lookup.requests
        values["lookup_failures"] = self.lookup.failures
        values["lookup_protocol_errors"] = self.lookup.protocol_errors
        return values

    # ----------------------------------------------------------------- backfill

    def backfill(self, symbol: str, start_ns: int, end_ns: int) -> list[Trade]:
        """Trades between two instants (e.g. an outage window) via lookup ``HTT``, marked backfilled."""
        return self.lookup.backfill(symbol, start_ns, end_ns)

    # ----------------------------------------------------------------- wiring

    def _set_dtn(self, connected: bool) -> None:
        with self._dtn_lock:
            self._dtn = connected

    def _feed_dead(self, cause: str) -> None:
        """Level 1 lost its heartbeat: IQConnect is gone or stuck, so Level 2 is too."""
        self.level2.force_reconnect(f"level1_{cause}")


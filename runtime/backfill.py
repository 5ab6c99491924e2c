"""Backfill of closed Level 1 outage windows from IQFeed's tick history: nothing missed, nothing doubled.

    closed window ──► tick history (HTT) over [start - margin, end + margin]
                  ──► drop the trades already there: in storage, or in RecentTrades
                  ──► the engine ingests the rest, marked backfilled, and records them

Why the margin: a window's edges are local receive times, trade times are the exchange's.
A trade printed just before the last data we received may still have been on its way
when the socket died, and trades printed between the reconnect and our re-watch taking
effect carry times after the window's end (so does every trade when our clock runs
behind the exchange's). Fetching wider costs history rows, never duplicates, because
what is already there is recognised.

Why the identity ``(ts_ns, total_volume, price, size)``: real prints often share time,
price and size (247 of the 32,627 trades in the shared 2021 tick sample do), while the
day's cumulative volume (Level 1 "Total Volume", lookup "TotalVolume") differs for each.

Why RecentTrades beside storage: a live row may still be on its way to storage when a
backfill runs (writer behind, bus spooling), and two windows can cover the same trades
(a symbol silent across a reconnect, windows closer together than two margins). Every
trade the engine ingests, live or backfilled, is recorded there, so neither case stores
a trade twice. A live trade that arrives only after its window was backfilled (more than
``BACKFILL_SETTLE_NS`` late) is not recognised: it would be stored twice.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from collectors.iqfeed.client import LookupFailed, OutageWindow
from events import Event, Trade

log = logging.getLogger(__name__)

BACKFILL_MARGIN_NS: Final = 5_000_000_000
"""Fetched on each side of a window. Feed latency and clock skew are far below a second
on a healthy machine; IQConnect can fall seconds behind in a burst. Wider is safe (see
the module docstring), only slower."""
BACKFILL_SETTLE_NS: Final = 2_000_000_000
"""Waited after ``end + margin`` before fetching, so that live trades printed inside the
margin have arrived (and are recorded) before the history is compared with them."""
BACKFILL_MAX_ATTEMPTS: Final = 5
RECENT_TRADES_MAX: Final = 100_000
"""Identities held at most (about 300 bytes each, 30 MB): tens of seconds of a very busy
feed, minutes of a usual one; a live row reaches storage within about a second."""
RECENT_TRADES_AGE_NS: Final = 600_000_000_000
"""Identities are kept 10 minutes. A backfill waits while the bus spools or storage
fails (the engine's gate), so an older live row is in storage by then."""
_FULL_LOG_INTERVAL_NS: Final = 60_000_000_000
_DONE: Final = -1

TradeIdentity = tuple[int, int, float, int]
"""``(ts_ns, total_volume, price, size)`` of one symbol's trade; total volume -1 when the
feed gave none (as storage keeps it)."""


def trade_identity(trade: Trade) -> TradeIdentity:
    volume = trade.total_volume
    return (trade.ts_ns, -1 if volume is None else volume, trade.price, trade.size)


def missing_trades(history: Sequence[Trade], *known: Iterable[TradeIdentity]) -> list[Trade]:
    """The ``history`` trades that none of the ``known`` sources holds, in history order.

    A known trade without a total volume cannot be told from the other prints of its
    time, price and size, so it accounts for one of them: the first in history order,
    which is the same one in every window, so overlapping windows agree. Such a trade
    can be in several sources (stored and recorded), so per source its count is taken
    and the highest one used, not the sum.
    """
    exact: set[TradeIdentity] = set()
    loose: Counter[tuple[int, float, int]] = Counter()
    for source in known:
        counts: Counter[tuple[int, float, int]] = Counter()
        for identity in source:
            if identity[1] < 0:
                counts[(identity[0], identity[2], identity[3])] += 1
            else:
                exact.add(identity)
        loose |= counts
    missing: list[Trade] = []
    for trade in history:
        if trade_identity(trade) in exact:
            continue
        key = (trade.ts_ns, trade.price, trade.size)
        if loose[key] > 0:
            loose[key] -= 1
            continue
        missing.append(trade)
    return missing


def unknown_trades(symbol: str, history: list[Trade], stored: Callable[[str, int, int], Iterable[TradeIdentity]],
                   recent: RecentTrades) -> list[Trade]:
    """The ``history`` trades of ``symbol`` that neither storage (over the history's time span) nor the
    engine's record of what it ingested holds."""
    if not history:
        return []
    # Storage first, then the record: a trade stored after the query was recorded before it.
    held = list(stored(symbol, min(t.ts_ns for t in history), max(t.ts_ns for t in history)))
    return missing_trades(history, held, recent.identities(symbol))


class RecentTrades:
    """Identities of the trades the engine ingested lately, per symbol; bounded by age and entries.

    Entries leave when older than ``max_age_ns`` (checked as trades arrive) or, oldest
    first, when more than ``max_entries`` are held. Leaving for room is counted
    (``evicted``) and logged: those trades are then recognised only once stored.
    Thread-safe: feed readers add while the backfill job reads.
    """

    def __init__(self, max_entries: int = RECENT_TRADES_MAX, max_age_ns: int = RECENT_TRADES_AGE_NS) -> None:
        self.max_entries = max_entries
        self.max_age_ns = max_age_ns
        self.evicted = 0
        self._lock = threading.Lock()
        self._batches: deque[tuple[int, list[tuple[str, TradeIdentity]]]] = deque()
        self._by_symbol: dict[str, dict[TradeIdentity, int]] = {}
        self._entries = 0
        self._full_logged_ns: int | None = None

    def __len__(self) -> int:
        return self._entries

    def add(self, events: Iterable[Event], now_ns: int) -> None:
        """Record the trades among ``events`` (ingested at ``now_ns``)."""
        batch = [(e.symbol, trade_identity(e)) for e in events if type(e) is Trade]  # type: ignore[union-attr,arg-type]
        if not batch:
            return
        with self._lock:
            by_symbol = self._by_symbol
            for symbol, identity in batch:
                counts = by_symbol.get(symbol)
                if counts is None:
                    counts = by_symbol[symbol] = {}
                counts[identity] = counts.get(identity, 0) + 1
            self._batches.append((now_ns, batch))
            self._entries += len(batch)
            self._expire(now_ns)

    def identities(self, symbol: str) -> list[TradeIdentity]:
        with self._lock:
            return list(self._by_symbol.get(symbol, ()))

    def _expire(self, now_ns: int) -> None:
        oldest = now_ns - self.max_age_ns
        batches = self._batches
        while batches and (batches[0][0] < oldest or self._entries > self.max_entries):
            recorded_ns, batch = batches.popleft()
            self._entries -= len(batch)
            if recorded_ns >= oldest:
                self._evicted_for_room(len(batch), now_ns - recorded_ns, now_ns)
            for symbol, identity in batch:
                counts = self._by_symbol[symbol]
                left = counts[identity] - 1
                if left:
                    counts[identity] = left
                else:
                    del counts[identity]
                    if not counts:
                        del self._by_symbol[symbol]

    def _evicted_for_room(self, count: int, age_ns: int, now_ns: int) -> None:
        self.evicted += count
        if self._full_logged_ns is None or now_ns - self._full_logged_ns >= _FULL_LOG_INTERVAL_NS:
            self._full_logged_ns = now_ns
            log.warning("recent-trade record full: older trades are recognised by a backfill only once stored",
                        extra={"max_entries": self.max_entries, "age_s": round(age_ns / 1e9, 1),
                               "evicted": self.evicted})


@dataclass(frozen=True, slots=True)
class BackfillStats:
    windows_backfilled: int
    windows_failed: int  # lookups failed BACKFILL_MAX_ATTEMPTS times, or the window left the outage log first
    trades_backfilled: int
    trades_already_there: int  # history trades found in storage or among those ingested
    deferred: int  # passes put off while the pipeline was behind
    recent_trades: int  # identities held by RecentTrades
    recent_trades_evicted: int  # left RecentTrades for room before their age


class Backfiller:
    """Decides which closed Level 1 windows to backfill and when, and what is missing.

    ``fetch(symbol, start_ns, end_ns)`` returns the tick history as trades marked
    backfilled (lookup ``HTT``); ``stored(symbol, start_ns, end_ns)`` the identities of
    the trades storage holds for the symbol in that range, from any source.
    """

    def __init__(
        self,
        fetch: Callable[[str, int, int], list[Trade]],
        stored: Callable[[str, int, int], Iterable[TradeIdentity]],
        recent: RecentTrades | None = None,
    ) -> None:
        self._fetch = fetch
        self._stored = stored
        self.recent = recent if recent is not None else RecentTrades()
        self._attempts: dict[tuple[str, int], int] = {}
        self._deferring = False
        self._windows_backfilled = 0
        self._windows_failed = 0
        self._trades_backfilled = 0
        self._trades_already_there = 0
        self._deferred = 0

    @property
    def tracked_windows(self) -> int:
        """Windows whose attempts are remembered; bounded by the outage log they come from."""
        return len(self._attempts)

    def stats(self) -> BackfillStats:
        return BackfillStats(self._windows_backfilled, self._windows_failed, self._trades_backfilled,
                             self._trades_already_there, self._deferred, len(self.recent), self.recent.evicted)

    def recover(self, windows: Sequence[OutageWindow], watched: Iterable[str], now_ns: int,
                behind: str = "") -> Iterator[list[Trade]]:
        """Yield, window by window and symbol by symbol, the trades a closed window missed.

        The caller ingests each list before taking the next (the engine records what it
        ingests, and the next list is compared with that). ``behind`` says why storage
        lags what was ingested (bus spooling, writes failing); while it is set, due
        windows wait. A window is retried until it succeeds or its lookups failed
        BACKFILL_MAX_ATTEMPTS times (logged as an error: the gap stays visible in Data
        integrity). A storage error propagates and the window is retried on a later pass.
        """
        level1 = [w for w in windows if w.connection == "level1"]
        self._forget_gone(level1)
        due = [w for w in level1 if self._due(w, now_ns)]
        if not due:
            return
        if behind:
            self._defer(behind, len(due))
            return
        self._deferring = False
        for window in due:
            yield from self._recover_window(window, sorted(watched))

    def _due(self, window: OutageWindow, now_ns: int) -> bool:
        if window.end_ns is None or now_ns < window.end_ns + BACKFILL_MARGIN_NS + BACKFILL_SETTLE_NS:
            return False
        attempts = self._attempts.get((window.symbol, window.start_ns), 0)
        return 0 <= attempts < BACKFILL_MAX_ATTEMPTS

    def _recover_window(self, window: OutageWindow, watched: list[str]) -> Iterator[list[Trade]]:
        assert window.end_ns is not None
        key = (window.symbol, window.start_ns)
        symbols = [window.symbol] if window.symbol else watched
        start_ns, end_ns = window.start_ns - BACKFILL_MARGIN_NS, window.end_ns + BACKFILL_MARGIN_NS
        try:
            histories = [(symbol, self._fetch(symbol, start_ns, end_ns)) for symbol in symbols]
        except LookupFailed as exc:
            attempts = self._attempts[key] = self._attempts.get(key, 0) + 1
            if attempts >= BACKFILL_MAX_ATTEMPTS:
                self._windows_failed += 1
            log.log(logging.ERROR if attempts >= BACKFILL_MAX_ATTEMPTS else logging.WARNING, "backfill failed",
                    extra={"symbol": window.symbol or "*", "start_ns": window.start_ns, "attempt": attempts,
                           "error": str(exc)})
            return
        recovered = known = 0
        for symbol, history in histories:
            missing = self._missing(symbol, history)
            recovered += len(missing)
            known += len(history) - len(missing)
            if missing:
                yield missing
        self._attempts[key] = _DONE
        self._windows_backfilled += 1
        self._trades_backfilled += recovered
        self._trades_already_there += known
        log.info("outage backfilled", extra={"symbol": window.symbol or "*", "symbols": len(symbols),
                                             "trades": recovered, "already_there": known,
                                             "start_ns": window.start_ns, "end_ns": window.end_ns})

    def _missing(self, symbol: str, history: list[Trade]) -> list[Trade]:
        return unknown_trades(symbol, history, self._stored, self.recent)

    def _defer(self, reason: str, windows: int) -> None:
        self._deferred += 1
        if not self._deferring:
            self._deferring = True
            log.info("backfill waits for the pipeline to catch up", extra={"reason": reason, "windows": windows})

    def _forget_gone(self, level1: list[OutageWindow]) -> None:
        """Drop the attempts of windows the (bounded) outage log no longer holds."""
        present = {(w.symbol, w.start_ns) for w in level1}
        for key in self._attempts.keys() - present:
            attempts = self._attempts.pop(key)
            if 0 < attempts < BACKFILL_MAX_ATTEMPTS:
                self._windows_failed += 1
                log.error("outage window left the outage log before its backfill succeeded",
                          extra={"symbol": key[0] or "*", "start_ns": key[1], "attempts": attempts})

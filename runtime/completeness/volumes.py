"""The day's Total Volume the feed reported per symbol, as the engine saw it live, and its last trade time.

Each Level 1 trade carries the day's cumulative volume (Total Volume). The highest seen
per (symbol, Eastern date) is the feed's word on how much traded, even when the trades
that carried it never reached storage: the last prints of a day lost between the engine
and storage lower the stored trades' own highest ``total_volume`` but not this. It lives
in memory only; a check run after a restart, or from the command line, relies on the
stored trades' values and the daily bar instead.

The newest trade time per (symbol, date) tells the end-of-day job whether the feed still
trades that day: a real one stops at the extended session's end, a synthetic market never
does, and checking a day whose trades are still arriving would take the ones on their way
to storage for missing ones.

Recorded on the ingest path, so it is one dict update per trade: the bounds of the day of
the latest trade are kept, and a date is computed only when a trade falls outside them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Final

from collectors.market_hours import eastern_date
from events import Event, Trade
from runtime.completeness.days import day_bounds_ns

KEEP_DAYS: Final = 10
"""Days kept behind the newest one seen; the check looks back a few days at most."""


class FeedVolumes:
    """Highest Total Volume and newest trade time per (symbol, date); thread-safe (feed readers record, the
    check job reads)."""

    def __init__(self, keep_days: int = KEEP_DAYS) -> None:
        self.keep_days = keep_days
        self._lock = threading.Lock()
        self._volumes: dict[tuple[str, date], int] = {}
        self._last_ns: dict[tuple[str, date], int] = {}
        self._start_ns = self._end_ns = 0
        self._day = date.min
        self._newest = date.min

    def record(self, events: Iterable[Event]) -> None:
        with self._lock:
            volumes, last = self._volumes, self._last_ns
            for event in events:
                if type(event) is not Trade:
                    continue
                ts_ns = event.ts_ns
                if not self._start_ns <= ts_ns < self._end_ns:
                    self._move_to(ts_ns)
                key = (event.symbol, self._day)
                if ts_ns > last.get(key, 0):
                    last[key] = ts_ns
                if event.total_volume is not None and event.total_volume > volumes.get(key, -1):
                    volumes[key] = event.total_volume

    def volume(self, symbol: str, day: date) -> int | None:
        with self._lock:
            return self._volumes.get((symbol, day))

    def last_trade_ns(self, symbol: str, day: date) -> int | None:
        with self._lock:
            return self._last_ns.get((symbol, day))

    def __len__(self) -> int:
        return len(self._last_ns)

    def _move_to(self, ts_ns: int) -> None:
        day = eastern_date(ts_ns)
        self._day = day
        self._start_ns, self._end_ns = day_bounds_ns(day)
        if day > self._newest:
            self._newest = day
            oldest = day - timedelta(days=self.keep_days)
            for key in [key for key in self._last_ns if key[1] < oldest]:
                del self._last_ns[key]
                self._volumes.pop(key, None)

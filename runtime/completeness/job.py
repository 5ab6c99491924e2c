"""The engine's end-of-day job: check each due trading day once per symbol, keep the verdicts for alerts.

Every run (once a minute) reads the verdicts of the recent days from storage (so a check
proved from the command line, or by another process, counts here too), then checks the
symbols of each due day (``days.due_days``) that have no verdict yet. A symbol is checked
for a day when it was wanted before that day's extended session ended, or when storage
holds trades of it that day: a symbol started after a day was over is not held to it. A
symbol whose feed still sent trades of that day within the last ``grace_s`` is left for a
later run (a synthetic market trades around the clock). While storage lags behind what
was ingested (``behind``: spooling bus, failing writes, trades on the bus not stored yet,
catch-ups pending), the run waits: the stored totals would not be the day's yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Final

from collectors.market_hours import eastern_date, trading_day
from config import Settings
from runtime.completeness.checker import DayChecker
from runtime.completeness.days import day_bounds_ns, due_days
from runtime.completeness.verdict import Tolerances
from runtime.symbols import SymbolSpec
from storage.completeness import DayCheck, latest_checks, traded_symbols
from storage.store import Store

log = logging.getLogger(__name__)

INTERVAL_S: Final = 60.0


def tolerances(settings: Settings) -> Tolerances:
    cfg = settings.completeness
    return Tolerances(feed_pct=cfg.feed_volume_tolerance_pct, bar_pct=cfg.daily_bar_tolerance_pct)


class CompletenessJob:
    """See the module docstring. ``checker()`` is None while storage or the feed (its lookup port) is not ready."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        checker: Callable[[], DayChecker | None],
        wanted: Callable[[], Sequence[SymbolSpec]],
        behind: Callable[[], str] = lambda: "",
        last_trade_ns: Callable[[str, date], int | None] = lambda symbol, day: None,
    ) -> None:
        cfg = settings.completeness
        self.enabled = cfg.enabled if cfg.enabled is not None else settings.feed.mode != "simulator"
        self._cfg = cfg
        self._store = store
        self._checker = checker
        self._wanted = wanted
        self._behind = behind
        self._last_trade_ns = last_trade_ns
        self._run_lock = threading.Lock()
        self._lock = threading.Lock()
        self._latest: dict[tuple[date, str], DayCheck] = {}
        self._not_held: set[tuple[date, str]] = set()  # neither wanted then nor traded: not checked
        self._deferring = False

    def run(self, now_ns: int | None = None) -> list[DayCheck]:
        """Check what is due at ``now_ns`` (default: the wall clock); returns the checks made now."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        with self._run_lock:
            checker = self._checker()
            if checker is None:
                return self._defer("storage or the feed is not ready")
            work = self._due_work(now_ns)
            behind = self._behind() if work else ""
            if behind:
                return self._defer(behind)
            self._deferring = False
            made: list[DayCheck] = []
            for day, symbols in work:
                checks = checker.check(day, symbols, now_ns)
                with self._lock:
                    self._latest.update({(c.day, c.symbol): c for c in checks})
                made.extend(checks)
                log.info("trading day checked", extra={
                    "day": day.isoformat(), "symbols": len(checks),
                    "incomplete": sum(c.verdict == "incomplete" for c in checks),
                    "excess": sum(c.verdict == "excess" for c in checks),
                    "trades_recovered": sum(c.trades_recovered for c in checks)})
            return made

    def _due_work(self, now_ns: int) -> list[tuple[date, list[str]]]:
        """Take in the stored verdicts of the recent days; the due days with symbols still to check."""
        today = eastern_date(now_ns)
        first = today - timedelta(days=max(self._cfg.lookback_days, self._cfg.alert_days))
        latest = {(c.day, c.symbol): c for c in latest_checks(self._store, first, today)}
        with self._lock:
            self._latest = latest
        self._not_held = {key for key in self._not_held if key[0] >= first}
        work = []
        for day in due_days(now_ns, self._cfg.grace_s, self._cfg.lookback_days):
            symbols = self._unchecked(day, latest, now_ns)
            if symbols:
                work.append((day, symbols))
        return work

    def _unchecked(self, day: date, latest: dict[tuple[date, str], DayCheck], now_ns: int) -> list[str]:
        quiet_since_ns = now_ns - int(self._cfg.grace_s * 1e9)
        wanted = [s for s in self._wanted() if (day, s.symbol) not in latest and (day, s.symbol) not in self._not_held
                  and (self._last_trade_ns(s.symbol, day) or 0) <= quiet_since_ns]
        if not wanted:
            return []
        sessions = trading_day(day)
        assert sessions is not None, "due days are trading days"
        traded = set(traded_symbols(self._store, *day_bounds_ns(day)))
        todo = []
        for spec in wanted:
            if spec.updated_ns < sessions.post_close_ns or spec.symbol in traded:
                todo.append(spec.symbol)
            else:
                self._not_held.add((day, spec.symbol))
        return sorted(todo)

    def _defer(self, reason: str) -> list[DayCheck]:
        if not self._deferring:
            self._deferring = True
            log.info("end-of-day check waits", extra={"reason": reason})
        return []

    def incomplete_days(self, now_ns: int) -> dict[str, tuple[str, ...]]:
        """Days within ``alert_days`` of ``now_ns`` with symbols not complete (incomplete or excess) -> those symbols."""
        first = eastern_date(now_ns) - timedelta(days=self._cfg.alert_days)
        days: dict[str, list[str]] = {}
        with self._lock:
            checks = list(self._latest.values())
        for check in checks:
            if check.day >= first and check.verdict != "complete":
                days.setdefault(check.day.isoformat(), []).append(check.symbol)
        return {day: tuple(sorted(symbols)) for day, symbols in sorted(days.items())}

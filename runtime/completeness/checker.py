"""Check one trading day for a list of symbols: compare, backfill the shortfall, record the verdict.

    per symbol ──► stored totals (sum of sizes, rows, highest Total Volume) ─┐
                   daily bar (lookup HDT) ─ feed Total Volume (live, stored) ┴► judge
                   incomplete? ──► tick history of the day (lookup HTT)
                               ──► drop what storage holds (content identity, runtime/backfill.missing_trades)
                               ──► deliver the rest, wait until storage holds them, judge again
                   ──► one day_completeness row (a re-check replaces it)

Idempotent: a re-run finds the recovered trades stored and recovers nothing; the verdict
row is replaced (ReplacingMergeTree on (day, symbol), latest check wins). Recovered trades
are counted only from storage, never assumed: "complete" is what a recount says.

``deliver`` is the engine's ingest (bus, backup, the engine's record of ingested trades)
when the engine runs the check, or :class:`DirectInsert` for the command line. Waiting
for storage matters for the first: a verdict taken before the writer stored the recovered
trades would say "incomplete" about a day that is not. If storage does not have them
within ``settle_timeout_s``, :class:`RecoveryNotStored` is raised and nothing is recorded
for the symbol.

Only storage says what is missing, not the engine's record of recently ingested trades
(``RecentTrades``, which the outage backfill consults): after the close no live trade of
the day is on its way (the engine's job waits while the bus spools or writes fail), and a
trade the engine ingested but storage lacks is lost, to be recovered. The record forgets
only as new trades arrive, so after the close it would hold the day's last trades as "on
their way" until the next morning. What is left is a race with an outage backfill of the
same minutes running at the same moment (a feed outage in the last seconds of the
extended session): both may deliver a trade, and only a writer that drops a trade already
stored by its content identity keeps it once (docs/DELIVERY.md, "Not covered").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import date
from typing import Final, Protocol

from collectors.iqfeed.client import NoData
from collectors.market_hours import eastern_date
from events import HistoryBar, Trade
from runtime.backfill import missing_trades
from runtime.completeness.days import day_bounds_ns
from runtime.completeness.verdict import Judgement, References, Tolerances, feed_volume, judge
from storage.completeness import DayCheck, DayTotals, day_totals, insert_trades, save_checks, trade_identities
from storage.store import Store

log = logging.getLogger(__name__)

SETTLE_TIMEOUT_S: Final = 60.0
_SETTLE_POLL_S: Final = 0.2


class HistorySource(Protocol):
    """The lookup port's history (``collectors.iqfeed.lookup.LookupClient``)."""

    def daily_bars(self, symbol: str, first: date, last: date) -> list[HistoryBar]: ...

    def backfill(self, symbol: str, start_ns: int, end_ns: int) -> list[Trade]: ...


class RecoveryNotStored(RuntimeError):
    """Recovered trades were delivered but storage did not hold them in time."""


class DirectInsert:
    """Deliver recovered trades straight into storage, for a check run without an engine.

    They are stamped as a session of their own (``source`` = ``<name>@<start ms>``, ``seq``
    from 1), so their keys never meet a collector's; ``bus_partition``/``bus_offset`` are -1.
    """

    def __init__(self, store: Store, name: str, clock: Callable[[], int] = time.time_ns) -> None:
        self._store = store
        self._clock = clock
        self.source = f"{name}@{clock() // 1_000_000}"
        self._seq = 0

    def __call__(self, trades: list[Trade]) -> None:
        for trade in trades:
            self._seq += 1
            trade.source = self.source
            trade.seq = self._seq
        insert_trades(self._store, trades, self._clock())


class DayChecker:
    """Runs the comparison and the recovery for (day, symbols); see the module docstring."""

    def __init__(
        self,
        store: Store,
        history: HistorySource,
        *,
        deliver: Callable[[list[Trade]], None],
        checked_by: str,
        tolerances: Tolerances = Tolerances(),
        live_volume: Callable[[str, date], int | None] = lambda symbol, day: None,
        settle_timeout_s: float = SETTLE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._history = history
        self._deliver = deliver
        self._checked_by = checked_by
        self._tolerances = tolerances
        self._live_volume = live_volume
        self._settle_timeout_s = settle_timeout_s
        self._clock = clock
        self._sleep = sleep

    def check(self, day: date, symbols: Sequence[str], now_ns: int) -> list[DayCheck]:
        """Check each symbol and record its row as soon as it is known (a failure keeps the earlier ones).

        Raises ``LookupFailed`` (the lookup port failed), ``StorageError`` or :class:`RecoveryNotStored`.
        """
        start_ns, end_ns = day_bounds_ns(day)
        totals = day_totals(self._store, symbols, start_ns, end_ns)
        checks = []
        for symbol in symbols:
            check = self._check_symbol(day, symbol, totals.get(symbol, DayTotals()), now_ns)
            save_checks(self._store, [check])
            checks.append(check)
            if check.trades_recovered or check.verdict != "complete":
                log.log(logging.INFO if check.verdict == "complete" else logging.WARNING, "day checked",
                        extra={"day": day.isoformat(), "symbol": symbol, "verdict": check.verdict,
                               "trades_recovered": check.trades_recovered, "detail": check.detail})
        return checks

    def _check_symbol(self, day: date, symbol: str, totals: DayTotals, now_ns: int) -> DayCheck:
        bar = self._bar_volume(symbol, day)
        live = self._live_volume(symbol, day)
        refs, judgement = self._judge(totals, live, bar)
        history_trades = -1
        recovered: list[Trade] = []
        if judgement.verdict == "incomplete":
            history_trades, recovered, totals = self._recover(day, symbol, totals)
            refs, judgement = self._judge(totals, live, bar)  # recovered trades may carry a higher Total Volume
        return DayCheck(
            day=day, symbol=symbol, stored_volume=totals.volume, stored_trades=totals.trades,
            feed_volume=-1 if refs.feed_volume is None else refs.feed_volume,
            bar_volume=-1 if bar is None else bar, history_trades=history_trades,
            trades_recovered=len(recovered), volume_recovered=sum(t.size for t in recovered),
            verdict=judgement.verdict, detail=judgement.detail, checked_by=self._checked_by, checked_ns=now_ns,
        )

    def _judge(self, totals: DayTotals, live: int | None, bar: int | None) -> tuple[References, Judgement]:
        refs = References(feed_volume(live, totals.max_total_volume), bar)
        return refs, judge(totals.volume, refs, self._tolerances)

    def _bar_volume(self, symbol: str, day: date) -> int | None:
        """The daily bar's volume; 0 when IQFeed has no data for the day (nothing traded), None if no bar is for it."""
        try:
            bars = self._history.daily_bars(symbol, day, day)
        except NoData:
            return 0
        volumes = [bar.volume for bar in bars if eastern_date(bar.ts_ns) == day]
        return volumes[-1] if volumes else None

    def _recover(self, day: date, symbol: str, totals: DayTotals) -> tuple[int, list[Trade], DayTotals]:
        """Fetch the day's ticks, deliver those storage lacks, and wait until it holds them."""
        start_ns, end_ns = day_bounds_ns(day)
        history = self._history.backfill(symbol, start_ns, end_ns - 1)
        recovered = missing_trades(history, trade_identities(self._store, symbol, start_ns, end_ns))
        if recovered:
            self._deliver(recovered)
            totals = self._wait_stored(symbol, start_ns, end_ns, totals.trades + len(recovered))
        return len(history), recovered, totals

    def _wait_stored(self, symbol: str, start_ns: int, end_ns: int, trades: int) -> DayTotals:
        deadline = self._clock() + self._settle_timeout_s
        while True:
            totals = day_totals(self._store, [symbol], start_ns, end_ns).get(symbol, DayTotals())
            if totals.trades >= trades:
                return totals
            if self._clock() >= deadline:
                raise RecoveryNotStored(
                    f"{symbol}: {trades - totals.trades} recovered trades not in storage after "
                    f"{self._settle_timeout_s:g} s (the writer is behind or failing); the check of the day retries")
            self._sleep(_SETTLE_POLL_S)

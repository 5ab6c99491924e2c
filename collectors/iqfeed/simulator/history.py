"""Tick selection and bar building for the lookup port (pure functions over ticks).

Lookups answer from the same ticks the stream produced (each symbol keeps a bounded
deque of them), so a client can check a backfill against what it streamed. Bars are
built on request from those ticks:

* interval bars (``HIX``/``HID``/``HIT``): by seconds (``s``, labelled at the end of the
  interval unless LabelAtBeginning is 1), by volume (``v``) or by tick count (``t``),
  labelled with their last tick's time;
* daily bars by calendar date, weekly bars by ISO week and monthly bars by month, each
  labelled with the last date that traded in it. Every trade counts (extended hours too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from collectors.iqfeed.simulator.market import Tick
from collectors.iqfeed.simulator.wire import US_PER_DAY, US_PER_SECOND, TimeText, day_of, price


@dataclass(slots=True)
class Bar:
    """OHLCV of a group of ticks; ``label_us`` is the bar's timestamp."""

    label_us: int
    high: int
    low: int
    open: int
    close: int
    total_volume: int
    period_volume: int
    trades: int

    def add(self, tick: Tick) -> None:
        self.high = max(self.high, tick.price)
        self.low = min(self.low, tick.price)
        self.close = tick.price
        self.total_volume = tick.total_volume
        self.period_volume += tick.size
        self.trades += 1


def _new_bar(label_us: int, tick: Tick) -> Bar:
    return Bar(label_us, tick.price, tick.price, tick.price, tick.price, tick.total_volume, tick.size, 1)


def select_ticks(
    ticks: Iterable[Tick],
    *,
    begin_us: int | None = None,
    end_us: int | None = None,
    days: int | None = None,
    filter_begin_s: int | None = None,
    filter_end_s: int | None = None,
) -> list[Tick]:
    """Ticks oldest first within a time range, the last ``days`` trading dates and a daily time window."""
    chosen = list(ticks)
    if days is not None:
        dates = sorted({t.time_us // US_PER_DAY for t in chosen})[-days:] if days > 0 else []
        first = dates[0] if dates else None
        chosen = [t for t in chosen if first is not None and t.time_us // US_PER_DAY >= first]
    if begin_us is not None:
        chosen = [t for t in chosen if t.time_us >= begin_us]
    if end_us is not None:
        chosen = [t for t in chosen if t.time_us <= end_us]
    if filter_begin_s is not None or filter_end_s is not None:
        low = (filter_begin_s or 0) * US_PER_SECOND
        high = (filter_end_s if filter_end_s is not None else 86_399) * US_PER_SECOND + US_PER_SECOND - 1
        chosen = [t for t in chosen if low <= t.time_us % US_PER_DAY <= high]
    return chosen


def interval_bars(ticks: Sequence[Tick], interval: int, kind: str = "s", label_at_beginning: bool = False) -> list[Bar]:
    """Interval bars, oldest first: ``kind`` is ``s`` (seconds), ``v`` (volume) or ``t`` (ticks)."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    bars: list[Bar] = []
    if kind == "s":
        span = interval * US_PER_SECOND
        current_bucket = None
        for tick in ticks:
            bucket = tick.time_us // span
            if bucket != current_bucket:
                current_bucket = bucket
                label = bucket * span if label_at_beginning else (bucket + 1) * span
                bars.append(_new_bar(label, tick))
            else:
                bars[-1].add(tick)
        return bars
    if kind not in ("v", "t"):
        raise ValueError(f"interval type {kind!r}: s, v or t")
    for tick in ticks:
        bar = bars[-1] if bars else None
        full = bar is None or (bar.period_volume >= interval if kind == "v" else bar.trades >= interval)
        if full:
            bars.append(_new_bar(tick.time_us, tick))
        else:
            assert bar is not None
            bar.add(tick)
            bar.label_us = tick.time_us
    return bars


def _grouped_bars(ticks: Sequence[Tick], key: Callable[[date], object]) -> list[Bar]:
    bars: list[Bar] = []
    current = None
    for tick in ticks:
        group = key(day_of(tick.time_us))
        if group != current or not bars:
            current = group
            bars.append(_new_bar(tick.time_us, tick))
        else:
            bars[-1].add(tick)
            bars[-1].label_us = tick.time_us
    return bars


def daily_bars(ticks: Sequence[Tick]) -> list[Bar]:
    """One bar per calendar date, oldest first."""
    return _grouped_bars(ticks, lambda d: d)


def weekly_bars(ticks: Sequence[Tick]) -> list[Bar]:
    """One bar per ISO week, oldest first, labelled with its last trading date."""
    return _grouped_bars(ticks, lambda d: d.isocalendar()[:2])


def monthly_bars(ticks: Sequence[Tick]) -> list[Bar]:
    """One bar per calendar month, oldest first, labelled with its last trading date."""
    return _grouped_bars(ticks, lambda d: (d.year, d.month))


def tick_row(tick: Tick, text: TimeText) -> str:
    """A tick-history row (``HTX``/``HTD``/``HTT``), trailing comma as IQFeed sends it."""
    return (
        f"{text.history_timestamp(tick.time_us)},{price(tick.price)},{tick.size},{tick.total_volume},"
        f"{price(tick.bid)},{price(tick.ask)},{tick.tick_id},{tick.basis},{tick.market_center},"
        f"{tick.conditions},{tick.aggressor},{tick.day_code},"
    )


def interval_row(bar: Bar, text: TimeText) -> str:
    """An interval-bar row: timestamp, High, Low, Open, Close, TotalVolume, PeriodVolume, NumTrades."""
    return (
        f"{text.bar_timestamp(bar.label_us)},{price(bar.high)},{price(bar.low)},{price(bar.open)},"
        f"{price(bar.close)},{bar.total_volume},{bar.period_volume},{bar.trades},"
    )


def daily_row(bar: Bar, text: TimeText) -> str:
    """A daily/weekly/monthly row: date, High, Low, Open, Close, PeriodVolume, OpenInterest."""
    return (
        f"{text.iso_date(bar.label_us)},{price(bar.high)},{price(bar.low)},{price(bar.open)},"
        f"{price(bar.close)},{bar.period_volume},0,"
    )

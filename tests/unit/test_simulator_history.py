"""Tick selection and bars for lookups."""

from __future__ import annotations

import pytest

from collectors.iqfeed.simulator.history import (
    daily_bars,
    daily_row,
    interval_bars,
    interval_row,
    monthly_bars,
    select_ticks,
    weekly_bars,
)
from collectors.iqfeed.simulator.market import Tick
from collectors.iqfeed.simulator.wire import TimeText, parse_history_timestamp

pytestmark = pytest.mark.timeout(30)


def _tick(stamp: str, price: int, size: int, total: int) -> Tick:
    return Tick(parse_history_timestamp(stamp), price, size, total, price - 100, price + 100, 1, "C", 11, "01", 0, 1)


TICKS = [
    _tick("2021-03-01 09:30:01.5", 10_000, 100, 100),
    _tick("2021-03-01 09:30:40", 10_500, 200, 300),
    _tick("2021-03-01 09:31:10", 9_900, 300, 600),
    _tick("2021-03-02 15:59:59", 11_000, 400, 400),
    _tick("2021-03-08 10:00:00", 12_000, 500, 500),
    _tick("2021-04-01 10:00:00", 13_000, 600, 600),
]


def test_second_bars_group_by_interval_and_are_labelled_at_the_end() -> None:
    bars = interval_bars(TICKS[:3], 60)
    assert [(b.high, b.low, b.open, b.close, b.total_volume, b.period_volume, b.trades) for b in bars] == [
        (10_500, 10_000, 10_000, 10_500, 300, 300, 2),
        (9_900, 9_900, 9_900, 9_900, 600, 300, 1),
    ]
    text = TimeText()
    assert interval_row(bars[0], text) == "2021-03-01 09:31:00,1.0500,1.0000,1.0000,1.0500,300,300,2,"
    assert interval_row(interval_bars(TICKS[:3], 60, label_at_beginning=True)[0], text).startswith("2021-03-01 09:30:00,")


def test_volume_and_tick_bars() -> None:
    assert [b.period_volume for b in interval_bars(TICKS[:3], 250, "v")] == [300, 300]
    assert [b.trades for b in interval_bars(TICKS, 4, "t")] == [4, 2]


def test_daily_weekly_monthly_bars() -> None:
    text = TimeText()
    days = daily_bars(TICKS)
    assert [daily_row(b, text).split(",")[0] for b in days] == ["2021-03-01", "2021-03-02", "2021-03-08", "2021-04-01"]
    assert daily_row(days[0], text) == "2021-03-01,1.0500,0.9900,1.0000,0.9900,600,0,"
    assert [b.period_volume for b in weekly_bars(TICKS)] == [1000, 500, 600]
    assert [daily_row(b, text).split(",")[0] for b in monthly_bars(TICKS)] == ["2021-03-08", "2021-04-01"]


def test_selection_by_range_days_and_time_of_day() -> None:
    begin = parse_history_timestamp("2021-03-01 09:30:30")
    end = parse_history_timestamp("2021-03-02 16:00:00")
    assert select_ticks(TICKS, begin_us=begin, end_us=end) == TICKS[1:4]
    assert select_ticks(TICKS, days=2) == TICKS[4:]
    assert select_ticks(TICKS, filter_begin_s=9 * 3600 + 31 * 60, filter_end_s=15 * 3600) == [TICKS[2], *TICKS[4:]]

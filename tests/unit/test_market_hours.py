"""Market hours on known NYSE dates: holidays, early closes and DST weeks."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from collectors.market_hours import (
    OutsideCalendar,
    Session,
    is_open,
    open_overlap_ns,
    session_at,
    trading_day,
)

pytestmark = pytest.mark.timeout(60)

NY = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
HOUR = 3600 * 10**9


def et(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=NY).timestamp()) * 10**9


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()) * 10**9


@pytest.mark.parametrize(
    ("wall", "session"),
    [
        ((3, 59, 59), Session.CLOSED),
        ((4, 0, 0), Session.PRE),
        ((9, 29, 59), Session.PRE),
        ((9, 30, 0), Session.REGULAR),
        ((15, 59, 59), Session.REGULAR),
        ((16, 0, 0), Session.POST),
        ((19, 59, 59), Session.POST),
        ((20, 0, 0), Session.CLOSED),
    ],
)
def test_regular_day_session_boundaries(wall: tuple[int, int, int], session: Session) -> None:
    assert session_at(et(2026, 11, 25, *wall)) is session


def test_day_after_thanksgiving_closes_at_13_with_a_short_post_market() -> None:
    day = trading_day(date(2026, 11, 27))
    assert day is not None and day.early_close
    assert day.close_ns == et(2026, 11, 27, 13)
    assert session_at(et(2026, 11, 27, 12, 59, 59)) is Session.REGULAR
    assert session_at(et(2026, 11, 27, 13, 0)) is Session.POST
    assert session_at(et(2026, 11, 27, 17, 0)) is Session.CLOSED
    assert not is_open(et(2026, 11, 27, 14)) and is_open(et(2026, 11, 27, 14), extended=True)


@pytest.mark.parametrize("day", [date(2026, 11, 26), date(2026, 12, 25), date(2026, 11, 28), date(2026, 11, 29)])
def test_holidays_and_weekends_have_no_session(day: date) -> None:
    assert trading_day(day) is None
    for hour in (5, 10, 17):
        assert session_at(et(day.year, day.month, day.day, hour)) is Session.CLOSED


def test_dst_change_week_keeps_the_open_at_0930_eastern() -> None:
    # DST starts Sunday 2026-03-08: the 09:30 open moves from 14:30 to 13:30 UTC.
    friday = trading_day(date(2026, 3, 6))
    monday = trading_day(date(2026, 3, 9))
    assert friday is not None and monday is not None
    assert friday.open_ns == utc(2026, 3, 6, 14, 30)
    assert monday.open_ns == utc(2026, 3, 9, 13, 30)
    assert monday.pre_open_ns == utc(2026, 3, 9, 8, 0)
    assert session_at(utc(2026, 3, 9, 13, 45)) is Session.REGULAR
    assert session_at(utc(2026, 3, 6, 13, 45)) is Session.PRE


def test_open_overlap_counts_only_open_time_of_an_outage() -> None:
    # Outage from Wednesday 15:00 to Friday 10:00 around Thanksgiving 2026.
    start, end = et(2026, 11, 25, 15), et(2026, 11, 27, 10)
    assert open_overlap_ns(start, end) == HOUR + HOUR // 2  # 15:00-16:00 Wed + 09:30-10:00 Fri
    assert open_overlap_ns(start, end, extended=True) == 5 * HOUR + 6 * HOUR  # 15-20 Wed, 04-10 Fri
    assert open_overlap_ns(end, start) == 0


def test_dates_outside_the_calendar_are_refused() -> None:
    with pytest.raises(OutsideCalendar):
        trading_day(date(1990, 1, 2))

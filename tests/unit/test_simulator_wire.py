"""Server-side formatting and Eastern wall-clock time of the IQFeed simulator."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from collectors.iqfeed.simulator.wire import (
    EASTERN,
    EasternClock,
    TimeText,
    day_of,
    day_start,
    heartbeat,
    parse_compact_datetime,
    parse_compact_time,
    parse_history_timestamp,
    parse_price,
    price,
    price_at,
    stats_time,
)

pytestmark = pytest.mark.timeout(30)


def test_prices_print_with_four_decimals_like_iqfeed() -> None:
    assert price(15200) == "1.5200"
    assert price(3229100) == "322.9100"
    assert price(5) == "0.0005"
    assert price(15200) == "1.5200"  # cached path gives the same text


def test_level2_prices_follow_the_symbol_precision() -> None:
    assert price_at(29382500, 2) == "2938.25"
    assert price_at(15200, 4) == "1.5200"
    assert price_at(15000, 0) == "1"


def test_parse_price_round_trips_to_units() -> None:
    assert parse_price("1.5200") == 15200
    assert parse_price("322.91") == 3229100
    with pytest.raises(ValueError):
        parse_price("abc")


def test_time_text_formats_trade_times_and_dates() -> None:
    text = TimeText()
    t = parse_history_timestamp("2021-03-01 04:00:06.702115")
    assert text.hms_us(t) == "04:00:06.702115"
    assert text.iso_date(t) == "2021-03-01"
    assert text.compact_date(t) == "20210301"
    assert text.mdy_date(t) == "03/01/2021"
    assert text.history_timestamp(t) == "2021-03-01 04:00:06.702115"
    assert text.bar_timestamp(t) == "2021-03-01 04:00:06"
    later = t + 3_600_000_000 * 24  # the cached day must move on
    assert text.iso_date(later) == "2021-03-02"


def test_heartbeat_is_date_space_time() -> None:
    t = parse_history_timestamp("2018-07-09 14:18:31.999999")
    assert heartbeat(TimeText(), t) == "T,20180709 14:18:31\r\n"


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2021-04-01 18:48:00", "Apr 01 6:48PM"),
        ("2021-08-20 00:05:00", "Aug 20 12:05AM"),
        ("2021-08-20 12:00:00", "Aug 20 12:00PM"),
        ("2021-12-31 09:07:59", "Dec 31 9:07AM"),
    ],
)
def test_stats_times_have_no_leading_zero_on_the_hour(stamp: str, expected: str) -> None:
    assert stats_time(parse_history_timestamp(stamp)) == expected


def test_eastern_clock_follows_the_wall_clock_in_new_york() -> None:
    now = datetime.now(EASTERN)
    expected = parse_history_timestamp(now.strftime("%Y-%m-%d %H:%M:%S.%f"))
    assert abs(EasternClock().now() - expected) < 1_000_000


@pytest.mark.parametrize(
    ("utc", "eastern"),
    [
        (datetime(2021, 7, 1, 13, 30, tzinfo=timezone.utc), "2021-07-01 09:30:00"),  # EDT, UTC-4
        (datetime(2021, 1, 4, 14, 30, tzinfo=timezone.utc), "2021-01-04 09:30:00"),  # EST, UTC-5
        (datetime(2021, 3, 14, 6, 59, tzinfo=timezone.utc), "2021-03-14 01:59:00"),  # just before the change
        (datetime(2021, 3, 14, 7, 0, tzinfo=timezone.utc), "2021-03-14 03:00:00"),  # 2 AM never happens
    ],
)
def test_eastern_clock_applies_daylight_saving(utc: datetime, eastern: str) -> None:
    clock = EasternClock(lambda: int(utc.timestamp()) * 1_000_000_000)
    assert clock.now() == parse_history_timestamp(eastern)


def test_days_and_lookup_parameters() -> None:
    assert day_of(day_start(date(2021, 3, 3)) + 5) == date(2021, 3, 3)
    assert parse_compact_datetime("20210301 093000") == parse_history_timestamp("2021-03-01 09:30:00")
    assert parse_compact_time("160000") == 16 * 3600
    with pytest.raises(ValueError):
        parse_compact_datetime("2021-03-01")
    with pytest.raises(ValueError):
        parse_compact_time("9300")
    with pytest.raises(ValueError):
        parse_compact_time("256000")


def test_trade_times_stay_exact_across_millisecond_second_and_day_boundaries() -> None:
    text = TimeText()
    t = parse_history_timestamp("2021-03-01 23:59:59.998998")
    expected = {
        t: "23:59:59.998998",
        t + 1: "23:59:59.998999",
        t + 2: "23:59:59.999000",
        t + 1002: "00:00:00.000000",
        t + 1003: "00:00:00.000001",
        t - 5_000_000: "23:59:54.998998",  # back in time: the cached millisecond is replaced
    }
    for local_us, wanted in expected.items():
        assert text.hms_us(local_us) == wanted
        assert text.hms(local_us) == wanted[:8]

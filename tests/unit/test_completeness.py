"""End-of-day completeness with plain values: the verdict rule, the due days on the NYSE calendar
(early closes, holidays, DST), the live Total Volume record, the alert rule and the HDT command."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from alerts.rules import Observation, evaluate_rules
from collectors.iqfeed.protocol import InvalidSymbol, history_daily_command
from config import AlertSettings, load_settings
from events import Quote, Trade
from runtime.completeness.__main__ import UsageError, check_day
from runtime.completeness.days import check_after_ns, day_bounds_ns, due_days
from runtime.completeness.verdict import References, Tolerances, feed_volume, judge
from runtime.completeness.volumes import FeedVolumes
from storage.completeness import DayCheck, summarize_days

pytestmark = pytest.mark.timeout(60)

NY = ZoneInfo("America/New_York")
HOUR_S = 3600
EXACT = Tolerances(feed_pct=0.0, bar_pct=1.0)


def et(day: date, hour: int, minute: int = 0, second: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=NY).timestamp()) * 10**9


# ------------------------------------------------------------------ the verdict


def test_a_day_whose_stored_volume_equals_the_feeds_total_volume_and_the_daily_bar_is_complete():
    assert judge(4_810_873, References(4_810_873, 4_810_873), EXACT).verdict == "complete"


def test_one_share_short_of_the_feeds_total_volume_is_incomplete():
    judgement = judge(4_810_872, References(4_810_873, 4_810_873), EXACT)
    assert judgement.verdict == "incomplete"
    assert "feed Total Volume 4,810,873 (-1)" in judgement.detail


def test_the_daily_bar_is_a_second_opinion_judged_with_its_tolerance():
    assert judge(990_000, References(None, 1_000_000), EXACT).verdict == "complete"  # 1 % short: within
    assert judge(989_999, References(None, 1_000_000), EXACT).verdict == "incomplete"
    # A bar below stored volume (a bounded history, another counting rule) says nothing is missing.
    assert judge(1_000_000, References(1_000_000, 600_000), EXACT).verdict == "complete"


def test_more_stored_than_the_feed_reported_is_excess():
    judgement = judge(1_000_100, References(1_000_000, 1_000_100), EXACT)
    assert judgement.verdict == "excess" and "doubled rows" in judgement.detail


def test_the_feed_tolerance_allows_a_shortfall_and_an_excess_of_that_size():
    loose = Tolerances(feed_pct=0.1, bar_pct=1.0)
    assert judge(999_000, References(1_000_000, None), loose).verdict == "complete"
    assert judge(1_001_000, References(1_000_000, None), loose).verdict == "complete"
    assert judge(998_999, References(1_000_000, None), loose).verdict == "incomplete"


def test_without_any_reference_nothing_says_the_symbol_traded():
    assert judge(0, References(None, None), EXACT).verdict == "complete"
    assert judge(0, References(None, 0), EXACT).verdict == "complete"
    assert judge(0, References(None, 500), EXACT).verdict == "incomplete"


def test_the_feed_volume_is_the_larger_of_the_live_and_the_stored_total_volume():
    assert feed_volume(None, -1) is None
    assert feed_volume(None, 700) == 700
    assert feed_volume(900, 700) == 900
    assert feed_volume(500, 700) == 700


# ------------------------------------------------------------------ when a day is due


def test_a_regular_day_is_due_after_its_extended_session_plus_the_grace():
    monday = date(2021, 3, 1)
    assert check_after_ns(monday, 600) == et(monday, 20, 10)
    assert due_days(et(monday, 20, 9, 59), 600, 0) == []
    assert due_days(et(monday, 20, 10), 600, 0) == [monday]


def test_an_early_close_day_is_due_after_its_1700_extended_close():
    black_friday = date(2021, 11, 26)  # NYSE closes at 13:00, extended hours end at 17:00
    assert check_after_ns(black_friday, 600) == et(black_friday, 17, 10)
    assert due_days(et(black_friday, 17, 9), 600, 0) == []
    assert due_days(et(black_friday, 17, 10), 600, 0) == [black_friday]


def test_weekends_and_holidays_are_never_due_and_the_lookback_catches_up_missed_days():
    assert check_after_ns(date(2021, 11, 25), 600) is None  # Thanksgiving
    assert check_after_ns(date(2021, 3, 6), 600) is None  # Saturday
    tuesday_morning = et(date(2021, 3, 2), 9, 0)
    assert due_days(tuesday_morning, 600, 4) == [date(2021, 2, 26), date(2021, 3, 1)]
    assert due_days(tuesday_morning, 600, 0) == []


def test_a_day_spans_midnight_to_midnight_eastern_even_across_a_dst_change():
    start, end = day_bounds_ns(date(2021, 3, 14))  # clocks spring forward: a 23-hour day
    assert (end - start) // 10**9 == 23 * HOUR_S
    assert start == et(date(2021, 3, 14), 0)
    start, end = day_bounds_ns(date(2021, 3, 1))
    assert (end - start) // 10**9 == 24 * HOUR_S


# ------------------------------------------------------------------ live Total Volume


def _trade(symbol: str, ts_ns: int, total_volume: int | None, size: int = 100) -> Trade:
    return Trade(symbol=symbol, price=10.0, size=size, ts_ns=ts_ns, total_volume=total_volume)


def test_the_highest_total_volume_is_kept_per_symbol_and_eastern_day():
    monday, tuesday = date(2021, 3, 1), date(2021, 3, 2)
    volumes = FeedVolumes()
    volumes.record([_trade("AAPL", et(monday, 10), 1_000), _trade("AAPL", et(monday, 19, 59), 5_000),
                    _trade("MSFT", et(monday, 23, 59), 70), Quote(symbol="AAPL", bid=1, bid_size=1, ask=2,
                                                                   ask_size=1, ts_ns=et(monday, 12))])
    volumes.record([_trade("AAPL", et(tuesday, 4), 100), _trade("AAPL", et(monday, 19, 58), 4_900),
                    _trade("AAPL", et(tuesday, 5), None)])
    assert volumes.volume("AAPL", monday) == 5_000  # a late print of Monday does not lower it
    assert volumes.volume("AAPL", tuesday) == 100
    assert volumes.volume("MSFT", monday) == 70
    assert volumes.volume("MSFT", tuesday) is None
    assert volumes.last_trade_ns("AAPL", monday) == et(monday, 19, 59)
    assert volumes.last_trade_ns("AAPL", tuesday) == et(tuesday, 5)  # a trade without Total Volume still trades


def test_live_volumes_keep_only_the_recent_days():
    volumes = FeedVolumes(keep_days=2)
    for day in range(1, 6):
        volumes.record([_trade("AAPL", et(date(2021, 3, day), 10), day)])
    assert volumes.volume("AAPL", date(2021, 3, 5)) == 5
    assert volumes.volume("AAPL", date(2021, 3, 3)) == 3
    assert volumes.volume("AAPL", date(2021, 3, 2)) is None
    assert len(volumes) == 3


# ------------------------------------------------------------------ alert, summary, wire


def test_day_incomplete_alerts_once_per_day_naming_its_symbols():
    obs = Observation(now_ns=et(date(2021, 3, 2), 9), incomplete_days={"2021-03-01": ("AAPL", "SMPL")})
    (finding,) = evaluate_rules(obs, AlertSettings())
    assert (finding.rule, finding.subject, finding.severity, finding.value) == ("day_incomplete", "2021-03-01",
                                                                                "warning", 2)
    assert "AAPL, SMPL" in finding.summary
    assert evaluate_rules(Observation(now_ns=obs.now_ns), AlertSettings()) == []


def _check(day: date, symbol: str, verdict: str, recovered: int = 0) -> DayCheck:
    return DayCheck(day, symbol, 10, 1, 10, 10, -1, recovered, 0, verdict, "", "t", 0)  # type: ignore[arg-type]


def test_days_are_summarized_oldest_first_with_their_symbols_by_verdict():
    d1, d2 = date(2021, 3, 1), date(2021, 3, 2)
    days = summarize_days([_check(d2, "B", "complete", 3), _check(d1, "A", "incomplete"), _check(d2, "A", "excess"),
                           _check(d1, "B", "complete", 2)])
    assert [(d.day, d.complete, d.incomplete, d.excess, d.trades_recovered) for d in days] == [
        (d1, ("B",), ("A",), (), 2), (d2, ("B",), (), ("A",), 3)]
    assert days[1].not_complete == ("A",)


def test_hdt_asks_for_daily_bars_between_two_dates_oldest_first_in_iqfeeds_parameter_order():
    assert history_daily_command("spy", date(2021, 3, 1), date(2021, 3, 1), "Q7") == b"HDT,SPY,20210301,20210301,,1,Q7,100\r\n"
    with pytest.raises(ValueError, match="before the first"):
        history_daily_command("SPY", date(2021, 3, 2), date(2021, 3, 1), "Q8")
    with pytest.raises(InvalidSymbol):
        history_daily_command("SP,Y", date(2021, 3, 1), date(2021, 3, 1), "Q9")


# ------------------------------------------------------------------ the command's refusals


@pytest.mark.parametrize(("day", "now", "message"), [
    (date(2021, 3, 6), et(date(2021, 3, 8), 9), "not a trading day"),
    (date(2021, 3, 1), et(date(2021, 3, 1), 19, 59), "not over yet"),
    (date(1999, 12, 31), et(date(2021, 3, 8), 9), "outside the market calendar"),
], ids=["weekend", "before_its_extended_close", "before_the_calendar"])
def test_the_command_refuses_a_day_that_cannot_be_checked_yet_or_at_all(chdb_store, day, now, message):
    with pytest.raises(UsageError, match=message):
        check_day(load_settings(), chdb_store, day, ["AAPL"], now)

"""Availability per component with a fake clock: minutes, sessions from the NYSE calendar, windows, budget."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import generate_latest

from bus.breaker import BreakerState
from dashboard.uptime_table import uptime_rows
from monitoring.uptime import MINUTE_NS, MinuteLog, availability
from runtime.metrics import engine_registry
from runtime.uptime import UptimeTracker, component_health, session_intervals
from storage.availability import StorageState
from tests.engine_status import idle_status
from tests.events_factory import FakeClock

pytestmark = pytest.mark.timeout(60)

NY = ZoneInfo("America/New_York")
ALL_OK = {"feed": True, "bus": True, "storage": True, "writer": True}


def et(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> int:
    return int(datetime(2026, month, day, hour, minute, second, tzinfo=NY).timestamp()) * 10**9


def run(tracker: UptimeTracker, clock: FakeClock, seconds: int, health: dict[str, bool] = ALL_OK) -> None:
    """Sample every 5 s for ``seconds``, as the engine's job does."""
    for _ in range(seconds // 5):
        tracker.sample(health)
        clock.advance(5)


def test_a_minute_with_one_bad_sample_is_bad_and_only_complete_minutes_count():
    clock = FakeClock(et(11, 25, 10))  # a Wednesday, regular session
    tracker = UptimeTracker("t", 0.999, clock_ns=clock)
    run(tracker, clock, 60)
    run(tracker, clock, 30)
    run(tracker, clock, 5, {**ALL_OK, "feed": False})  # one sample in the second minute
    run(tracker, clock, 25)
    run(tracker, clock, 60)
    run(tracker, clock, 10)  # into the fourth minute, which is not judged yet
    report = tracker.report()
    feed, bus = report.get("feed", "24h", "all"), report.get("bus", "24h", "all")
    assert (feed.good_minutes, feed.tracked_minutes) == (2, 3)
    assert (bus.good_minutes, bus.tracked_minutes) == (3, 3) and bus.ratio == 1.0
    assert report.get("feed", "24h", "session").tracked_minutes == 3  # 10:00 ET is inside the session


def test_minutes_without_any_sample_after_tracking_began_count_as_bad():
    clock = FakeClock(et(11, 25, 10))
    tracker = UptimeTracker("t", 0.999, clock_ns=clock)
    run(tracker, clock, 60)
    clock.advance(9 * 60)  # the process was not running: nothing collected, nothing stored
    run(tracker, clock, 5)
    writer = tracker.report().get("writer", "24h", "all")
    assert (writer.good_minutes, writer.tracked_minutes, writer.bad_minutes) == (1, 10, 9)


def test_a_new_install_starts_without_debt_tracking_begins_at_its_first_minute():
    clock = FakeClock(et(11, 25, 10))
    tracker = UptimeTracker("t", 0.999, clock_ns=clock)
    run(tracker, clock, 125)
    month = tracker.report().get("storage", "30d", "all")
    assert month.tracked_minutes == 2 and month.window_minutes == 30 * 1440
    assert month.ratio == 1.0 and month.budget_left_ratio == 1.0
    assert month.budget_minutes == pytest.approx(43.2)


def test_downtime_outside_market_sessions_counts_around_the_clock_but_not_in_the_session_scope():
    now = et(11, 25, 12)
    log = MinuteLog()
    first = et(11, 25, 2)  # 02:00 ET: no session yet (pre-market opens at 04:00)
    for minute in range(first, now, MINUTE_NS):
        bad_at_night = et(11, 25, 2, 30) <= minute < et(11, 25, 3)  # 30 minutes, market closed
        bad_in_session = et(11, 25, 10) <= minute < et(11, 25, 10, 2)  # 2 minutes, regular session
        log.record("feed", minute, not (bad_at_night or bad_in_session))
    report = availability(log, now + 30 * 10**9, 0.999, session_intervals(now - 30 * 1440 * MINUTE_NS, now))
    around = report.get("feed", "24h", "all")
    session = report.get("feed", "24h", "session")
    assert (around.tracked_minutes, around.bad_minutes) == (600, 32)
    assert (session.tracked_minutes, session.bad_minutes) == (480, 2)  # 04:00 to 12:00 ET
    assert session.ratio == pytest.approx(478 / 480)


def test_the_error_budget_is_a_thousandth_of_the_window_and_goes_negative_once_spent():
    now = et(11, 25, 12)
    log = MinuteLog()
    for minute in range(now - 1440 * MINUTE_NS, now, MINUTE_NS):
        log.record("bus", minute, minute not in (now - 10 * MINUTE_NS, now - 20 * MINUTE_NS))
    day = availability(log, now, 0.999, []).get("bus", "24h", "all")
    assert day.budget_minutes == pytest.approx(1.44)
    assert day.budget_left_minutes == pytest.approx(-0.56) and day.budget_left_ratio < 0
    assert day.ratio == pytest.approx(1438 / 1440)


def test_holidays_weekends_and_early_closes_shape_the_session_minutes():
    intervals = session_intervals(et(11, 26, 0), et(11, 30, 0))  # Thanksgiving Thursday to Monday 00:00
    assert intervals == [(et(11, 27, 4), et(11, 27, 17))]  # Friday only: early close, post-market ends 17:00
    log = MinuteLog()
    log.record("feed", et(11, 26, 0), True)  # tracking began on the holiday
    report = availability(log, et(11, 30, 0), 0.999, intervals)
    assert report.get("feed", "24h", "session").window_minutes == 0  # Sunday: no session at all
    week = report.get("feed", "30d", "session")
    assert week.tracked_minutes == 13 * 60 and week.good_minutes == 0


def test_a_restart_within_a_minute_keeps_a_bad_sample_from_either_process():
    log = MinuteLog()
    minute = et(11, 25, 10)
    log.record("storage", minute, False)  # the process that stopped
    log.record("storage", minute, True)  # the restarted one, same minute
    assert log.good_minutes("storage") == []


def test_component_health_reads_the_present_state_of_each_component():
    idle = idle_status()
    assert component_health(idle) == {"feed": False, "bus": True, "storage": True, "writer": False}
    assert component_health(idle_status(breaker=BreakerState.OPEN))["bus"] is False
    assert component_health(idle_status(storage=StorageState(available=False)))["storage"] is False
    assert component_health(idle_status(storage=StorageState(migrated=False)))["storage"] is False


def test_metrics_and_the_overview_table_show_availability_and_the_budget_left():
    clock = FakeClock(et(11, 25, 10))
    tracker = UptimeTracker("t", 0.999, clock_ns=clock)
    run(tracker, clock, 60)
    run(tracker, clock, 60, {**ALL_OK, "writer": False})
    run(tracker, clock, 5)
    status = replace(idle_status(), uptime=tracker.report())
    text = generate_latest(engine_registry(lambda: status)).decode()
    assert 'tickops_availability_ratio{component="writer",scope="all",window="24h"} 0.5' in text
    assert 'tickops_availability_ratio{component="feed",scope="session",window="30d"} 1.0' in text
    assert 'tickops_availability_minutes{component="writer",scope="all",verdict="bad",window="24h"} 1.0' in text
    assert 'tickops_error_budget_remaining_minutes{component="writer",scope="all",window="30d"} 42.2' in text
    assert "tickops_availability_objective 0.999" in text
    rows = {row["component"]: row for row in uptime_rows(tracker.report())}
    assert rows["writer"]["24 h"] == "50.000%" and rows["feed"]["30 d in sessions"] == "100.000%"
    assert rows["writer"]["30 d budget left"] == "42.2 of 43.2 min"

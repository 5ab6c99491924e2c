"""Uptime minutes survive a restart: stored per minute in ClickHouse (server and chDB) and read back by the next
process with the same instance id; the minutes it was not running count as bad."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from runtime.uptime import UptimeTracker
from storage.health_minutes import load_minutes
from storage.migrate import migrate
from storage.store import StorageError
from tests.events_factory import FakeClock

pytestmark = pytest.mark.timeout(60)

ALL_OK = {"feed": True, "bus": True, "storage": True, "writer": True}


def _run(tracker: UptimeTracker, clock: FakeClock, seconds: int, health: dict[str, bool] = ALL_OK) -> None:
    for _ in range(seconds // 5):
        tracker.sample(health)
        clock.advance(5)


def test_a_restarted_process_continues_the_record_from_storage(store):
    migrate(store)
    clock = FakeClock(int(datetime(2026, 11, 25, 10, tzinfo=ZoneInfo("America/New_York")).timestamp()) * 10**9)
    first = UptimeTracker("edge-1", 0.999, clock_ns=clock)
    _run(first, clock, 120)
    _run(first, clock, 30, {**ALL_OK, "feed": False})  # the third minute: the feed is down for half of it
    first.persist(store)
    assert first.unsaved == 0
    first.close(store)  # the third minute is stored as it stands: bad
    assert len(load_minutes(store, "edge-1", 0)) == 3 * 4

    clock.advance(3 * 60)  # 10:02:30 -> 10:05:30: not running
    second = UptimeTracker("edge-1", 0.999, clock_ns=clock)
    _run(second, clock, 5)
    second.persist(store)  # loads the stored minutes, then stores nothing new yet (no minute closed)
    _run(second, clock, 60)
    report = second.report()
    feed = report.get("feed", "24h", "all")
    bus = report.get("bus", "24h", "all")
    # 10:00, 10:01 good; 10:02 feed bad; 10:03, 10:04 not running (bad); 10:05 restarted, good; 10:06 not over
    assert (bus.tracked_minutes, bus.good_minutes) == (6, 4)
    assert (feed.tracked_minutes, feed.good_minutes) == (6, 3)
    assert report.tracking_since_ns == first.report().tracking_since_ns

    other = UptimeTracker("edge-2", 0.999, clock_ns=clock)  # another instance keeps its own record
    _run(other, clock, 5)
    other.persist(store)
    assert other.report().get("bus", "24h", "all").tracked_minutes == 0


def test_minutes_closed_while_storage_is_down_are_kept_and_stored_when_it_answers(store):
    migrate(store)
    clock = FakeClock()
    tracker = UptimeTracker("edge-3", 0.999, clock_ns=clock)
    _run(tracker, clock, 185)
    assert tracker.unsaved == 3 * 4  # nothing persisted yet: the job only tries while storage is ready
    store.execute(f"RENAME TABLE {store.table('health_minutes')} TO {store.table('health_minutes_away')}")
    with pytest.raises(StorageError):
        tracker.persist(store)
    assert tracker.unsaved == 3 * 4 and tracker.save_failures == 1
    store.execute(f"RENAME TABLE {store.table('health_minutes_away')} TO {store.table('health_minutes')}")
    tracker.persist(store)
    assert tracker.unsaved == 0
    assert sorted(ok for _, _, ok in load_minutes(store, "edge-3", 0)) == [True] * 12

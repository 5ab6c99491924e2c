"""/healthz judges the present: a past incident stays on /metrics, not in the verdict."""

from __future__ import annotations

from bus.breaker import BreakerState
from runtime.health import HealthCheck, RecentIncrease, assess
from storage.availability import StorageState
from tests.engine_status import idle_status
from tests.fake_clock import FakeClock


def test_one_dropped_event_is_down_for_the_window_then_ok_although_the_total_stays():
    clock = FakeClock(1000.0)
    check = HealthCheck(clock, window_s=60)
    assert check(idle_status()).state == "ok"
    dropped = check(idle_status(dropped=1))
    assert dropped.state == "down" and any("dropped" in reason and "1 since start" in reason
                                           for reason in dropped.reasons)
    clock.now += 59
    assert check(idle_status(dropped=1)).state == "down"
    clock.now += 2
    recovered = check(idle_status(dropped=1))
    assert recovered.state == "ok" and recovered.reasons == ()


def test_new_drops_after_recovery_turn_health_down_again():
    clock = FakeClock(1000.0)
    check = HealthCheck(clock, window_s=60)
    check(idle_status(dropped=3))
    clock.now += 120
    assert check(idle_status(dropped=3)).state == "ok"
    clock.now += 1
    assert check(idle_status(dropped=4)).state == "down"


def test_drops_counted_before_the_first_check_are_reported_at_that_check():
    clock = FakeClock(1000.0)
    assert HealthCheck(clock, window_s=60)(idle_status(dropped=7)).state == "down"


def test_a_counter_that_starts_over_is_a_new_baseline_not_an_incident():
    clock = FakeClock(1000.0)
    grew = RecentIncrease(window_s=10, clock=clock)
    assert grew(5)
    clock.now += 11
    assert not grew(2) and not grew(2)
    assert grew(3)


def test_breaker_open_is_degraded_only_while_it_is_open():
    check = HealthCheck(FakeClock(1000.0), window_s=60)
    opened = check(idle_status(breaker=BreakerState.OPEN))
    assert opened.state == "degraded" and any("bus unreachable" in reason for reason in opened.reasons)
    assert check(idle_status(breaker=BreakerState.CLOSED)).state == "ok"


def test_assess_reads_only_the_present():
    assert assess(idle_status(dropped=50), dropping=False).state == "ok"
    assert assess(idle_status(dropped=50), dropping=True).state == "down"


def test_storage_down_is_degraded_naming_storage_and_since_when_until_it_answers_again():
    check = HealthCheck(FakeClock(1000.0), window_s=60)
    down = StorageState(available=False, down_since_ns=1_796_000_000 * 10**9, last_error="Connection refused",
                        migrated=False)
    health = check(idle_status(storage=down))
    assert health.state == "degraded"
    assert health.reasons == ("storage unavailable since 2026-11-30 00:53:20 UTC: Connection refused; "
                              "events wait on the bus",)
    unmigrated = check(idle_status(storage=StorageState(migrated=False, last_error="ACCESS_DENIED")))
    assert unmigrated.state == "degraded" and unmigrated.reasons == (
        "storage schema not migrated yet: ACCESS_DENIED",)
    assert check(idle_status(storage=StorageState())).state == "ok"


def test_a_supervised_iqconnect_with_a_problem_is_degraded_with_the_problem_and_its_state_in_the_details():
    from dataclasses import replace

    from collectors.iqfeed.iqconnect import SupervisorState

    fine = SupervisorState(running=True, pid=42, dtn_connected=True, restarts=0, last_exit_code=None, problem="")
    healthy = assess(replace(idle_status(), iqconnect=fine), dropping=False)
    assert healthy.state == "ok" and healthy.details["iqconnect"]["pid"] == 42
    crashed = replace(fine, running=False, restarts=2, last_exit_code=3, problem="IQConnect exited with code 3")
    verdict = assess(replace(idle_status(), iqconnect=crashed), dropping=False)
    assert verdict.state == "degraded"
    assert "IQConnect: IQConnect exited with code 3 (restarted 2 times)" in verdict.reasons
    assert verdict.details["iqconnect"] == {"running": False, "pid": 42, "dtn_connected": True, "restarts": 2,
                                            "last_exit_code": 3, "problem": "IQConnect exited with code 3"}
    assert "iqconnect" not in assess(idle_status(), dropping=False).details  # simulator or unsupervised

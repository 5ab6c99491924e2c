"""Circuit breaker: closed -> open on failure -> half-open after the timeout -> closed on a good probe."""

from __future__ import annotations

import pytest

from bus.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_failure_opens_it_and_the_reset_timeout_makes_it_half_open(clock):
    breaker = CircuitBreaker("t", reset_timeout_s=1.0, max_reset_timeout_s=4.0, clock=clock)
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.99
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.01
    assert breaker.state is BreakerState.HALF_OPEN


def test_a_good_probe_closes_it_and_a_bad_one_reopens_with_a_doubled_capped_timeout(clock):
    breaker = CircuitBreaker("t", reset_timeout_s=1.0, max_reset_timeout_s=3.0, clock=clock)
    breaker.record_failure()
    waits = []
    for _ in range(3):
        clock.now += breaker.snapshot().reset_timeout_s
        assert breaker.state is BreakerState.HALF_OPEN
        breaker.record_failure()
        waits.append(breaker.snapshot().reset_timeout_s)
    assert waits == [2.0, 3.0, 3.0]
    clock.now += 3.0
    breaker.record_success()
    snapshot = breaker.snapshot()
    assert snapshot.state is BreakerState.CLOSED and snapshot.reset_timeout_s == 1.0 and snapshot.opened_total == 4


def test_a_late_success_does_not_close_an_open_breaker(clock):
    breaker = CircuitBreaker("t", clock=clock)
    breaker.record_failure()
    breaker.record_success()  # a delivery report from before the outage
    assert breaker.state is BreakerState.OPEN


def test_the_failure_threshold_counts_consecutive_failures(clock):
    breaker = CircuitBreaker("t", failure_threshold=3, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_state_changes_are_logged_for_the_operator(clock, caplog):
    breaker = CircuitBreaker("kafka", clock=clock)
    with caplog.at_level("INFO", logger="bus.breaker"):
        breaker.record_failure()
    (record,) = caplog.records
    assert record.levelname == "WARNING" and record.to_state == "open" and record.breaker == "kafka"


def test_inconsistent_timeouts_are_rejected():
    with pytest.raises(ValueError):
        CircuitBreaker("t", reset_timeout_s=5.0, max_reset_timeout_s=1.0)

import logging
import threading
import time

import pytest

from runtime.jobs import JobRunner
from tests.fake_clock import FakeClock


def test_failing_step_is_counted_and_backs_off_exponentially_then_recovers():
    clock = FakeClock()
    runner = JobRunner(clock=clock)
    outcomes = iter([RuntimeError("broker down"), RuntimeError("broker down"), None])
    calls = []

    def step():
        calls.append(clock.now)
        outcome = next(outcomes)
        if outcome:
            raise outcome

    runner.add("flush", step, interval_s=1.0, max_backoff_s=30)
    runner.run_now("flush")  # fails: backoff 1 s
    status = runner.status()[0]
    assert status.failures == 1 and status.backing_off and "broker down" in status.last_error
    clock.now = 0.5
    runner.run_now("flush")  # skipped while backing off
    assert len(calls) == 1
    clock.now = 1.0
    runner.run_now("flush")  # fails again: backoff 2 s
    clock.now = 2.5
    runner.run_now("flush")
    assert len(calls) == 2
    clock.now = 3.0
    runner.run_now("flush")  # succeeds
    status = runner.status()[0]
    assert len(calls) == 3 and status.failures == 2 and status.consecutive_failures == 0 and not status.backing_off


@pytest.mark.timeout(10)
def test_jobs_run_on_the_background_scheduler_until_shutdown():
    runner = JobRunner()
    ticked = threading.Event()
    runner.add("tick", ticked.set, interval_s=0.05)
    runner.start()
    try:
        assert ticked.wait(5)
    finally:
        runner.shutdown()
    runs = runner.status()[0].runs
    time.sleep(0.2)
    assert runner.status()[0].runs == runs


def test_duplicate_job_names_are_rejected():
    runner = JobRunner()
    runner.add("a", lambda: None, 1)
    with pytest.raises(ValueError, match="already"):
        runner.add("a", lambda: None, 1)


@pytest.mark.timeout(10)
def test_loop_job_repeats_back_to_back_until_shutdown_and_restarts_after_a_failure():
    runner = JobRunner()
    calls = []
    failed = threading.Event()

    def step():
        calls.append(time.monotonic())
        if len(calls) == 50:
            failed.set()
            raise RuntimeError("writer crashed")
        time.sleep(0.001)

    runner.add("writer", step, interval_s=0.05, max_backoff_s=0.1, loop=True)
    runner.start()
    try:
        assert failed.wait(5)
        deadline = time.monotonic() + 5
        while len(calls) < 120 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        runner.shutdown()
    status = runner.status()[0]
    assert len(calls) >= 120, "the loop did not run back to back or was not restarted"
    assert status.failures == 1 and "writer crashed" in status.last_error
    settled = len(calls)
    time.sleep(0.1)
    assert len(calls) == settled, "a loop job kept running after shutdown"


@pytest.mark.timeout(10)
def test_a_loop_job_starts_with_the_scheduler_not_one_interval_later():
    """The producer's loop serves delivery reports: a first second without it delayed every early event."""
    runner = JobRunner()
    started = threading.Event()
    runner.add("producer", lambda: (started.set(), time.sleep(0.001)), interval_s=5, loop=True)
    begun = time.monotonic()
    runner.start()
    try:
        assert started.wait(4), "the loop waited for its interval"
        assert time.monotonic() - begun < 2
    finally:
        runner.shutdown()


def test_job_runs_log_at_debug_only_so_info_stays_quiet(caplog):
    runner = JobRunner()
    ran = threading.Event()
    runner.add("tick", ran.set, interval_s=0.05)
    with caplog.at_level(logging.DEBUG):
        runner.start()
        try:
            assert ran.wait(5)
            time.sleep(0.3)  # several runs
        finally:
            runner.shutdown()
    loud = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.INFO]
    assert not loud, f"job runs logged at INFO or above: {loud[:3]}"
    runs = [r for r in caplog.records if getattr(r, "job", None) == "tick"]
    assert len(runs) >= 2 and all(r.levelno == logging.DEBUG for r in runs), "each job run is visible at DEBUG"

"""Counter windows: what a counter did recently, with a fake clock."""

from __future__ import annotations

import pytest

from monitoring.counter_window import CounterWindow


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_single_drop_is_seen_within_the_window_and_forgotten_after_it():
    clock = FakeClock()
    dropped = CounterWindow(keep_s=900, clock=clock)
    for value in (0, 0, 1, 1):
        dropped.record(value)
        clock.now += 5
    assert dropped.change(900) == 1
    for _ in range(200):  # 1000 s of no further drops
        dropped.record(1)
        clock.now += 5
    assert dropped.change(900) == 0


def test_rate_per_s_over_a_window():
    clock = FakeClock()
    errors = CounterWindow(keep_s=120, clock=clock)
    for second in range(100):
        errors.record(second * 3)  # 3 errors a second
        clock.now += 1
    assert errors.rate_per_s(60) == pytest.approx(3)


def test_samples_within_a_second_replace_each_other_so_memory_stays_bounded():
    clock = FakeClock()
    spool = CounterWindow(keep_s=60, clock=clock)
    for step in range(10_000):
        spool.record(step)
        clock.now += 0.05  # 20 records a second for 500 s
    assert len(spool._samples) <= 63
    assert spool.change(10) == pytest.approx(200, abs=21)


def test_an_empty_window_reports_no_change():
    window = CounterWindow(keep_s=60, clock=FakeClock())
    assert window.change(60) == 0 and window.rate_per_s(60) == 0


def test_a_counter_window_with_a_start_sees_what_happened_before_its_first_record():
    clock = FakeClock()
    dropped = CounterWindow(keep_s=900, clock=clock, start=0)
    clock.now += 0.2
    dropped.record(7)  # the first look already finds drops
    assert dropped.change(900) == 7

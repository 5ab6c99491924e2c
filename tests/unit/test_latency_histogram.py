"""The latency histogram: fine buckets, sliding windows and per-minute series with a fake clock."""

from __future__ import annotations

import random

from bus.latency import SECOND_SLOTS, LatencyHistogram, bucket_of, bucket_upper_ns

MS = 1_000_000


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_every_value_falls_in_a_bucket_whose_upper_bound_is_within_one_sixteenth_above_it():
    rng = random.Random(3)
    values = list(range(0, 200)) + [rng.randrange(1, 10**12) for _ in range(20_000)]
    for value in values:
        upper = bucket_upper_ns(bucket_of(value))
        assert value <= upper <= value + value / 16 + 1, value
        assert bucket_of(upper) == bucket_of(value)
        assert bucket_of(upper + 1) == bucket_of(value) + 1


def test_percentiles_tell_12_ms_from_24_ms():
    clock = FakeClock()
    twelve, twenty_four = LatencyHistogram(clock), LatencyHistogram(clock)
    twelve.observe_many([12 * MS] * 100)
    twenty_four.observe_many([24 * MS] * 100)
    p12, p24 = twelve.snapshot().percentile(0.99), twenty_four.snapshot().percentile(0.99)
    assert 12 * MS <= p12 < 13 * MS
    assert 24 * MS <= p24 < 26 * MS


def test_the_p99_of_a_mixed_sample_is_the_slow_tail():
    histogram = LatencyHistogram(FakeClock())
    histogram.observe_many([1 * MS] * 990 + [80 * MS] * 10)
    snapshot = histogram.snapshot()
    assert snapshot.percentile(0.5) < 1.07 * MS
    assert 80 * MS <= snapshot.percentile(0.999) <= 80 * MS  # capped at the maximum seen
    assert snapshot.count == 1000 and snapshot.max_ns == 80 * MS
    assert snapshot.mean_ns() == (990 * MS + 800 * MS) / 1000


def test_the_window_forgets_what_is_older_than_it_while_totals_keep_it():
    clock = FakeClock()
    histogram = LatencyHistogram(clock)
    histogram.observe_many([900 * MS] * 50)  # a slow start-up
    clock.now += 61
    histogram.observe_many([2 * MS] * 50)
    assert histogram.window(60).percentile(0.99) < 3 * MS
    assert histogram.window(60).count == 50
    assert histogram.snapshot().percentile(0.99) >= 900 * MS
    assert histogram.window(120).count == 100


def test_the_window_never_reaches_back_beyond_the_seconds_it_keeps():
    clock = FakeClock()
    histogram = LatencyHistogram(clock)
    for _ in range(SECOND_SLOTS + 10):
        histogram.observe_many([MS])
        clock.now += 1
    assert histogram.window(10_000).count == SECOND_SLOTS
    assert histogram.snapshot().count == SECOND_SLOTS + 10


def test_minutes_give_one_snapshot_per_minute_for_the_last_hour():
    clock = FakeClock(1_800_000_000.0 - 1_800_000_000 % 60)
    histogram = LatencyHistogram(clock)
    for minute in range(70):
        histogram.observe_many([(minute + 1) * MS] * 10)
        clock.now += 60
    clock.now -= 60
    series = histogram.minutes(60)
    assert len(series) == 60  # the current minute and the 59 before it
    starts = [start for start, _ in series]
    assert starts == sorted(starts) and all(b - a == 60 for a, b in zip(starts, starts[1:]))
    assert series[-1][1].max_ns == 70 * MS and series[-1][1].count == 10


def test_minus_gives_what_was_observed_between_two_snapshots():
    histogram = LatencyHistogram(FakeClock())
    histogram.observe_many([5 * MS] * 10)
    before = histogram.snapshot()
    histogram.observe_many([50 * MS] * 4)
    delta = histogram.snapshot().minus(before)
    assert delta.count == 4 and delta.sum_ns == 200 * MS
    assert 50 * MS <= delta.percentile(0.5) <= 50 * MS


def test_count_at_most_never_counts_a_value_above_the_bound():
    histogram = LatencyHistogram(FakeClock())
    histogram.observe_many([99 * MS, 100 * MS, 101 * MS])
    assert histogram.snapshot().count_at_most(100 * MS) <= 2
    assert histogram.snapshot().count_at_most(110 * MS) == 3


def test_negative_values_from_disagreeing_clocks_count_as_zero():
    histogram = LatencyHistogram(FakeClock())
    histogram.observe_many([-5, 3])
    snapshot = histogram.snapshot()
    assert snapshot.count == 2 and snapshot.percentile(0.5) == 0 and snapshot.max_ns == 3

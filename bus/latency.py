"""Latency histograms fine enough to tell 12 ms from 24 ms, kept per second and per minute.

Log-linear buckets (the HDR-histogram idea): every power of two is cut into 16 equal
buckets, so a bucket's width is at most 1/16 of its value and a percentile read from
it errs by under 6.25 %, from nanoseconds to minutes, in a few hundred buckets. Values
below 32 ns get a bucket each.

Besides the totals since start, observations are also kept per wall-clock second (for
the last :data:`SECOND_SLOTS` seconds) and per minute (for the last
:data:`MINUTE_SLOTS` minutes): alert rules judge a sliding window (a cumulative
histogram would let the first slow minute after start-up, or one bad hour, speak for
ever), and the Latency page draws per-minute p50/p99/max over the last hour.

Plain data rather than a prometheus_client Histogram so each producer and writer owns
its numbers (tests build many; the global registry would reject duplicates) and the
dashboard reads percentiles directly; ``/metrics`` exports coarse buckets from it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_SUB_BITS = 4
_SUB = 1 << _SUB_BITS  # buckets per power of two
_EXACT = _SUB * 2  # values below this have a bucket each
SECOND_SLOTS = 300
MINUTE_SLOTS = 60


def bucket_of(value_ns: int) -> int:
    """The bucket index of a value (negative values, from two hosts' clocks disagreeing, count as 0)."""
    if value_ns < _EXACT:
        return max(value_ns, 0)
    shift = value_ns.bit_length() - _SUB_BITS - 1
    return ((shift + 1) << _SUB_BITS) + (value_ns >> shift) - _SUB


def bucket_upper_ns(index: int) -> int:
    """The largest value that falls in bucket ``index``."""
    if index < _EXACT:
        return index
    shift = (index >> _SUB_BITS) - 1
    mantissa = (index & (_SUB - 1)) + _SUB
    return ((mantissa + 1) << shift) - 1


@dataclass(frozen=True)
class HistogramSnapshot:
    """Counts per bucket index, ascending; ``percentile`` reads bucket upper bounds (the slow, safe side)."""

    buckets: tuple[tuple[int, int], ...] = ()
    count: int = 0
    sum_ns: int = 0
    max_ns: int = 0

    def percentile(self, q: float) -> int | None:
        """Upper bound (ns) of the bucket holding the ``q`` quantile (0 < q <= 1), capped at the maximum seen;
        None when empty."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for index, count in self.buckets:
            seen += count
            if seen >= rank:
                return min(bucket_upper_ns(index), self.max_ns)
        return self.max_ns

    def mean_ns(self) -> float | None:
        return self.sum_ns / self.count if self.count else None

    def count_at_most(self, bound_ns: int) -> int:
        """Values whose whole bucket lies at or below ``bound_ns`` (never counts a value above it)."""
        return sum(count for index, count in self.buckets if bucket_upper_ns(index) <= bound_ns)

    def cumulative(self, bounds_ns: Iterable[int]) -> list[tuple[int, int]]:
        """(bound, values at or below it) for coarse export, e.g. Prometheus ``le`` buckets."""
        return [(bound, self.count_at_most(bound)) for bound in bounds_ns]

    def minus(self, earlier: HistogramSnapshot) -> HistogramSnapshot:
        """What was observed between ``earlier`` and this snapshot of the same histogram (max: this one's)."""
        before = dict(earlier.buckets)
        buckets = tuple((i, c - before.get(i, 0)) for i, c in self.buckets if c - before.get(i, 0) > 0)
        return HistogramSnapshot(buckets, self.count - earlier.count, self.sum_ns - earlier.sum_ns, self.max_ns)


class _Slot:
    """Observations of one period (a second, a minute, or all time)."""

    __slots__ = ("start", "counts", "count", "sum", "max")

    def __init__(self, start: int) -> None:
        self.start = start
        self.counts: dict[int, int] = {}
        self.count = self.sum = self.max = 0

    def add(self, counts: dict[int, int], count: int, total: int, top: int) -> None:
        mine = self.counts
        for index, n in counts.items():
            mine[index] = mine.get(index, 0) + n
        self.count += count
        self.sum += total
        if top > self.max:
            self.max = top


def _merge(slots: Iterable[_Slot]) -> HistogramSnapshot:
    counts: dict[int, int] = {}
    count = total = top = 0
    for slot in slots:
        for index, n in slot.counts.items():
            counts[index] = counts.get(index, 0) + n
        count += slot.count
        total += slot.sum
        top = max(top, slot.max)
    return HistogramSnapshot(tuple(sorted(counts.items())), count, total, top)


class LatencyHistogram:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """``clock`` is wall-clock seconds: slots are labelled by the second and minute they cover."""
        self._clock = clock
        self._total = _Slot(0)
        self._seconds: deque[_Slot] = deque(maxlen=SECOND_SLOTS)
        self._minutes: deque[_Slot] = deque(maxlen=MINUTE_SLOTS)
        self._lock = threading.Lock()

    def observe_many(self, values_ns: Iterable[int]) -> None:
        counts: dict[int, int] = {}
        count = total = top = 0
        for value in values_ns:
            if value < _EXACT:
                value = max(value, 0)
                index = value
            else:
                shift = value.bit_length() - _SUB_BITS - 1
                index = ((shift + 1) << _SUB_BITS) + (value >> shift) - _SUB
            counts[index] = counts.get(index, 0) + 1
            count += 1
            total += value
            if value > top:
                top = value
        if not count:
            return
        now = int(self._clock())
        with self._lock:
            self._total.add(counts, count, total, top)
            self._slot(self._seconds, now).add(counts, count, total, top)
            self._slot(self._minutes, now - now % 60).add(counts, count, total, top)

    @staticmethod
    def _slot(ring: deque[_Slot], start: int) -> _Slot:
        if not ring or ring[-1].start != start:
            ring.append(_Slot(start))
        return ring[-1]

    def snapshot(self) -> HistogramSnapshot:
        """Everything observed since construction."""
        with self._lock:
            return _merge([self._total])

    def window(self, seconds: int) -> HistogramSnapshot:
        """What was observed in the last ``seconds`` (at most :data:`SECOND_SLOTS`), this second included."""
        since = int(self._clock()) - seconds
        with self._lock:
            return _merge(slot for slot in self._seconds if slot.start > since)

    def minutes(self, count: int = 60) -> list[tuple[int, HistogramSnapshot]]:
        """(minute start in epoch s, that minute's snapshot) for the last ``count`` minutes, the current one
        included, that saw values."""
        now = int(self._clock())
        since = now - now % 60 - 60 * count
        with self._lock:
            return [(slot.start, _merge([slot])) for slot in self._minutes if slot.start > since]

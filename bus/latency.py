"""A small, lock-protected latency histogram with fixed buckets, for recv->ack and recv->stored.

Plain data (bucket bounds and counts) rather than a prometheus_client Histogram so each
producer and writer instance owns its numbers (tests build many; the global registry
would reject duplicates) and the dashboard can read percentiles directly; the metrics
endpoint can export the same buckets.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

_MS = 1_000_000
DEFAULT_BOUNDS_NS: tuple[int, ...] = tuple(
    int(ms * _MS)
    for ms in (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000)
)


@dataclass(frozen=True)
class HistogramSnapshot:
    """Counts per bucket: ``counts[i]`` are values <= ``bounds_ns[i]``; the last count is the overflow."""

    bounds_ns: tuple[int, ...]
    counts: tuple[int, ...]
    count: int
    sum_ns: int
    max_ns: int

    def percentile(self, q: float) -> int | None:
        """Upper bound (ns) of the bucket holding the ``q`` quantile (0 < q <= 1); None when empty.

        Reporting the bucket's upper bound errs on the slow side, which is the safe side
        for an SLA check; in the overflow bucket the observed maximum is returned.
        """
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for index, bucket in enumerate(self.counts):
            seen += bucket
            if seen >= rank and bucket:
                return self.bounds_ns[index] if index < len(self.bounds_ns) else self.max_ns
        return self.max_ns


class LatencyHistogram:
    def __init__(self, bounds_ns: tuple[int, ...] = DEFAULT_BOUNDS_NS) -> None:
        self._bounds = bounds_ns
        self._counts = [0] * (len(bounds_ns) + 1)
        self._count = 0
        self._sum = 0
        self._max = 0
        self._lock = threading.Lock()

    def observe_many(self, values_ns: Iterable[int]) -> None:
        bounds = self._bounds
        with self._lock:
            for value in values_ns:
                value = max(value, 0)  # clocks of two hosts can disagree by a little
                self._counts[bisect_left(bounds, value)] += 1
                self._count += 1
                self._sum += value
                if value > self._max:
                    self._max = value

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            return HistogramSnapshot(self._bounds, tuple(self._counts), self._count, self._sum, self._max)

"""What a counter did over a recent window: the base of rules that judge now, not since start.

A cumulative counter (events dropped, malformed lines, spool bytes) answers "did this
ever happen", which makes an alert fire for ever after one incident and a health check
stay down. Rules ask instead how much it rose within the last minutes: this keeps
timestamped samples (at most one a second, for ``keep_s``) and answers that.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class CounterWindow:
    def __init__(self, keep_s: float, clock: Callable[[], float] = time.monotonic, *, start: float | None = None) -> None:
        """``start``: the value at construction, for a counter that counts from it (a process's counters
        start at 0, so a drop before the first :meth:`record` still shows); leave None for a gauge."""
        self._keep_s = keep_s
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()
        if start is not None:
            self._samples.append((clock(), start))

    def record(self, value: float) -> None:
        """Note the counter's current value; samples closer than a second replace the latest one."""
        now = self._clock()
        with self._lock:
            if len(self._samples) > 1 and now - self._samples[-2][0] < 1.0:
                self._samples[-1] = (now, value)
            else:
                self._samples.append((now, value))
            while len(self._samples) > 2 and now - self._samples[1][0] >= self._keep_s:
                self._samples.popleft()

    def change(self, window_s: float) -> float:
        """Latest value minus the value ``window_s`` ago (or the oldest sample kept, if younger); 0 when empty."""
        with self._lock:
            if not self._samples:
                return 0.0
            now, latest = self._samples[-1]
            base = self._samples[0][1]
            for at, value in reversed(self._samples):
                if now - at >= window_s:
                    base = value
                    break
            return latest - base

    def rate_per_s(self, window_s: float) -> float:
        """Average change per second over ``window_s`` (over what is kept, if that is shorter)."""
        with self._lock:
            if len(self._samples) < 2:
                return 0.0
            now, latest = self._samples[-1]
            start, base = self._samples[0]
            for at, value in reversed(self._samples):
                if now - at >= window_s:
                    start, base = at, value
                    break
        return (latest - base) / (now - start) if now > start else 0.0

"""Log throttling shared by the producer and its spool: loud about trouble without flooding the log."""

from __future__ import annotations

from collections.abc import Callable


class Throttle:
    """At most one True per ``interval_s``: during an outage or a full disk every failure is counted,
    but only one line a second is logged (with the running total)."""

    def __init__(self, interval_s: float, clock: Callable[[], float]) -> None:
        self._interval, self._clock, self._last = interval_s, clock, float("-inf")

    def ready(self) -> bool:
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            return True
        return False

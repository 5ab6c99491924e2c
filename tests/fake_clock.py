"""A monotonic clock (seconds) that only moves when a test says so, for code that takes a ``clock``."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

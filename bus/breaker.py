"""Circuit breaker for the producer: stop feeding a broker that is down, probe it, then resume.

closed: messages go to the broker; ``failure_threshold`` consecutive failures open it.
open: messages go to the spool; after ``reset_timeout_s`` it becomes half-open.
half-open: one probe decides: success closes it, failure opens it again with the
timeout doubled (up to ``max_reset_timeout_s``), so a long outage costs few probes while
a short one is noticed within a second. Pure logic with the clock passed in; the state
and its history (opened count, time of the last change) are what the dashboard shows.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerSnapshot:
    state: BreakerState
    consecutive_failures: int
    opened_total: int
    since_s: float  # clock value of the last state change
    reset_timeout_s: float


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 1,
        reset_timeout_s: float = 1.0,
        max_reset_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout_s <= 0 or max_reset_timeout_s < reset_timeout_s:
            raise ValueError("failure_threshold >= 1 and 0 < reset_timeout_s <= max_reset_timeout_s are required")
        self.name = name
        self._threshold = failure_threshold
        self._initial_reset = reset_timeout_s
        self._max_reset = max_reset_timeout_s
        self._reset = reset_timeout_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_total = 0
        self._since = clock()
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        """Current state; an open breaker whose timeout elapsed reads as half-open."""
        with self._lock:
            return self._current()

    def _current(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._since >= self._reset:
            self._move(BreakerState.HALF_OPEN)
        return self._state

    def record_success(self) -> None:
        """A delivery or probe succeeded. An open breaker stays open: only a half-open probe closes it."""
        if self._state is BreakerState.CLOSED and not self._failures:
            return  # the common case, once per delivered message: no lock
        with self._lock:
            state = self._current()
            self._failures = 0
            if state is BreakerState.HALF_OPEN:
                self._reset = self._initial_reset
                self._move(BreakerState.CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            state = self._current()
            self._failures += 1
            if state is BreakerState.HALF_OPEN:
                self._reset = min(self._reset * 2, self._max_reset)
                self._open()
            elif state is BreakerState.CLOSED and self._failures >= self._threshold:
                self._open()

    def _open(self) -> None:
        self._opened_total += 1
        self._move(BreakerState.OPEN)

    def _move(self, state: BreakerState) -> None:
        previous, self._state, self._since = self._state, state, self._clock()
        level = logging.WARNING if state is BreakerState.OPEN else logging.INFO
        log.log(
            level,
            "circuit breaker state change",
            extra={"breaker": self.name, "from_state": previous.value, "to_state": state.value,
                   "failures": self._failures, "reset_timeout_s": self._reset},
        )

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            state = self._current()
            return BreakerSnapshot(state, self._failures, self._opened_total, self._since, self._reset)

"""Availability against an objective (99.9 %): the share of good minutes per component, and the budget left.

A minute is good for a component when every health sample taken in it said ok. Minutes
with no sample at all, after tracking began, count as bad: the process was not running
(or its sampler was stuck), so nothing was collected or stored then. Minutes before the
first recorded one are not counted at all, so a fresh install does not start in debt.

Two scopes: around the clock (``all``), and only the minutes inside a market session
(``session``: the intervals are passed in, this module knows no calendar). Two windows:
the last 24 hours and the last 30 days, both ending at the start of the current minute
(only complete minutes are judged). The error budget is ``(1 - objective)`` of the
window's in-scope minutes; what is left of it is the budget minus the bad minutes seen.

Pure: minutes, intervals and ``now_ns`` come in; nothing here reads a clock or storage.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MINUTE_NS = 60_000_000_000
COMPONENTS: tuple[str, ...] = ("feed", "bus", "storage", "writer")
WINDOWS: dict[str, int] = {"24h": 1440 * MINUTE_NS, "30d": 30 * 1440 * MINUTE_NS}
SCOPES: tuple[str, ...] = ("all", "session")

Interval = tuple[int, int]  # [start_ns, end_ns), minute aligned


def minute_of(ts_ns: int) -> int:
    """The start of the minute ``ts_ns`` falls in."""
    return ts_ns - ts_ns % MINUTE_NS


@dataclass(frozen=True)
class Availability:
    """One component over one window and scope."""

    component: str
    window: str
    scope: str
    objective: float
    good_minutes: int
    tracked_minutes: int  # in-scope minutes since tracking began (good + bad)
    window_minutes: int  # in-scope minutes of the whole window, tracked or not

    @property
    def bad_minutes(self) -> int:
        return self.tracked_minutes - self.good_minutes

    @property
    def ratio(self) -> float | None:
        """Good / tracked; None before a single in-scope minute was tracked."""
        return self.good_minutes / self.tracked_minutes if self.tracked_minutes else None

    @property
    def budget_minutes(self) -> float:
        """Bad minutes the objective allows over the whole window."""
        return (1.0 - self.objective) * self.window_minutes

    @property
    def budget_left_minutes(self) -> float:
        """Negative once the budget is spent."""
        return self.budget_minutes - self.bad_minutes

    @property
    def budget_left_ratio(self) -> float | None:
        """Share of the budget still unspent (1 = untouched, <= 0 = spent); None for an empty window."""
        budget = self.budget_minutes
        return self.budget_left_minutes / budget if budget > 0 else None


@dataclass(frozen=True)
class UptimeReport:
    objective: float
    computed_ns: int
    tracking_since_ns: int | None  # the first minute recorded (None: nothing yet)
    rows: tuple[Availability, ...]

    def get(self, component: str, window: str, scope: str) -> Availability:
        for row in self.rows:
            if (row.component, row.window, row.scope) == (component, window, scope):
                return row
        raise KeyError(f"no availability for {component}/{window}/{scope}")


class MinuteLog:
    """Per component, per minute: whether it was good. Thread-safe; a minute recorded twice (a restart
    within it, or a row loaded from storage) is good only if every record says so."""

    def __init__(self, components: Sequence[str] = COMPONENTS) -> None:
        self.components = tuple(components)
        self._lock = threading.Lock()
        self._minutes: dict[str, dict[int, bool]] = {c: {} for c in self.components}

    def record(self, component: str, minute_ns: int, ok: bool) -> None:
        if component not in self._minutes:
            return  # a component an older or newer version tracked: not ours to judge
        with self._lock:
            held = self._minutes[component]
            held[minute_ns] = held.get(minute_ns, True) and ok

    def record_many(self, rows: Iterable[tuple[str, int, bool]]) -> None:
        for component, minute_ns, ok in rows:
            self.record(component, minute_ns, ok)

    def prune(self, before_ns: int) -> None:
        """Forget minutes older than ``before_ns`` (the longest window)."""
        with self._lock:
            for held in self._minutes.values():
                for minute in [m for m in held if m < before_ns]:
                    del held[minute]

    def first_minute(self) -> int | None:
        with self._lock:
            firsts = [min(held) for held in self._minutes.values() if held]
        return min(firsts) if firsts else None

    def good_minutes(self, component: str) -> list[int]:
        """The good minutes of ``component``, sorted."""
        with self._lock:
            return sorted(m for m, ok in self._minutes[component].items() if ok)


def clip(intervals: Iterable[Interval], start_ns: int, end_ns: int) -> list[Interval]:
    """The parts of sorted ``intervals`` inside [start_ns, end_ns)."""
    clipped = []
    for begin, end in intervals:
        begin, end = max(begin, start_ns), min(end, end_ns)
        if begin < end:
            clipped.append((begin, end))
    return clipped


def _minutes(intervals: Iterable[Interval]) -> int:
    return sum((end - begin) // MINUTE_NS for begin, end in intervals)


def _count_in(sorted_minutes: Sequence[int], intervals: Iterable[Interval]) -> int:
    return sum(bisect.bisect_left(sorted_minutes, end) - bisect.bisect_left(sorted_minutes, begin)
               for begin, end in intervals)


def availability(log: MinuteLog, now_ns: int, objective: float, sessions: Sequence[Interval]) -> UptimeReport:
    """Every component over every window and scope; ``sessions`` must cover the longest window, sorted."""
    end = minute_of(now_ns)
    first = log.first_minute()
    rows = []
    for component in log.components:
        good = log.good_minutes(component)
        for window, length in WINDOWS.items():
            start = end - length
            tracked_from = max(start, first) if first is not None else end
            for scope in SCOPES:
                whole = [(start, end)] if scope == "all" else clip(sessions, start, end)
                tracked = clip(whole, tracked_from, end)
                rows.append(Availability(component, window, scope, objective, good_minutes=_count_in(good, tracked),
                                         tracked_minutes=_minutes(tracked), window_minutes=_minutes(whole)))
    return UptimeReport(objective, now_ns, first, tuple(rows))

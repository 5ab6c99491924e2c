"""The 99.9 % objective, tracked: each component's health sampled every few seconds, judged per minute,
persisted per minute, and turned into availability over 24 h and 30 days (monitoring/uptime.py).

    uptime job (every SAMPLE_INTERVAL_S) ──► component_health(EngineStatus) ──► current minute
        minute over ──► MinuteLog (memory, 30 days) + unsaved rows ──► health_minutes (when storage is ready)
                    ──► availability report (cached until the next minute: status, /metrics, Overview)
    first time storage is ready ──► the stored minutes of this instance are merged in (a restart keeps them)

What "ok" means per component is :func:`component_health`: the same present-tense checks as
``/healthz``, one verdict per component. The minutes are this instance's (``instance_id``):
a restarted process with the same id continues the record, and the minutes it was not
running count as bad (nothing was collected then).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from bus.breaker import BreakerState
from collectors.market_hours import eastern_date, trading_day
from monitoring.uptime import COMPONENTS, MINUTE_NS, WINDOWS, Interval, MinuteLog, UptimeReport, availability, minute_of
from runtime.status import EngineStatus
from storage.health_minutes import HealthMinute, load_minutes, save_minutes
from storage.store import StorageError, Store

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 5.0
_KEEP_NS = max(WINDOWS.values()) + 1440 * MINUTE_NS  # the longest window, plus a day of slack


def component_health(status: EngineStatus) -> dict[str, bool]:
    """Whether each component is ok now: feed (Level 1 up, DTN not down), bus (breaker closed, spool
    writing), storage (answers, schema migrated), writer (built and not retrying a batch)."""
    producer = status.producer
    return {
        "feed": status.feed is not None and status.feed.connected,
        "bus": producer.breaker.state is BreakerState.CLOSED and not producer.spool.failing,
        "storage": status.storage.ready,
        "writer": status.writer is not None and not status.writer.retrying,
    }


def session_intervals(start_ns: int, end_ns: int) -> list[Interval]:
    """The NYSE sessions (pre-market open to post-market close) meeting [start_ns, end_ns), oldest first."""
    intervals: list[Interval] = []
    day, last = eastern_date(start_ns), eastern_date(end_ns)
    while day <= last:
        sessions = trading_day(day)
        if sessions is not None and sessions.post_close_ns > start_ns and sessions.pre_open_ns < end_ns:
            intervals.append((sessions.pre_open_ns, sessions.post_close_ns))
        day += timedelta(days=1)
    return intervals


class UptimeTracker:
    """Thread-safe: the uptime job samples and persists, status and pages read :meth:`report`."""

    def __init__(self, instance_id: str, objective: float, *, clock_ns: Callable[[], int] = time.time_ns,
                 sessions: Callable[[int, int], list[Interval]] = session_intervals,
                 components: tuple[str, ...] = COMPONENTS) -> None:
        """``components``: those this process runs (a collector whose writer runs apart judges no writer)."""
        self.instance_id = instance_id
        self.objective = objective
        self._clock_ns = clock_ns
        self._sessions = sessions
        self._components = components
        self._log = MinuteLog(components)
        self._lock = threading.Lock()
        self._minute: int | None = None  # the minute being sampled
        self._current: dict[str, list[int]] = {}  # component -> [all samples ok (0/1), samples]
        self._unsaved: list[HealthMinute] = []
        self._loaded = False
        self._report: UptimeReport | None = None
        self.save_failures = 0

    def sample(self, health: dict[str, bool]) -> None:
        """One health sample now; a new minute closes the previous one."""
        now = self._clock_ns()
        minute = minute_of(now)
        with self._lock:
            if self._minute is not None and minute != self._minute:
                self._close_minute()
            self._minute = minute
            for component in self._components:
                ok, samples = self._current.get(component, [1, 0])
                self._current[component] = [ok & int(health.get(component, False)), samples + 1]
            stale = self._report is None or minute_of(self._report.computed_ns) != minute
        if stale:
            self._recompute(now)

    def _close_minute(self) -> None:
        assert self._minute is not None
        for component, (ok, samples) in self._current.items():
            self._log.record(component, self._minute, bool(ok))
            self._unsaved.append(HealthMinute(component, self._minute, bool(ok), samples))
        self._current = {}
        self._log.prune(self._minute - _KEEP_NS)

    def persist(self, store: Store) -> None:
        """Merge in the stored minutes (once), then store the closed minutes not stored yet; a storage error
        keeps them for the next call (raised after counting, for the caller to log)."""
        try:
            if not self._loaded:
                stored = load_minutes(store, self.instance_id, self._clock_ns() - _KEEP_NS)
                self._log.record_many(stored)
                self._loaded = True
                log.info("uptime history loaded", extra={"instance_id": self.instance_id, "minutes": len(stored)})
                self._recompute(self._clock_ns())
            with self._lock:
                unsaved, self._unsaved = self._unsaved, []
            if unsaved:
                try:
                    save_minutes(store, self.instance_id, unsaved, self._clock_ns())
                except StorageError:
                    with self._lock:
                        self._unsaved[:0] = unsaved
                    raise
        except StorageError:
            self.save_failures += 1
            raise

    def close(self, store: Store | None) -> None:
        """At shutdown: the minute in progress counts with the samples it has; stored when ``store`` is given."""
        with self._lock:
            if self._minute is not None and self._current:
                self._close_minute()
        if store is not None:
            try:
                self.persist(store)
            except StorageError as exc:
                log.warning("uptime minutes not stored at shutdown",
                            extra={"unsaved": len(self._unsaved), "error": str(exc)})

    @property
    def unsaved(self) -> int:
        with self._lock:
            return len(self._unsaved)

    def _recompute(self, now_ns: int) -> None:
        end = minute_of(now_ns)
        sessions = self._sessions(end - max(WINDOWS.values()), end)
        self._report = availability(self._log, now_ns, self.objective, sessions)

    def report(self) -> UptimeReport | None:
        """Availability as of the last closed minute (None before the first sample)."""
        return self._report

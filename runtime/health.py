"""The ``/healthz`` verdict: ok / degraded / down from what is true now, never from history.

An orchestrator restarts a process that answers ``down``, so a verdict that stays
``down`` after the trouble has passed turns into a restart loop. Every check therefore
reads current state (a connection up now, the breaker closed now, the writer retrying
now); a cumulative counter such as dropped events counts only while it is still
growing, within :data:`INCIDENT_WINDOW_S`. The totals keep the history on ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone

from bus.breaker import BreakerState
from monitoring.http import Health, HealthState, combine
from runtime.status import EngineStatus

# How long one increase of an incident counter keeps health down: long enough for a poller
# (every few seconds) to see it, short enough that the process is not restarted for the past.
INCIDENT_WINDOW_S = 60.0


class RecentIncrease:
    """Whether a cumulative counter grew within the last ``window_s``, as seen by successive checks.

    Growth is noticed when a check sees it, so the window starts at the first check after
    an increase (the counters carry no timestamps). A smaller total than before means the
    counter's owner was replaced; it is taken as the new baseline, not as an incident.
    """

    def __init__(self, window_s: float, clock: Callable[[], float]) -> None:
        self._window_s = window_s
        self._clock = clock
        self._total = 0
        self._grew_at: float | None = None

    def __call__(self, total: int) -> bool:
        now = self._clock()
        if total > self._total:
            self._grew_at = now
        self._total = total
        return self._grew_at is not None and now - self._grew_at < self._window_s


def assess(s: EngineStatus, *, dropping: bool, window_s: float = INCIDENT_WINDOW_S) -> Health:
    """ok / degraded / down with reasons; ``dropping``: the producer dropped events within ``window_s``."""
    checks: list[tuple[HealthState, str]] = []
    if s.feed is not None:
        checks.append(("ok" if s.feed.level1.connected else "down", "IQFeed Level 1 disconnected"))
        checks.append(("degraded" if s.feed.dtn_connected is False else "ok", "IQConnect not connected to DTN"))
    if s.iqconnect is not None:
        checks.append(("degraded" if s.iqconnect.problem else "ok",
                       f"IQConnect: {s.iqconnect.problem} (restarted {s.iqconnect.restarts} times)"))
    checks.append(("degraded" if s.producer.breaker.state is not BreakerState.CLOSED else "ok",
                   "bus unreachable: events spooling"))
    checks.append(("down" if dropping else "ok",
                   f"events dropped by a full spool within the last {window_s:g} s "
                   f"({s.producer.dropped} since start)"))
    if not s.storage.available:
        since = datetime.fromtimestamp((s.storage.down_since_ns or 0) / 1e9, tz=timezone.utc)
        checks.append(("degraded", f"storage unavailable since {since:%Y-%m-%d %H:%M:%S} UTC: {s.storage.last_error}; "
                                   f"events wait on the bus"))
    elif not s.storage.migrated:
        checks.append(("degraded", f"storage schema not migrated yet: {s.storage.last_error or 'first attempt pending'}"))
    if s.writer is not None:
        checks.append(("degraded" if s.writer.retrying else "ok", "storage writes failing; batch held for retry"))
    if s.backup is not None:
        checks.append(("degraded" if s.backup.state == "degraded" else "ok", f"backup failing: {s.backup.last_error}"))
    for job in s.jobs:
        checks.append(("degraded" if job.consecutive_failures >= 3 else "ok", f"job {job.name}: {job.last_error}"))
    health = combine(checks)
    details: dict[str, object] = {"role": "collector", "source": s.source, "ingested": s.ingested}
    if s.writer is not None:
        details["stored"] = s.writer.stored
        details["lag"] = s.writer.total_lag
    if s.iqconnect is not None:
        details["iqconnect"] = asdict(s.iqconnect)
    return Health(health.state, health.reasons, details)


class HealthCheck:
    """:func:`assess` plus the memory it needs to tell "dropping now" from "dropped once"; one per endpoint."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window_s: float = INCIDENT_WINDOW_S) -> None:
        self._window_s = window_s
        self._drops = RecentIncrease(window_s, clock)

    def __call__(self, status: EngineStatus) -> Health:
        return assess(status, dropping=self._drops(status.producer.dropped), window_s=self._window_s)

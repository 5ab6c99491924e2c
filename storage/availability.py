"""Whether storage answers now, since when it has not, and whether its schema is migrated.

Storage is a dependency the engine lives without for a while: the feed, the backup, the
bus and the alert rules run on, and what must reach storage waits (on the bus, or in
:mod:`storage.write_behind`). Everything that talks to storage reports its outcome here,
so health, the ``storage_unavailable`` alert and the dashboard banner all read one state
instead of each guessing from its own last error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage.store import StorageUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StorageState:
    """A snapshot for status, health, alert rules and the dashboard; the defaults are a healthy store."""

    available: bool = True
    down_since_ns: int | None = None  # wall clock of the first failure of this outage (or of the start)
    last_error: str = ""
    migrated: bool = True
    pending_writes: int = 0  # operator actions, alert states and symbols waiting in memory for storage
    dropped_writes: int = 0  # pending writes pushed out by the bound (storage.pending_writes_max)

    @property
    def ready(self) -> bool:
        """Storage answers and holds the schema: writes can go through."""
        return self.available and self.migrated


class StorageMonitor:
    """Collects the outcome of every storage call; thread-safe.

    Only :class:`StorageUnavailable` means storage is down: any other ``StorageError`` comes
    from a server that answered (a bad statement), and is kept as the last error only.
    """

    def __init__(self, *, migrated: bool = True, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._available = True
        self._down_since_ns: int | None = None
        self._last_error = ""
        self._migrated = threading.Event()
        if migrated:
            self._migrated.set()

    def succeeded(self) -> None:
        with self._lock:
            if self._available:
                self._last_error = ""
                return
            down_s = (self._clock_ns() - (self._down_since_ns or 0)) / 1e9
            self._available, self._down_since_ns, self._last_error = True, None, ""
        log.info("storage available again", extra={"down_s": round(down_s, 1)})

    def failed(self, exc: Exception) -> None:
        with self._lock:
            self._last_error = str(exc)
            if not isinstance(exc, StorageUnavailable) or not self._available:
                return
            self._available, self._down_since_ns = False, self._clock_ns()
        log.error("storage unavailable; events wait on the bus, operator changes in memory",
                  extra={"error": str(exc)})

    def mark_migrated(self) -> None:
        self._migrated.set()

    def wait_migrated(self, timeout_s: float) -> bool:
        """True once the schema is migrated; waits at most ``timeout_s`` (the writer job's pause)."""
        return self._migrated.wait(timeout_s)

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._available and self._migrated.is_set()

    def state(self, pending_writes: int = 0, dropped_writes: int = 0) -> StorageState:
        with self._lock:
            return StorageState(self._available, self._down_since_ns, self._last_error, self._migrated.is_set(),
                                pending_writes, dropped_writes)

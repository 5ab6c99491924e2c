"""Small inserts that must reach storage eventually, kept in order while storage is down.

Operator actions (audit log), alert states and the desired symbols are durable state, but
none of them may wait for storage: an acknowledgement during a ClickHouse outage must
work, and the alert that says ClickHouse is down must be saved somewhere. So they are
inserted through this queue: straight through while storage is ready, held in memory in
the order they happened while it is not, and flushed by the engine's storage job when it
answers again. The queue is bounded by entries: beyond the bound the oldest entry is
dropped, counted and logged as an error, never silently.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from storage.availability import StorageMonitor
from storage.store import StorageError, StorageUnavailable, Store

log = logging.getLogger(__name__)

# A write a reachable server refused this many times is given up (counted, logged): it would
# otherwise block every write behind it.
MAX_REFUSALS = 3


@runtime_checkable
class DeferredRows(Protocol):
    """Rows computed only when their turn to be written comes, and told when they were stored.

    The audit trail chains each record to the one stored before it (storage/audit_trail.py),
    which is known only then; ``rows`` may read storage and raise a storage error like an insert.
    """

    def rows(self) -> Sequence[Sequence[Any]]: ...

    def stored(self) -> None: ...


@dataclass
class PendingWrite:
    table: str
    columns: tuple[str, ...]
    data: list[list[Any]] | DeferredRows  # column-wise, as Store.insert_columns takes it
    refusals: int = 0


class WriteBehind:
    def __init__(self, store: Store, monitor: StorageMonitor | None = None, *, max_entries: int = 10_000) -> None:
        """``monitor`` says when storage is ready; without one it is taken as always ready (a migrated store)."""
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._store = store
        self._monitor = monitor or StorageMonitor()
        self._max_entries = max_entries
        self._pending: deque[PendingWrite] = deque()
        self._lock = threading.Lock()  # guards the deque and the counters
        self._flushing = threading.Lock()  # one flusher at a time keeps the order
        self._dropped = 0
        self._refused = 0

    def insert(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]] | DeferredRows) -> None:
        """Queue one insert and, while storage is ready, write the queue through; never raises a storage error."""
        rows = data if isinstance(data, DeferredRows) else [list(column) for column in data]
        entry = PendingWrite(table, tuple(columns), rows)
        with self._lock:
            if len(self._pending) >= self._max_entries:
                oldest = self._pending.popleft()
                self._dropped += 1
                log.error("pending storage write dropped: too many writes waiting for storage",
                          extra={"table": oldest.table, "max_entries": self._max_entries, "dropped": self._dropped})
            self._pending.append(entry)
        if self._monitor.ready:
            try:
                self.flush()
            except StorageError as exc:
                self._monitor.failed(exc)

    def flush(self) -> None:
        """Write the queue in order; raises :class:`StorageError` with the rest kept (the engine's job retries)."""
        with self._flushing:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    head = self._pending[0]
                deferred = head.data if isinstance(head.data, DeferredRows) else None
                try:
                    data = head.data if deferred is None else deferred.rows()
                    self._store.insert_columns(head.table, head.columns, data)
                except StorageUnavailable:
                    raise
                except Exception as exc:  # noqa: BLE001 - a server that answers but refuses: retry a few times
                    if not self._refused_for_good(head, exc):
                        raise StorageError(f"pending write to {head.table} refused: {exc}") from exc
                    continue
                if deferred is not None:
                    deferred.stored()
                with self._lock:
                    if self._pending and self._pending[0] is head:  # the bound may have dropped it meanwhile
                        self._pending.popleft()

    def _refused_for_good(self, head: PendingWrite, exc: Exception) -> bool:
        head.refusals += 1
        if head.refusals < MAX_REFUSALS:
            return False
        with self._lock:
            if self._pending and self._pending[0] is head:
                self._pending.popleft()
            self._refused += 1
        log.error("pending storage write refused by the server; given up", extra={
            "table": head.table, "attempts": head.refusals, "error": str(exc), "refused": self._refused})
        return True

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def dropped(self) -> int:
        """Writes lost to the bound or refused for good."""
        with self._lock:
            return self._dropped + self._refused

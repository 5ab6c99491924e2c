"""Small inserts that must reach storage eventually, kept in order while storage is down.

Operator actions (audit log), alert states and the desired symbols are durable state, but
none of them may wait for storage: an acknowledgement during a ClickHouse outage must
work, and the alert that says ClickHouse is down must be saved somewhere. So they are
inserted through this queue: straight through while storage is ready, held in memory in
the order they happened while it is not, and flushed by the engine's storage job when it
answers again. The queue is bounded by entries: beyond the bound the oldest entry is
dropped, counted and logged as an error, never silently.

Memory alone would lose them to a stop before storage returns, so with a ``journal`` every
entry held while storage is not ready is also written to disk (flushed and fsynced) before
``insert`` returns (storage/write_behind_journal.py), replayed in order into the queue when
the next process creates it, and the file removed once the queue is empty. Rows computed
only when written (``DeferredRows``: the audit trail's chained records) are journaled by
their content (:class:`Journaled`) and rebuilt at replay by the reviver their owner
registers (:meth:`WriteBehind.revive_with`), so they are still linked when written. A
journal that cannot be written is counted and logged as an error; the entry stays in memory.
A deferred entry's computed rows replace its content in the journal before they are written,
so a process stopped between a write that succeeded and its "done" line replays that very
write (an alert state or symbol row replaces itself, an audit record is an exact copy that
verification ignores).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from storage.availability import StorageMonitor
from storage.store import StorageError, StorageUnavailable, Store
from storage.write_behind_journal import Journal, JournalEntry, JournalError

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


@runtime_checkable
class Journaled(Protocol):
    """DeferredRows that can be journaled: ``journal_kind`` names the reviver that rebuilds them from
    ``journal_content()`` (plain JSON data) in the next process."""

    journal_kind: str

    def journal_content(self) -> Mapping[str, Any]: ...


Reviver = Callable[[Mapping[str, Any]], DeferredRows]


@dataclass
class Revivable:
    """A journaled DeferredRows read back at start, rebuilt when its reviver is known (at its turn to be written)."""

    kind: str
    content: Mapping[str, Any]


@dataclass
class PendingWrite:
    table: str
    columns: tuple[str, ...]
    data: list[list[Any]] | DeferredRows | Revivable  # column-wise, as Store.insert_columns takes it
    refusals: int = 0
    journal_id: int | None = None  # its entry in the journal, once written there
    linked: bool = False  # its computed rows replaced its content in the journal


class WriteBehind:
    def __init__(self, store: Store, monitor: StorageMonitor | None = None, *, max_entries: int = 10_000,
                 journal: Path | None = None) -> None:
        """``monitor`` says when storage is ready; without one it is taken as always ready (a migrated store).
        ``journal``: the file that keeps the queue across a stop (None: memory only); its entries are queued now."""
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._store = store
        self._monitor = monitor or StorageMonitor()
        self._max_entries = max_entries
        self._pending: deque[PendingWrite] = deque()
        self._lock = threading.Lock()  # guards the deque, the journal and the counters
        self._flushing = threading.Lock()  # one flusher at a time keeps the order
        self._dropped = 0
        self._refused = 0
        self._journal_failures = 0
        self._revivers: dict[str, Reviver] = {}
        self._journal = Journal(journal) if journal is not None else None
        if self._journal is not None:
            self._replay(self._journal)

    def revive_with(self, kind: str, reviver: Reviver) -> None:
        """How journaled DeferredRows of ``kind`` are rebuilt; the first registration of a kind is kept."""
        with self._lock:
            self._revivers.setdefault(kind, reviver)

    def insert(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]] | DeferredRows) -> None:
        """Queue one insert and, while storage is ready, write the queue through; never raises a storage error.

        While storage is not ready the entry is journaled before this returns."""
        rows = data if isinstance(data, DeferredRows) else [list(column) for column in data]
        entry = PendingWrite(table, tuple(columns), rows)
        with self._lock:
            if len(self._pending) >= self._max_entries:
                self._drop_oldest()
            self._pending.append(entry)
            if not self._monitor.ready:
                self._journal_entry(entry)
        if self._monitor.ready:
            try:
                self.flush()
            except StorageError as exc:
                self._monitor.failed(exc)
                self._journal_the_rest()

    def _drop_oldest(self) -> None:
        oldest = self._pending.popleft()
        self._dropped += 1
        log.error("pending storage write dropped: too many writes waiting for storage",
                  extra={"table": oldest.table, "max_entries": self._max_entries, "dropped": self._dropped})
        self._journal_done(oldest)

    def _replay(self, journal: Journal) -> None:
        try:
            entries = journal.replay()
        except JournalError as exc:
            self._journal_failed(exc, "replay")
            return
        for read in entries:
            data = Revivable(read.kind, read.data) if read.kind else read.data
            self._pending.append(PendingWrite(read.table, read.columns, data, journal_id=read.id))
        while len(self._pending) > self._max_entries:
            self._drop_oldest()
        if entries:
            log.warning("pending storage writes read back from the write-behind journal",
                        extra={"path": str(journal.path), "pending": len(self._pending)})

    def _journal_the_rest(self) -> None:
        """Storage failed under a write-through: what is left waits for it, so it goes to the journal too."""
        with self._lock:
            for entry in self._pending:
                if entry.journal_id is None:
                    self._journal_entry(entry)

    def _journal_entry(self, entry: PendingWrite) -> None:
        """Called with the lock held."""
        if self._journal is None:
            return
        data: Any = entry.data
        kind = ""
        try:
            if isinstance(data, Revivable):
                kind, data = data.kind, data.content
            elif isinstance(data, Journaled):
                kind, data = data.journal_kind, dict(data.journal_content())
            elif isinstance(data, DeferredRows):
                raise JournalError(f"rows for {entry.table} computed at write time have no journal form")
            journal_id = self._journal.next_id()
            self._journal.append(JournalEntry(journal_id, entry.table, entry.columns, data, kind))
        except JournalError as exc:
            self._journal_failed(exc, entry.table)
            return
        entry.journal_id = journal_id

    def _journal_done(self, entry: PendingWrite) -> None:
        """Called with the lock held, once ``entry`` has left the queue."""
        if self._journal is None or entry.journal_id is None:
            return
        try:
            if self._pending:
                self._journal.done(entry.journal_id)
            else:
                self._journal.clear()
        except JournalError as exc:
            self._journal_failed(exc, entry.table)

    def _journal_failed(self, exc: JournalError, what: str) -> None:
        self._journal_failures += 1
        log.error("write-behind journal failed: pending writes are kept in memory only and lost if the "
                  "process stops; check the data_dir's disk", extra={
                      "error": str(exc), "table": what, "journal_failures": self._journal_failures})

    def flush(self) -> None:
        """Write the queue in order; raises :class:`StorageError` with the rest kept (the engine's job retries)."""
        with self._flushing:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    head = self._pending[0]
                    if isinstance(head.data, Revivable):
                        head.data = self._revive(head.data)
                deferred = head.data if isinstance(head.data, DeferredRows) else None
                try:
                    if isinstance(head.data, Revivable):
                        raise ValueError(f"no reviver registered for journaled {head.data.kind!r} rows")
                    data = head.data if deferred is None else deferred.rows()
                    if deferred is not None and head.journal_id is not None and not head.linked:
                        self._journal_linked(head, data)
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
                        self._journal_done(head)

    def _journal_linked(self, head: PendingWrite, rows: Sequence[Sequence[Any]]) -> None:
        """Journal the rows computed for a deferred entry under its id, before they are written: a stop between
        the write and its done mark then replays the very same rows (an exact copy, as a retry writes), not the
        content linked a second time."""
        with self._lock:
            assert self._journal is not None and head.journal_id is not None
            try:
                self._journal.append(JournalEntry(head.journal_id, head.table, head.columns, rows))
            except JournalError as exc:
                self._journal_failed(exc, head.table)
                return
            head.linked = True

    def _revive(self, revivable: Revivable) -> DeferredRows | Revivable:
        """Called with the lock held. Without a reviver the write stays as read (and is refused, counted)."""
        reviver = self._revivers.get(revivable.kind)
        return revivable if reviver is None else reviver(revivable.content)

    def _refused_for_good(self, head: PendingWrite, exc: Exception) -> bool:
        head.refusals += 1
        if head.refusals < MAX_REFUSALS:
            return False
        with self._lock:
            if self._pending and self._pending[0] is head:
                self._pending.popleft()
                self._journal_done(head)
            self._refused += 1
        log.error("pending storage write refused by the server; given up", extra={
            "table": head.table, "attempts": head.refusals, "error": str(exc), "refused": self._refused})
        return True

    def close(self) -> None:
        """At shutdown: release the journal (its open entries stay for the next start)."""
        with self._lock:
            if self._journal is not None:
                self._journal.close()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def journal_failures(self) -> int:
        """Journal writes that failed (those entries were kept in memory only)."""
        with self._lock:
            return self._journal_failures

    @property
    def dropped(self) -> int:
        """Writes lost to the bound or refused for good."""
        with self._lock:
            return self._dropped + self._refused

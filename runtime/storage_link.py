"""The engine's durable state and its link to storage, which may be down at start or at any time.

    Engine.start ──► StorageLink.step once, then the ``storage`` job every second:
        not migrated yet ─► migrate, then read the stored symbols (a first start is judged on them)
        SymbolRegistry.refresh   the stored desired state (another process's changes)
        WriteBehind.flush        operator actions, alert states and symbols kept while storage was down
        after an outage          stored alerts merged into the AlertBook (latest updated_ns wins)
    every outcome ─► StorageMonitor: available / down since / migrated ─► status, health, alert, banner

Desired symbols, alerts and the audit log live in memory and are written through to
storage, so the feed, the alert rules and the notifications never wait for it. While
storage is down each attempt backs off (``storage.retry_initial_ms`` doubling to
``retry_max_ms``); the writer waits for :meth:`StorageLink.wait_migrated` before it is built.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from alerts.lifecycle import Alert, AlertBook
from alerts.store import AlertStore
from config import Settings
from runtime.symbols import SymbolRegistry
from storage.audit_anchor import anchor_path
from storage.availability import StorageMonitor, StorageState
from storage.migrate import migrate
from storage.store import StorageError, Store
from storage.write_behind import WriteBehind

log = logging.getLogger(__name__)


class StorageLink:
    def __init__(self, store: Store, *, max_pending: int, retry_initial_s: float, retry_max_s: float,
                 audit_source: str = "local", clock: Callable[[], float] = time.monotonic,
                 clock_ns: Callable[[], int] = time.time_ns, data_dir: Path | None = None) -> None:
        """``data_dir``: where the pending writes are journaled to survive a stop and the audit chain's head is
        anchored (None: memory only, no anchor)."""
        self.store = store
        self.monitor = StorageMonitor(migrated=False, clock_ns=clock_ns)
        journal = None if data_dir is None else journal_path(data_dir, audit_source)
        self.writes = WriteBehind(store, self.monitor, max_entries=max_pending, journal=journal)
        self.symbols = SymbolRegistry(store, self.writes)
        self.alert_store = AlertStore(store, self.writes, audit_source=audit_source,
                                      audit_anchor=None if data_dir is None else anchor_path(data_dir))
        self.alert_book = AlertBook()
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._clock = clock
        self._delay = 0.0
        self._retry_at = float("-inf")
        self._alerts_merged = False  # stored alerts taken in since storage last answered
        self._keep_alert: Callable[[Alert], bool] = lambda alert: True

    @classmethod
    def from_settings(cls, store: Store, settings: Settings, audit_source: str | None = None) -> StorageLink:
        """``audit_source``: this process's audit chain, by default the instance id."""
        storage = settings.storage
        return cls(store, max_pending=storage.pending_writes_max, retry_initial_s=storage.retry_initial_ms / 1000,
                   retry_max_s=storage.retry_max_ms / 1000, audit_source=audit_source or settings.instance_id,
                   data_dir=settings.data_dir)

    def step(self) -> None:
        """One attempt to bring memory and storage in step; never raises a storage error (backs off instead)."""
        if self._clock() < self._retry_at:
            return
        try:
            self._sync()
        except StorageError as exc:
            self.monitor.failed(exc)
            self._alerts_merged = False
            self._delay = min(max(self._delay * 2, self._retry_initial_s), self._retry_max_s)
            self._retry_at = self._clock() + self._delay
            log.debug("storage not reachable; retrying", extra={"error": str(exc), "retry_in_s": self._delay})
            return
        self._delay = 0.0
        self.monitor.succeeded()

    def _sync(self) -> None:
        if not self.monitor.wait_migrated(0):
            applied = migrate(self.store)
            self.symbols.refresh()  # before any write goes through: "first start" means storage had no symbols
            self.monitor.mark_migrated()
            log.info("storage ready", extra={"store": repr(self.store), "migrations_applied": applied})
        else:
            self.symbols.refresh()
        self.writes.flush()
        if not self._alerts_merged:
            self.alert_book.merge([alert for alert in self.alert_store.active() if self._keep_alert(alert)])
            self._alerts_merged = True

    def take_in_alerts(self, keep: Callable[[Alert], bool]) -> None:
        """Take in only the stored alerts ``keep`` accepts (in a fleet: this instance's own), again at the next
        step: another instance's alert, taken in and not found here, would be resolved by this one."""
        self._keep_alert = keep
        self._alerts_merged = False

    @property
    def ready(self) -> bool:
        """Storage answers and holds the schema."""
        return self.monitor.ready

    def wait_migrated(self, timeout_s: float) -> bool:
        return self.monitor.wait_migrated(timeout_s)

    def state(self) -> StorageState:
        return self.monitor.state(self.writes.pending, self.writes.dropped)

    def close(self) -> None:
        """At shutdown: one last flush of the pending writes if storage answers; what is left is logged as lost."""
        if self.monitor.ready:
            try:
                self.writes.flush()
            except StorageError as exc:
                self.monitor.failed(exc)
        self.writes.close()
        if self.writes.pending:
            log.error("pending storage writes not stored at shutdown: storage unavailable (those journaled are "
                      "written by the next start)", extra={"pending": self.writes.pending,
                                                           "journal_failures": self.writes.journal_failures,
                                                           "error": self.monitor.state().last_error})


def journal_path(data_dir: Path, audit_source: str) -> Path:
    """One journal per process role (its audit source): an engine and a dashboard may share a data_dir."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in audit_source)
    return data_dir / "write_behind" / f"{safe}.jsonl"

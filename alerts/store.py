"""Alerts, acknowledgements and the operator audit log, persisted in storage.

The dashboard never holds the only copy: a restarted process (or a second one) reloads
active alerts from here, and every operator action is appended to ``audit_log``, which
is never updated in place.

Writes go through the write-behind queue (:mod:`storage.write_behind`): an alert that
fires, or an acknowledgement given, while storage is down is kept in memory in order and
stored when storage answers again, so alerting never depends on storage. Reads
(:meth:`AlertStore.history`, :meth:`AlertStore.audit_log`) raise ``StorageError`` then.
"""

from __future__ import annotations

import time
from dataclasses import astuple, dataclass, fields

from alerts.lifecycle import Alert
from storage.store import Store
from storage.write_behind import WriteBehind

_ALERT_COLUMNS = tuple(f.name for f in fields(Alert))


@dataclass(frozen=True)
class AuditEntry:
    ts_ns: int
    actor: str
    action: str
    subject: str
    details: str


class AlertStore:
    def __init__(self, store: Store, writes: WriteBehind | None = None) -> None:
        self._store = store
        self._writes = writes or WriteBehind(store)

    def save(self, alerts: list[Alert]) -> None:
        if alerts:
            rows = [astuple(alert) for alert in alerts]
            self._writes.insert("alerts", _ALERT_COLUMNS, [list(column) for column in zip(*rows)])

    def active(self) -> list[Alert]:
        return [a for a in self.history(limit=100_000) if a.active]

    def history(self, limit: int = 200) -> list[Alert]:
        """Latest version of each alert, newest first."""
        names = ", ".join(_ALERT_COLUMNS)
        rows = self._store.query(
            f"SELECT {names} FROM {self._store.table('alerts')} FINAL ORDER BY updated_ns DESC LIMIT {int(limit)}"
        )
        return [Alert(**dict(zip(_ALERT_COLUMNS, row))) for row in rows]

    def audit(self, actor: str, action: str, subject: str, details: str = "", ts_ns: int | None = None) -> AuditEntry:
        entry = AuditEntry(ts_ns or time.time_ns(), actor, action, subject, details)
        self._writes.insert("audit_log", [f.name for f in fields(AuditEntry)], [[v] for v in astuple(entry)])
        return entry

    def audit_log(self, limit: int = 200) -> list[AuditEntry]:
        rows = self._store.query(
            f"SELECT ts_ns, actor, action, subject, details FROM {self._store.table('audit_log')} "
            f"ORDER BY ts_ns DESC LIMIT {int(limit)}"
        )
        return [AuditEntry(*row) for row in rows]

"""Alerts, acknowledgements and the operator audit log, persisted in storage.

The dashboard never holds the only copy: a restarted process (or a second one) reloads
active alerts from here, and every operator action is appended to the tamper-evident audit
trail (``audit_trail``: one hash chain per source, storage/audit_trail.py), which is never
updated in place.

Writes go through the write-behind queue (:mod:`storage.write_behind`): an alert that
fires, or an acknowledgement given, while storage is down is kept in memory in order and
stored when storage answers again, so alerting never depends on storage. Reads
(:meth:`AlertStore.history`, :meth:`AlertStore.audit_log`) raise ``StorageError`` then.
Audit records are chained when their turn to be written comes, so an action taken while
storage is down still gets its place in its source's chain.
"""

from __future__ import annotations

from dataclasses import astuple, fields
from pathlib import Path

from alerts.lifecycle import Alert
from storage.audit_anchor import read_anchors
from storage.audit_chain import AuditRecord, ChainSummary, verify
from storage.audit_trail import (
    AuditFilter,
    AuditTrail,
    DetailsAfter,
    PendingRecord,
    all_records,
    distinct_values,
    read_records,
)
from storage.store import Store
from storage.write_behind import WriteBehind

_ALERT_COLUMNS = tuple(f.name for f in fields(Alert))


class AlertStore:
    def __init__(self, store: Store, writes: WriteBehind | None = None, *, audit_source: str = "local",
                 audit_anchor: Path | None = None) -> None:
        """``audit_source`` names this process's audit chain: the instance id, or a tool's name;
        ``audit_anchor`` the file its head is also kept in (storage/audit_anchor.py)."""
        self._store = store
        self._writes = writes or WriteBehind(store)
        self._anchor = audit_anchor
        self.trail = AuditTrail(store, self._writes, audit_source, anchor=audit_anchor)

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

    def audit(self, actor: str, action: str, subject: str, details: str | DetailsAfter = "",
              ts_ns: int | None = None) -> PendingRecord:
        """Append an operator action to this process's chain (through the write-behind queue; never raises)."""
        return self.trail.append(actor, action, subject, details, ts_ns)

    def audit_log(self, limit: int = 200, where: AuditFilter = AuditFilter()) -> list[AuditRecord]:
        """Audit records of every source matching ``where``, newest first."""
        return read_records(self._store, where, limit)

    def audit_values(self, column: str) -> list[str]:
        """The actors or actions present in the trail."""
        return distinct_values(self._store, column)

    def verify_audit(self) -> list[ChainSummary]:
        """Every chain of the trail checked (storage/audit_chain.py), against the anchor file when there is one,
        so the dashboard's check sees records cut from a chain's end as the command line's does.
        Raises :class:`AnchorError` for an anchor file that cannot be read."""
        anchors = read_anchors(self._anchor) if self._anchor is not None and self._anchor.exists() else []
        return verify(all_records(self._store), anchors)

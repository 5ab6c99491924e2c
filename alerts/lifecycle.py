"""Alert lifecycle, Alertmanager-style: pending -> firing -> acknowledged -> resolved.

Rules say what is wrong right now (a :class:`Finding` per rule and subject); this
module turns those snapshots into alerts that have a history. One alert exists per
(rule, subject): a repeat updates it instead of piling up a new one. A condition must
hold for the rule's ``for_s`` before it fires, so a blip does not page anyone, and an
acknowledged alert stays acknowledged until the condition clears.
Pure: time comes in as ``now_ns``, and nothing here does I/O.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Literal

AlertState = Literal["pending", "firing", "acknowledged", "resolved"]
Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class Finding:
    """A rule's verdict that ``subject`` is in a bad state now."""

    rule: str
    subject: str
    severity: Severity
    summary: str
    for_s: float = 0.0
    value: float | None = None


@dataclass(frozen=True)
class Alert:
    rule: str
    subject: str
    severity: Severity
    state: AlertState
    summary: str
    started_ns: int
    updated_ns: int
    value: float | None = None
    fired_ns: int = 0
    resolved_ns: int = 0
    acked_by: str = ""
    acked_ns: int = 0
    ack_note: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.subject)

    @property
    def active(self) -> bool:
        return self.state != "resolved"


class AlertNotFound(KeyError):
    """No active alert for that (rule, subject); it may have resolved meanwhile."""


class AlertBook:
    """The set of alerts; :meth:`evaluate` returns the alerts whose state changed."""

    def __init__(self, alerts: list[Alert] | None = None) -> None:
        self._lock = threading.Lock()
        self._active: dict[tuple[str, str], Alert] = {a.key: a for a in alerts or [] if a.active}

    def evaluate(self, findings: list[Finding], now_ns: int) -> list[Alert]:
        changed: list[Alert] = []
        seen = set()
        with self._lock:
            for finding in findings:
                key = (finding.rule, finding.subject)
                seen.add(key)
                current = self._active.get(key)
                if current is None:
                    state: AlertState = "firing" if finding.for_s <= 0 else "pending"
                    alert = Alert(finding.rule, finding.subject, finding.severity, state, finding.summary,
                                  started_ns=now_ns, updated_ns=now_ns, value=finding.value,
                                  fired_ns=now_ns if state == "firing" else 0)
                    self._active[key] = alert
                    changed.append(alert)
                    continue
                updated = replace(current, summary=finding.summary, value=finding.value,
                                  severity=finding.severity, updated_ns=now_ns)
                if current.state == "pending" and now_ns - current.started_ns >= finding.for_s * 1e9:
                    updated = replace(updated, state="firing", fired_ns=now_ns)
                    changed.append(updated)
                self._active[key] = updated
            for key in list(self._active):
                if key not in seen:
                    gone = self._active.pop(key)
                    resolved = replace(gone, state="resolved", resolved_ns=now_ns, updated_ns=now_ns)
                    if gone.state != "pending":  # a pending alert that never fired leaves no trace
                        changed.append(resolved)
        return changed

    def acknowledge(self, rule: str, subject: str, who: str, note: str, now_ns: int) -> Alert:
        if not who.strip():
            raise ValueError("an acknowledgement needs the operator's name")
        with self._lock:
            current = self._active.get((rule, subject))
            if current is None or current.state not in ("firing", "acknowledged"):
                raise AlertNotFound(f"no firing alert {rule} for {subject}")
            acked = replace(current, state="acknowledged", acked_by=who, acked_ns=now_ns,
                            ack_note=note, updated_ns=now_ns)
            self._active[(rule, subject)] = acked
            return acked

    def merge(self, alerts: list[Alert]) -> None:
        """Take in stored alerts (an earlier run's, another process's): per (rule, subject) the latest
        ``updated_ns`` wins, so what this book saw while storage was down is not overwritten by older rows."""
        with self._lock:
            for alert in alerts:
                current = self._active.get(alert.key)
                if alert.active and (current is None or alert.updated_ns > current.updated_ns):
                    self._active[alert.key] = alert

    def active(self) -> list[Alert]:
        with self._lock:
            return sorted(self._active.values(), key=lambda a: (a.state != "firing", a.started_ns))

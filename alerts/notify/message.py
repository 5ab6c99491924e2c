"""What a notification says, and which alert changes deserve one. Pure: no I/O, no clock.

The engine hands over every alert whose state changed; an operator only wants to hear
about the transitions that need a human (firing), end the worry (resolved) or tell the
team someone is on it (acknowledged). ``pending`` is noise by design: the rule's ``for``
has not elapsed yet. The same text is rendered for every channel, so a webhook consumer
and a mailbox never disagree about an incident.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alerts.lifecycle import Alert, AlertState, Severity

NOTIFIED_STATES: frozenset[AlertState] = frozenset({"firing", "resolved", "acknowledged"})
SEVERITY_RANK: dict[Severity, int] = {"info": 0, "warning": 1, "critical": 2}
BODY_VERSION = 1  # bump when a webhook consumer would need to change its parser


@dataclass(frozen=True)
class Notification:
    """One alert transition as it is sent: the alert plus which TickOps instance saw it."""

    alert: Alert
    instance_id: str

    @property
    def key(self) -> tuple[str, str, str]:
        """(rule, subject, state): the unit of debouncing."""
        return (self.alert.rule, self.alert.subject, self.alert.state)


def wants_notification(alert: Alert, min_severity: Severity) -> bool:
    """True for a transition an operator cares about at or above ``min_severity``."""
    return alert.state in NOTIFIED_STATES and SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[min_severity]


class Debouncer:
    """Remembers the last state sent per (rule, subject), so a repeat of it is not sent again.

    The alert book only reports changes, but a restarted process reloading its alerts, an
    acknowledgement repeated from two dashboards, or a caller passing the same list twice
    would otherwise page people twice for one incident. A different state (firing again
    after a resolve) is a new event and goes through. Memory is one entry per (rule,
    subject) ever notified, which the rule set keeps small.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], str] = {}

    def admit(self, alert: Alert) -> bool:
        with self._lock:
            if self._last.get(alert.key) == alert.state:
                return False
            self._last[alert.key] = alert.state
            return True


def iso_utc(ns: int) -> str | None:
    """Nanoseconds since the epoch as ISO 8601 UTC with milliseconds; 0 (never happened) is None."""
    if not ns:
        return None
    moment = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def webhook_body(notification: Notification) -> dict[str, Any]:
    """The JSON document POSTed to a webhook; flat so that chat and paging tools can template it."""
    alert = notification.alert
    return {
        "version": BODY_VERSION,
        "instance_id": notification.instance_id,
        "rule": alert.rule,
        "subject": alert.subject,
        "state": alert.state,
        "severity": alert.severity,
        "summary": alert.summary,
        "value": alert.value,
        "started_at": iso_utc(alert.started_ns),
        "fired_at": iso_utc(alert.fired_ns),
        "resolved_at": iso_utc(alert.resolved_ns),
        "acknowledged_at": iso_utc(alert.acked_ns),
        "acknowledged_by": alert.acked_by or None,
        "ack_note": alert.ack_note or None,
        "updated_at": iso_utc(alert.updated_ns),
    }


def email_subject(notification: Notification) -> str:
    """Short enough for a phone's lock screen: state, severity, rule, subject, instance."""
    alert = notification.alert
    return (f"[TickOps {alert.state.upper()}] {alert.severity}: {alert.rule} {alert.subject} "
            f"({notification.instance_id})")


def email_body(notification: Notification) -> str:
    """Plain text: the summary first, then one ``name: value`` line per field of the webhook body."""
    body = webhook_body(notification)
    lines = [notification.alert.summary, ""]
    lines += [f"{name}: {value}" for name, value in body.items() if value is not None and name != "summary"]
    return "\n".join(lines) + "\n"

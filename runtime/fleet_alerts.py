"""Alerts in a collector fleet: an instance's own alerts carry its id, fleet-wide ones are raised once.

Every collector of a fleet judges the same storage and the same capacity: evaluated everywhere, those
rules would page N times for one problem. They are evaluated only by the rules owner, the instance that
owns partition 0 of the assignment topic: exactly one once the group settles, and the group itself
hands the role over when that instance dies. Every other finding is the instance's own (its feed, its
writer, its symbols): its subject is prefixed with the instance id (``collector-2/level1``), so the
alerts of two instances never merge into one (rule, subject) in the shared alerts table, and the
operator, the notification and the audit trail all say where it comes from.

From storage an instance takes in only its own alerts and, as rules owner, the fleet-wide ones: taking
in another instance's alert and not finding its condition here would resolve it.

An instance that leaves the fleet (stopped, or silent past ``fleet.stale_after_s``) cannot resolve its own
alerts any more; the rules owner resolves them for it (:func:`resolve_departed`), saying why. Should the
instance come back, its rules raise what still holds again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from alerts.lifecycle import Alert, Finding

FLEET_RULES = frozenset({"storage_unavailable", "fleet_capacity", "feed_inconsistent"})
DEPARTED_REASON = "instance left the fleet"


def instance_subject(instance_id: str, subject: str) -> str:
    return f"{instance_id}/{subject}"


def scope_findings(findings: list[Finding], instance_id: str, *, rules_owner: bool) -> list[Finding]:
    """Fleet-wide findings only on the rules owner; every other one qualified with this instance's id."""
    return [finding if finding.rule in FLEET_RULES else replace(finding, subject=instance_subject(instance_id,
                                                                                                   finding.subject))
            for finding in findings if rules_owner or finding.rule not in FLEET_RULES]


def takes_in(alert: Alert, instance_id: str, *, rules_owner: bool) -> bool:
    """Whether this instance adopts a stored alert (its own, or a fleet-wide one while it is rules owner)."""
    if alert.rule in FLEET_RULES:
        return rules_owner
    return alert.subject.startswith(instance_subject(instance_id, ""))


def alert_instance(alert: Alert) -> str | None:
    """The instance an alert comes from (its subject's prefix); None for a fleet-wide or unscoped one."""
    if alert.rule in FLEET_RULES or "/" not in alert.subject:
        return None
    return alert.subject.split("/", 1)[0]


def clock_text(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%H:%M:%S")


def resolve_departed(alerts: Iterable[Alert], departed: Mapping[str, int], now_ns: int) -> list[Alert]:
    """Resolved copies of the active alerts of instances that left (instance id -> last heard of, ns).

    An alert updated after its instance's last status is left alone: the instance was still evaluating
    then (cut off from Kafka, not dead), and it resolves its own alerts."""
    resolved = []
    for alert in alerts:
        since = departed.get(alert_instance(alert) or "")
        if since is None or not alert.active or alert.updated_ns > since:
            continue
        resolved.append(replace(alert, state="resolved", resolved_ns=now_ns, updated_ns=now_ns,
                                summary=f"{DEPARTED_REASON} (silent since {clock_text(since)} UTC): {alert.summary}"))
    return resolved

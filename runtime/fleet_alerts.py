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
"""

from __future__ import annotations

from dataclasses import replace

from alerts.lifecycle import Alert, Finding

FLEET_RULES = frozenset({"storage_unavailable", "fleet_capacity", "feed_inconsistent"})


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

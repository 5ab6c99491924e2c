"""Alerts in a fleet: an instance's own carry its id, fleet-wide ones come from the rules owner only,
and an instance takes in from storage only the alerts it would itself raise or resolve."""

from __future__ import annotations

from alerts.lifecycle import Alert, Finding
from alerts.rules import Observation, evaluate_rules
from config import AlertSettings
from runtime.fleet_alerts import scope_findings, takes_in

S = 1_000_000_000
FINDINGS = [Finding("heartbeat_missing", "level1", "critical", "no heartbeat"),
            Finding("storage_unavailable", "storage", "critical", "down"),
            Finding("symbol_silent", "AAPL", "warning", "silent")]


def test_an_instances_own_findings_carry_its_id_and_fleet_wide_ones_come_from_the_rules_owner_only():
    owner = scope_findings(FINDINGS, "c-1", rules_owner=True)
    assert [(f.rule, f.subject) for f in owner] == [
        ("heartbeat_missing", "c-1/level1"), ("storage_unavailable", "storage"), ("symbol_silent", "c-1/AAPL")]
    other = scope_findings(FINDINGS, "c-2", rules_owner=False)
    assert [(f.rule, f.subject) for f in other] == [("heartbeat_missing", "c-2/level1"), ("symbol_silent", "c-2/AAPL")]


def alert(rule: str, subject: str) -> Alert:
    return Alert(rule, subject, "critical", "firing", "x", started_ns=1, updated_ns=1)


def test_an_instance_takes_in_its_own_stored_alerts_and_the_fleet_wide_ones_only_as_rules_owner():
    assert takes_in(alert("heartbeat_missing", "c-1/level1"), "c-1", rules_owner=False)
    assert not takes_in(alert("heartbeat_missing", "c-10/level1"), "c-1", rules_owner=True)
    assert not takes_in(alert("heartbeat_missing", "level1"), "c-1", rules_owner=True)
    assert takes_in(alert("storage_unavailable", "storage"), "c-1", rules_owner=True)
    assert not takes_in(alert("storage_unavailable", "storage"), "c-1", rules_owner=False)


def rule(obs: Observation) -> list[Finding]:
    return [f for f in evaluate_rules(obs, AlertSettings()) if f.rule == "fleet_capacity"]


def test_fleet_capacity_fires_when_short_warns_one_failure_ahead_and_is_silent_with_headroom():
    short = rule(Observation(now_ns=S, fleet_instances=1, fleet_wanted=800, fleet_capacity=500))
    assert [(f.severity, f.value) for f in short] == [("critical", 300)] and "add a collector" in short[0].summary
    ahead = rule(Observation(now_ns=S, fleet_instances=2, fleet_wanted=800, fleet_capacity=1000,
                             fleet_capacity_after_loss=500))
    assert [(f.severity, f.value) for f in ahead] == [("warning", 300)]
    assert rule(Observation(now_ns=S, fleet_instances=3, fleet_wanted=800, fleet_capacity=1500,
                            fleet_capacity_after_loss=1000)) == []
    assert rule(Observation(now_ns=S, fleet_wanted=800)) == []  # not in a fleet, or not the rules owner


def test_a_feed_inconsistency_is_one_fleet_wide_alert_per_symbol_naming_its_minutes_raised_by_the_rules_owner():
    obs = Observation(now_ns=S, inconsistent_feeds={"AAPL": "2026-11-30 09:14 UTC: volume 5580 (a) != 5587 (b)"})
    findings = [f for f in evaluate_rules(obs, AlertSettings()) if f.rule == "feed_inconsistent"]
    assert [(f.subject, f.severity) for f in findings] == [("AAPL", "warning")]
    assert "2026-11-30 09:14 UTC: volume 5580 (a) != 5587 (b)" in findings[0].summary
    assert [f.subject for f in scope_findings(findings, "a", rules_owner=True)] == ["AAPL"]
    assert scope_findings(findings, "b", rules_owner=False) == []
    assert not [f for f in evaluate_rules(Observation(now_ns=S), AlertSettings()) if f.rule == "feed_inconsistent"]


def test_the_active_alerts_of_a_departed_instance_are_resolved_with_the_reason_and_others_are_left_alone():
    from runtime.fleet_alerts import resolve_departed

    gone_at = 1_000 * S
    alerts = [Alert("heartbeat_missing", "c-2/level1", "critical", "firing", "no heartbeat", 1, gone_at - S),
              Alert("symbol_silent", "c-2/AAPL", "warning", "acknowledged", "silent", 1, gone_at - S),
              Alert("symbol_silent", "c-2/MSFT", "warning", "firing", "silent", 1, gone_at + S),  # still evaluating
              Alert("heartbeat_missing", "c-1/level1", "critical", "firing", "no heartbeat", 1, 1),
              Alert("storage_unavailable", "storage", "critical", "firing", "down", 1, 1),
              Alert("heartbeat_missing", "level1", "critical", "firing", "unscoped (embedded)", 1, 1)]
    resolved = resolve_departed(alerts, {"c-2": gone_at}, now_ns=2_000 * S)
    assert [(a.subject, a.state, a.resolved_ns) for a in resolved] == [
        ("c-2/level1", "resolved", 2_000 * S), ("c-2/AAPL", "resolved", 2_000 * S)]
    assert resolved[0].summary == "instance left the fleet (silent since 00:16:40 UTC): no heartbeat"
    assert resolved[0].updated_ns == 2_000 * S


def test_an_instance_back_in_the_fleet_raises_its_alert_again_after_the_rules_owner_resolved_it():
    """Coming back, an instance takes in only its active stored alerts: the resolved one is not among them,
    so its rules raise it anew while the condition holds."""
    from alerts.lifecycle import AlertBook
    from runtime.fleet_alerts import resolve_departed

    stored = [Alert("heartbeat_missing", "c-2/level1", "critical", "firing", "no heartbeat", 1, 5)]
    resolved = resolve_departed(stored, {"c-2": 10}, now_ns=20)
    book = AlertBook([a for a in resolved if takes_in(a, "c-2", rules_owner=False)])
    changed = book.evaluate(scope_findings([FINDINGS[0]], "c-2", rules_owner=False), now_ns=30)
    assert [(a.subject, a.state, a.started_ns) for a in changed] == [("c-2/level1", "firing", 30)]

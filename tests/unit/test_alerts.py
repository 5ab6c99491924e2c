"""Alert rules and lifecycle with plain values: no pipeline, no sleeping."""

from __future__ import annotations

import pytest

from alerts.lifecycle import AlertBook, AlertNotFound, Finding
from alerts.rules import Observation, evaluate_rules
from config import AlertSettings

S = 1_000_000_000
CFG = AlertSettings()


def rules_named(obs: Observation) -> dict[tuple[str, str], Finding]:
    return {(f.rule, f.subject): f for f in evaluate_rules(obs, CFG)}


def test_healthy_observation_raises_nothing():
    assert evaluate_rules(Observation(now_ns=1000 * S, market_open=True, watched={"AAPL": 999 * S}), CFG) == []


def test_symbol_silent_only_during_market_hours_with_per_symbol_override():
    now = 10_000 * S
    watched = {"AAPL": now - 400 * S, "MSFT": now - 10 * S, "ILLIQ": now - 400 * S}
    open_obs = Observation(now_ns=now, market_open=True, watched=watched, silent_override_s={"ILLIQ": 3600})
    found = rules_named(open_obs)
    assert set(found) == {("symbol_silent", "AAPL")}
    assert found[("symbol_silent", "AAPL")].value == pytest.approx(400)
    closed = Observation(now_ns=now, market_open=False, watched=watched)
    assert rules_named(closed) == {}


def test_symbol_that_never_sent_anything_counts_from_when_it_was_watched():
    now = 10_000 * S
    obs = Observation(now_ns=now, market_open=True, watched={"NEW": None}, watched_since_ns={"NEW": now - 301 * S})
    assert ("symbol_silent", "NEW") in rules_named(obs)


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"heartbeat_age_s": 4.0}, "heartbeat_missing"),
        ({"feed_connected": False}, "heartbeat_missing"),
        ({"dtn_connected": False}, "iqconnect_disconnected"),
        ({"bus_reachable": False}, "kafka_unreachable"),
        ({"spool_growth_bytes_per_s": 10.0}, "spool_growing"),
        ({"dropped_events": 3}, "events_dropped"),
        ({"spool_write_error": "[Errno 28] No space left on device"}, "spool_write_failed"),
        ({"storage_write_failures_recent": 2}, "storage_write_failures"),
        ({"consumer_lag": 1_000_000}, "consumer_lag"),
        ({"errors_per_min": 500}, "error_rate"),
        ({"disk_free_pct": 3.0}, "disk_free_low"),
        ({"rss_slope_bytes_per_h": 2**30}, "memory_growth"),
        ({"latency_p99_ms": 250.0}, "latency_sla"),
        ({"backup_degraded": "No space left on device"}, "backup_degraded"),
        ({"failing_jobs": {"writer": "StorageUnavailable"}}, "job_failing"),
    ],
)
def test_each_rule_fires_on_its_condition(changes, rule):
    obs = Observation(now_ns=1000 * S, market_open=False, **changes)
    assert rule in {f.rule for f in evaluate_rules(obs, CFG)}


def test_condition_pends_for_its_duration_then_fires_and_resolves():
    book = AlertBook()
    slow = Finding("latency_sla", "pipeline", "warning", "p99 high", for_s=30)
    assert [a.state for a in book.evaluate([slow], 0)] == ["pending"]
    assert book.evaluate([slow], 10 * S) == []
    fired = book.evaluate([slow], 30 * S)
    assert [a.state for a in fired] == ["firing"] and fired[0].fired_ns == 30 * S
    resolved = book.evaluate([], 40 * S)
    assert [(a.state, a.resolved_ns) for a in resolved] == [("resolved", 40 * S)]
    assert book.active() == []


def test_blip_shorter_than_for_leaves_no_alert():
    book = AlertBook()
    blip = Finding("latency_sla", "pipeline", "warning", "p99 high", for_s=30)
    book.evaluate([blip], 0)
    assert book.evaluate([], 5 * S) == []
    assert book.active() == []


def test_repeats_update_one_alert_and_acknowledgement_sticks_until_resolved():
    book = AlertBook()
    first = Finding("symbol_silent", "AAPL", "warning", "silent 301 s", value=301)
    book.evaluate([first], 0)
    acked = book.acknowledge("symbol_silent", "AAPL", "ops-anna", "exchange halt", 5 * S)
    assert acked.state == "acknowledged" and acked.acked_by == "ops-anna"
    again = Finding("symbol_silent", "AAPL", "warning", "silent 400 s", value=400)
    assert book.evaluate([again], 100 * S) == []
    (only,) = book.active()
    assert only.state == "acknowledged" and only.summary == "silent 400 s" and only.started_ns == 0


def test_acknowledging_needs_a_name_and_a_firing_alert():
    book = AlertBook()
    book.evaluate([Finding("disk_free_low", "data_dir", "critical", "3% free", for_s=60)], 0)
    with pytest.raises(AlertNotFound):
        book.acknowledge("disk_free_low", "data_dir", "ops", "", S)  # still pending
    with pytest.raises(ValueError, match="name"):
        book.acknowledge("disk_free_low", "data_dir", " ", "", S)

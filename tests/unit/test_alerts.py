"""Alert rules and lifecycle with plain values: no pipeline, no sleeping."""

from __future__ import annotations

from dataclasses import replace

import pytest

from alerts.lifecycle import Alert, AlertBook, AlertNotFound, Finding
from alerts.rules import Observation, evaluate_rules
from config import AlertSettings

S = 1_000_000_000
CFG = AlertSettings()


def rules_named(obs: Observation) -> dict[tuple[str, str], Finding]:
    return {(f.rule, f.subject): f for f in evaluate_rules(obs, CFG)}


OPEN_NS = 1_000 * S  # the regular session's start in these observations


def regular(now_ns: int, **changes) -> Observation:
    """An observation during the regular session, which began at OPEN_NS."""
    return Observation(now_ns=now_ns, session="regular", session_start_ns=OPEN_NS, **changes)


def test_healthy_observation_raises_nothing():
    assert evaluate_rules(regular(10_000 * S, watched={"AAPL": 9_999 * S}), CFG) == []


def test_symbol_silent_only_in_a_session_with_per_symbol_override():
    now = 10_000 * S
    watched = {"AAPL": now - 400 * S, "MSFT": now - 10 * S, "ILLIQ": now - 400 * S}
    found = rules_named(regular(now, watched=watched, silent_override_s={"ILLIQ": 3600}))
    assert set(found) == {("symbol_silent", "AAPL")}
    assert found[("symbol_silent", "AAPL")].value == pytest.approx(400)
    assert rules_named(Observation(now_ns=now, session="closed", watched=watched)) == {}


def test_silence_before_the_open_never_counts_and_the_open_gets_a_grace_period():
    """Last print 19:55 the day before: nothing at 09:30:01, nor until limit + grace after the open."""
    yesterday_evening = OPEN_NS - 13 * 3600 * S
    limit, grace = CFG.symbol_silent_s, CFG.symbol_grace_s
    at_open = regular(OPEN_NS + 1 * S, watched={"AAPL": yesterday_evening})
    assert rules_named(at_open) == {}
    still_grace = regular(OPEN_NS + int((limit + grace - 1) * S), watched={"AAPL": yesterday_evening})
    assert rules_named(still_grace) == {}
    late = regular(OPEN_NS + int((limit + grace + 1) * S), watched={"AAPL": yesterday_evening})
    assert ("symbol_silent", "AAPL") in rules_named(late)


def test_a_symbol_just_started_gets_the_grace_period_and_then_alerts():
    started = 5_000 * S
    limit, grace = CFG.symbol_silent_s, CFG.symbol_grace_s
    quiet = {"NEW": None}
    assert rules_named(regular(started + int((limit + grace - 1) * S), watched=quiet,
                               watched_since_ns={"NEW": started})) == {}
    assert ("symbol_silent", "NEW") in rules_named(regular(started + int((limit + grace + 1) * S), watched=quiet,
                                                           watched_since_ns={"NEW": started}))


def test_extended_sessions_use_their_own_threshold_off_by_default():
    now = 10_000 * S
    pre = Observation(now_ns=now, session="pre", session_start_ns=OPEN_NS, watched={"AAPL": now - 3000 * S})
    assert rules_named(pre) == {}
    strict = AlertSettings(symbol_silent_extended_s=600)
    assert {f.rule for f in evaluate_rules(pre, strict)} == {"symbol_silent"}


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"heartbeat_age_s": 4.0}, "heartbeat_missing"),
        ({"feed_connected": False}, "heartbeat_missing"),
        ({"dtn_connected": False}, "iqconnect_disconnected"),
        ({"iqconnect_problem": "IQConnect exited with code 3", "iqconnect_restarts": 1}, "iqconnect_failing"),
        ({"bus_reachable": False}, "kafka_unreachable"),
        ({"spool_growth_bytes_per_s": 10.0}, "spool_growing"),
        ({"dropped_recent": 3}, "events_dropped"),
        ({"rejected_recent": 1}, "events_rejected"),
        ({"unwatched": ("QQQ",)}, "symbols_over_limit"),
        ({"spool_write_error": "[Errno 28] No space left on device"}, "spool_write_failed"),
        ({"storage_write_failures_recent": 2}, "storage_write_failures"),
        ({"consumer_lag": 1_000_000}, "consumer_lag"),
        ({"errors_per_min": 500}, "error_rate"),
        ({"disk_free_pct": 3.0}, "disk_free_low"),
        ({"rss_slope_bytes_per_h": 2**30}, "memory_growth"),
        ({"live_p99_ms": 250.0, "live_samples": 1000}, "live_latency"),
        ({"fresh_p99_ms": 2500.0, "fresh_samples": 1000}, "storage_freshness"),
        ({"backup_degraded": "No space left on device"}, "backup_degraded"),
        ({"failing_jobs": {"writer": "StorageUnavailable"}}, "job_failing"),
        ({"storage_down_since_ns": 900 * S, "storage_error": "Connection refused"}, "storage_unavailable"),
    ],
)
def test_each_rule_fires_on_its_condition(changes, rule):
    obs = Observation(now_ns=1000 * S, **changes)
    assert rule in {f.rule for f in evaluate_rules(obs, CFG)}


@pytest.mark.parametrize(
    "changes",
    [
        {"live_p99_ms": 99.0, "live_samples": 10_000},  # under the objective
        {"live_p99_ms": 900.0, "live_samples": CFG.latency_min_samples - 1},  # too few events to judge
        {"fresh_p99_ms": 999.0, "fresh_samples": 10_000},
        {"fresh_p99_ms": 5000.0, "fresh_samples": 3},
        {"rss_slope_bytes_per_h": None},  # still warming up
        {"rss_slope_bytes_per_h": CFG.memory_growth_mib_per_h * 2**20 * 0.9},
        {"dropped_recent": 0},
    ],
)
def test_rules_stay_silent_short_of_their_condition(changes):
    assert evaluate_rules(Observation(now_ns=1000 * S, **changes), CFG) == []


def test_condition_pends_for_its_duration_then_fires_and_resolves():
    book = AlertBook()
    slow = Finding("live_latency", "bus", "warning", "p99 high", for_s=30)
    assert [a.state for a in book.evaluate([slow], 0)] == ["pending"]
    assert book.evaluate([slow], 10 * S) == []
    fired = book.evaluate([slow], 30 * S)
    assert [a.state for a in fired] == ["firing"] and fired[0].fired_ns == 30 * S
    resolved = book.evaluate([], 40 * S)
    assert [(a.state, a.resolved_ns) for a in resolved] == [("resolved", 40 * S)]
    assert book.active() == []


def test_blip_shorter_than_for_leaves_no_alert():
    book = AlertBook()
    blip = Finding("live_latency", "bus", "warning", "p99 high", for_s=30)
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


def test_storage_unavailable_pends_then_fires_saying_since_when_and_what_waits():
    book = AlertBook()
    down = Observation(now_ns=1000 * S, storage_down_since_ns=1000 * S, storage_error="Connection refused",
                       storage_pending_writes=3)
    assert [(a.rule, a.state) for a in book.evaluate(evaluate_rules(down, CFG), down.now_ns)] == [
        ("storage_unavailable", "pending")]
    later = Observation(now_ns=1006 * S, storage_down_since_ns=1000 * S, storage_error="Connection refused",
                        storage_pending_writes=3)
    (fired,) = book.evaluate(evaluate_rules(later, CFG), later.now_ns)
    assert (fired.state, fired.severity, fired.subject) == ("firing", "critical", "storage")
    assert "for 6 s" in fired.summary and "Connection refused" in fired.summary and "3 operator" in fired.summary
    back = Observation(now_ns=1010 * S)
    assert [a.state for a in book.evaluate(evaluate_rules(back, CFG), back.now_ns)] == ["resolved"]


def test_while_storage_is_down_its_failing_inserts_are_not_a_second_alert():
    down = Observation(now_ns=1000 * S, storage_down_since_ns=990 * S, storage_write_failures_recent=7)
    assert {f.rule for f in evaluate_rules(down, CFG)} == {"storage_unavailable"}


def test_stored_alerts_merge_into_the_book_and_the_latest_version_wins():
    book = AlertBook()
    book.evaluate([Finding("disk_free_low", "data_dir", "critical", "3% free")], 10 * S)
    (live,) = book.active()
    older = replace(live, summary="older row", updated_ns=5 * S)
    newer_elsewhere = Alert("symbol_silent", "AAPL", "warning", "acknowledged", "silent", started_ns=S,
                            updated_ns=20 * S, acked_by="ops-ben", acked_ns=20 * S)
    resolved = Alert("heartbeat_missing", "level1", "critical", "resolved", "gone", started_ns=S, updated_ns=30 * S)
    book.merge([older, newer_elsewhere, resolved])
    assert {(a.rule, a.summary, a.acked_by) for a in book.active()} == {
        ("disk_free_low", "3% free", ""), ("symbol_silent", "silent", "ops-ben")}
    book.merge([replace(live, summary="acknowledged elsewhere", updated_ns=40 * S)])
    assert {a.summary for a in book.active()} == {"acknowledged elsewhere", "silent"}

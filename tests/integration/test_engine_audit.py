"""Every engine action is in its instance's audit chain: starts (with what changed), symbol starts and
stops, acknowledgements, stops; the chain runs on across restarts."""

from __future__ import annotations

import json

import pytest

from config import load_settings
from runtime.engine import Engine
from storage.audit_chain import verify
from storage.audit_trail import all_records
from tests.conftest import CLICKHOUSE_PORT, unique_name
from tests.integration.pipeline import wait_until


def _settings(tmp_path, instance: str, database: str, **changes):
    return load_settings(data_dir=tmp_path, instance_id=instance, storage={"database": database},
                         monitoring={"enabled": False}, alerts={"disk_free_min_pct": 100},
                         **{"feed": {"symbols": ["AAPL"], "simulator_rate": 50}, **changes})


@pytest.mark.timeout(180)
def test_engine_actions_and_each_start_with_the_settings_that_changed_are_chained(chdb_store, tmp_path):
    instance = unique_name("audited")
    engine = Engine(_settings(tmp_path, instance, chdb_store.database), store=chdb_store).start()
    try:
        engine.start_symbol("NVDA", by="anna")
        engine.stop_symbol("NVDA", by="anna")
        # disk_free_min_pct = 100: the host sampler's first sample makes disk_free_low fire, a real alert to ack
        wait_until(lambda: any(a.state == "firing" for a in engine.alert_book.active()), 30, "an alert firing")
        engine.acknowledge("disk_free_low", "data_dir", by="anna", note="cleaning up")
    finally:
        engine.stop()
    changed = _settings(tmp_path, instance, chdb_store.database,
                        feed={"symbols": ["AAPL"], "simulator_rate": 50, "watch_limit": 400, "password": "hunter2"})
    second = Engine(changed, store=chdb_store).start()
    second.stop()

    records = [r for r in all_records(chdb_store) if r.source == instance]
    assert [(r.seq, r.actor if r.action not in ("engine_start", "engine_stop") else "", r.action, r.subject)
            for r in records] == [
        (1, "", "engine_start", instance), (2, "anna", "start_symbol", "NVDA"), (3, "anna", "stop_symbol", "NVDA"),
        (4, "anna", "acknowledge", "disk_free_low/data_dir"), (5, "", "engine_stop", instance),
        (6, "", "engine_start", instance), (7, "", "engine_stop", instance)]
    (summary,) = verify(records)
    assert summary.ok and summary.head == records[-1]
    first_start, second_start = (json.loads(r.details) for r in records if r.action == "engine_start")
    assert first_start["changed"] is None and first_start["session"] == engine.source
    assert second_start["previous"] == first_start["digest"] != second_start["digest"]
    assert second_start["changed"] == {"feed.password": ["", "**********"], "feed.watch_limit": [500, 400]}
    assert not any("hunter2" in r.details for r in records)
    assert records[3].details == "cleaning up"


@pytest.mark.timeout(60)
def test_an_attached_dashboard_audits_its_starts_in_its_own_chain_with_operator_changes(server_store, tmp_path):
    from dashboard.passwords import hash_password
    from runtime.attached import AttachedRuntime

    instance = unique_name("shared")  # a collector may run under the same instance id: its own chain
    entry = {"role": "operator", "password_hash": hash_password("anna-long-password", ln=10)}
    for operators in ({}, {"anna": entry}):
        settings = load_settings(data_dir=tmp_path, instance_id=instance, monitoring={"enabled": False},
                                 storage={"backend": "server", "database": server_store.database,
                                          "port": CLICKHOUSE_PORT, "embedded_writer": False},
                                 bus={"kind": "kafka"}, dashboard={"attach": True, "operators": operators})
        view = AttachedRuntime(settings, store=server_store).start()
        view.start_symbol("NVDA", by="local")
        view.stop()
    records = [r for r in all_records(server_store) if r.source == f"dashboard:{instance}"]
    assert [(r.seq, r.action) for r in records] == [(1, "dashboard_start"), (2, "start_symbol"),
                                                    (3, "dashboard_start"), (4, "start_symbol")]
    assert verify(records)[0].ok
    changed = json.loads(records[2].details)["changed"]
    assert changed == {"dashboard.operators": [{}, "<absent>"], "dashboard.operators.anna.role": ["<absent>", "operator"],
                       "dashboard.operators.anna.password_hash": ["<absent>", "**********"],
                       "dashboard.operators.anna.password_sha256": ["<absent>", None]}

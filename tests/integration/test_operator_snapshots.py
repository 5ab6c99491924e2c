"""Operator tables (alerts, audit log, symbols, outages, uptime minutes) snapshotted beside the backup and restored
into a rebuilt database, on the ClickHouse server and chDB."""

from __future__ import annotations

import pytest

from alerts.lifecycle import Alert
from alerts.rules import Observation, evaluate_rules
from alerts.store import AlertStore
from config import AlertSettings
from runtime.symbols import SymbolRegistry
from storage.health_minutes import HealthMinute, save_minutes
from storage.migrate import migrate
from storage.operator_backup import (
    OPERATOR_TABLES,
    OperatorSnapshots,
    export_snapshot,
    list_snapshots,
    restore_latest,
    table_columns,
)
from storage.segments import manifest_path
from tests.events_factory import T0_NS, FakeClock

pytestmark = pytest.mark.timeout(60)


def _fill(store) -> None:
    alerts = AlertStore(store)
    alerts.save([Alert("disk_free_low", "data_dir", "critical", "acknowledged", "only 4% disk free", started_ns=1,
                       updated_ns=5, value=4.0, fired_ns=2, acked_by="ana", acked_ns=5, ack_note="cleaning up"),
                 Alert("consumer_lag", "storage", "warning", "resolved", "writer is 200000 events behind",
                       started_ns=3, updated_ns=9, value=None, fired_ns=4, resolved_ns=9)])
    alerts.audit("ana", "acknowledge", "disk_free_low/data_dir", "cleaning up", ts_ns=5)
    alerts.audit("bo", "start_symbol", "NVDA", "depth=False", ts_ns=6)
    store.insert_columns("audit_log", ["ts_ns", "actor", "action", "subject", "details"],  # from before the chains
                         [[4], ["ana"], ["login"], ["dashboard"], [""]])
    SymbolRegistry(store).set("NVDA", level1=True, silent_after_s=90.5, by="bo")
    store.insert_columns("feed_outages", ["source", "connection", "symbol", "cause", "start_ns", "end_ns", "recorded_ns"],
                         [["a@1", "a@1"], ["level1", "level1"], ["", "MSFT"], ["socket closed", "silent"],
                          [100, 150], [200, -1], [300, 310]])
    store.insert_columns("rollouts", ["rollout_id", "revision", "state", "begun_by", "updated_ns", "record"],
                         [["r1", "r1"], [1, 2], ["starting", "waiting"], ["bo", "bo"], [7, 8], ["{}", "{}"]])
    save_minutes(store, "a", [HealthMinute("feed", T0_NS - T0_NS % 60_000_000_000, True, 12),
                              HealthMinute("writer", T0_NS - T0_NS % 60_000_000_000, False, 12)], T0_NS)


def _rows(store) -> dict[str, list[tuple]]:
    return {t.name: sorted((tuple(r) for r in store.query(
        f"SELECT {', '.join(table_columns(store, t.name))} FROM {store.table(t.name)}")), key=repr)
        for t in OPERATOR_TABLES}


def test_operator_tables_come_back_in_a_rebuilt_database_and_a_second_restore_adds_nothing(store, tmp_path):
    migrate(store)
    _fill(store)
    before = _rows(store)
    assert all(before.values())
    path = export_snapshot(store, tmp_path, instance_id="a", now_ns=T0_NS + 10**9)
    assert manifest_path(path).exists() and list_snapshots(tmp_path) == [path]

    store.execute(f"DROP DATABASE {store.database}")
    migrate(store)
    first = restore_latest(store, [tmp_path])
    assert first.snapshot == path and not first.skipped
    assert _rows(store) == before
    second = restore_latest(store, [tmp_path])
    assert set(second.inserted.values()) == {0} and sum(second.already_stored.values()) == sum(map(len, before.values()))
    assert _rows(store) == before  # count() of every table unchanged: no row twice


def test_a_tampered_snapshot_is_passed_over_for_the_one_before_it(chdb_store, tmp_path):
    migrate(chdb_store)
    AlertStore(chdb_store).audit("ana", "login", "dashboard", ts_ns=1)
    older = export_snapshot(chdb_store, tmp_path, instance_id="a", now_ns=T0_NS)
    AlertStore(chdb_store).audit("ana", "logout", "dashboard", ts_ns=2)
    newer = export_snapshot(chdb_store, tmp_path, instance_id="a", now_ns=T0_NS + 10**9)
    with newer.open("ab") as handle:
        handle.write(b"\0")
    chdb_store.execute(f"DROP DATABASE {chdb_store.database}")
    migrate(chdb_store)
    report = restore_latest(chdb_store, [tmp_path])
    assert report.snapshot == older
    (skipped,) = report.skipped
    assert newer.name in skipped and "does not match its manifest" in skipped
    assert chdb_store.query(f"SELECT action FROM {chdb_store.table('audit_trail')}") == [("login",)]


def test_a_column_added_since_the_snapshot_takes_its_default_and_a_column_gone_is_reported(chdb_store, tmp_path):
    migrate(chdb_store)
    AlertStore(chdb_store).audit("ana", "login", "dashboard", ts_ns=1)
    chdb_store.execute(f"ALTER TABLE {chdb_store.table('audit_trail')} ADD COLUMN legacy String DEFAULT 'x'")
    export_snapshot(chdb_store, tmp_path, instance_id="a", now_ns=T0_NS)
    chdb_store.execute(f"DROP DATABASE {chdb_store.database}")
    migrate(chdb_store)
    chdb_store.execute(f"ALTER TABLE {chdb_store.table('audit_trail')} ADD COLUMN chain String DEFAULT 'new'")
    report = restore_latest(chdb_store, [tmp_path])
    assert report.dropped_columns == {"audit_trail": ["legacy"]} and report.inserted["audit_trail"] == 1
    assert chdb_store.query(f"SELECT actor, chain FROM {chdb_store.table('audit_trail')}") == [("ana", "new")]


def test_the_engine_job_snapshots_on_its_interval_keeps_the_newest_and_a_failure_alerts_until_it_recovers(
        chdb_store, tmp_path):
    migrate(chdb_store)
    _fill(chdb_store)
    clock = FakeClock()
    directory = tmp_path / "backup" / "operator"
    job = OperatorSnapshots(chdb_store, directory, instance_id="a", interval_s=300, keep=2, clock_ns=clock)
    assert job.run_if_due(storage_ready=False) is None  # storage down: its own alert speaks, nothing counted
    assert job.health.failures == 0
    written = [job.run_if_due(storage_ready=True)]
    assert job.run_if_due(storage_ready=True) is None  # not due yet
    for _ in range(2):
        clock.advance(300)
        written.append(job.run_if_due(storage_ready=True))
    assert list_snapshots(directory) == written[1:]  # keep = 2
    assert job.health.written == 3 and job.health.last_snapshot == written[-1].name

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the directory should be")
    failing = OperatorSnapshots(chdb_store, blocked / "operator", instance_id="a", interval_s=300, keep=2,
                                clock_ns=clock)
    assert failing.run_if_due(storage_ready=True) is None
    health = failing.health
    assert health.failures == 1 and health.last_error.startswith(("NotADirectoryError", "FileExistsError"))
    findings = evaluate_rules(Observation(now_ns=clock(), operator_snapshot_error=health.last_error), AlertSettings())
    assert [(f.rule, f.subject) for f in findings] == [("operator_snapshot_failed", "operator_snapshot")]
    clock.advance(10)
    assert failing.run_if_due(storage_ready=True) is None  # retried after 30 s, not on every tick
    assert failing.health.failures == 1
    blocked.unlink()
    clock.advance(30)
    assert failing.run_if_due(storage_ready=True) is not None
    assert failing.health.last_error == "" and failing.health.failures == 1
    assert evaluate_rules(Observation(now_ns=clock(), operator_snapshot_error=failing.health.last_error),
                          AlertSettings()) == []

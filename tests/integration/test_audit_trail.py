"""The audit trail in real storage: chains survive restarts and outages, and `python -m alerts.audit verify`
finds a record edited, deleted or reordered on the ClickHouse server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from alerts.store import AlertStore
from storage.audit_chain import verify
from storage.audit_trail import TABLE, AuditFilter, all_records, record_tool_action
from storage.availability import StorageMonitor
from storage.migrate import migrate
from storage.store import Store
from storage.write_behind import WriteBehind
from tests.conftest import CLICKHOUSE_PORT
from tests.integration.pipeline import wait_until

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000


def _actions(store: Store, source: str) -> list[tuple[int, str]]:
    return [(r.seq, r.action) for r in all_records(store) if r.source == source]


@pytest.mark.timeout(120)
def test_a_chain_continues_across_restarts_and_actions_taken_while_storage_is_down(store):
    migrate(store)
    AlertStore(store, audit_source="tickops-1").audit("anna", "start_symbol", "NVDA", "depth=False", ts_ns=1 * S)
    restarted = StorageMonitor(migrated=False)  # a second process, started while storage is not ready
    writes = WriteBehind(store, restarted)
    alerts = AlertStore(store, writes, audit_source="tickops-1")
    alerts.audit("ben", "acknowledge", "disk_free_low/data_dir", "on it", ts_ns=2 * S)
    alerts.audit("ben", "stop_symbol", "NVDA", ts_ns=3 * S)
    assert writes.pending == 2 and _actions(store, "tickops-1") == [(1, "start_symbol")]
    restarted.mark_migrated()
    writes.flush()
    assert _actions(store, "tickops-1") == [(1, "start_symbol"), (2, "acknowledge"), (3, "stop_symbol")]
    record_tool_action(store, "restore", "restore", "/backup", "segments=1")
    (restore, tickops) = verify(all_records(store))
    assert (restore.source, restore.records, restore.ok) == ("restore", 1, True)
    assert (tickops.source, tickops.records, tickops.ok) == ("tickops-1", 3, True)
    newest = alerts.audit_log(where=AuditFilter(actors=("ben",), since_ns=2 * S, until_ns=3 * S))
    assert [(r.actor, r.action) for r in newest] == [("ben", "acknowledge")]


def _verify_cli(database: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")}, "PYTHONPATH": str(ROOT),
           "TICKOPS_STORAGE__BACKEND": "server", "TICKOPS_STORAGE__PORT": str(CLICKHOUSE_PORT),
           "TICKOPS_STORAGE__DATABASE": database}
    return subprocess.run([sys.executable, "-m", "alerts.audit", "verify", *args], cwd=cwd, env=env, check=False,
                          capture_output=True, text=True, timeout=60)


def _trail_of_six(store: Store) -> None:
    migrate(store)
    alerts = AlertStore(store, audit_source="tickops-1")
    for i in range(1, 7):
        alerts.audit("anna", f"action-{i}", "AAPL", f"note {i}", ts_ns=i * S)
    AlertStore(store, audit_source="tickops-2").audit("ben", "login", "ben", ts_ns=7 * S)


def _mutate(store: Store, statement: str, done: str) -> None:
    """ALTER ... UPDATE/DELETE run asynchronously on ClickHouse: wait until the rows show the change."""
    store.execute(statement)
    wait_until(lambda: store.query(done)[0][0] == 1, 30, f"mutation applied: {statement}")


def _verdict_after(store: Store, cwd: Path, statement: str, done: str) -> str:
    """`verify`'s report once ``statement`` has tampered with the trail; it must exit 1."""
    _mutate(store, statement, done)
    tampered = _verify_cli(store.database, cwd)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    return tampered.stdout


@pytest.mark.timeout(120)
def test_verify_names_a_record_edited_on_the_server(server_store, tmp_path):
    _trail_of_six(server_store)
    intact = _verify_cli(server_store.database, tmp_path)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "tickops-1: 6 records, head #6" in intact.stdout and "audit trail intact" in intact.stdout
    table = server_store.table(TABLE)
    report = _verdict_after(
        server_store, tmp_path, f"ALTER TABLE {table} UPDATE actor = 'mallory' WHERE source = 'tickops-1' AND seq = 3",
        f"SELECT count() FROM {table} WHERE actor = 'mallory'")
    assert "edited: tickops-1 #3 (3000000000 mallory action-3 AAPL)" in report
    assert "tickops-2: 1 records" in report and report.count("problem(s)") == 1
    assert "audit trail TAMPERED" in report


@pytest.mark.timeout(120)
def test_verify_names_a_record_deleted_on_the_server(server_store, tmp_path):
    _trail_of_six(server_store)
    table = server_store.table(TABLE)
    report = _verdict_after(server_store, tmp_path,
                            f"ALTER TABLE {table} DELETE WHERE source = 'tickops-1' AND seq = 4",
                            f"SELECT count() = 5 FROM {table} WHERE source = 'tickops-1'")
    assert "missing: tickops-1 #5 (5000000000 anna action-5 AAPL): #4 missing before it" in report


@pytest.mark.timeout(120)
def test_verify_names_records_reordered_on_the_server(server_store, tmp_path):
    """Two records taken out and put back with their seq swapped (the key column cannot be updated in place)."""
    _trail_of_six(server_store)
    table = server_store.table(TABLE)
    columns = "source, seq, ts_ns, actor, action, subject, details, prev_hash, hash"
    rows = server_store.query(f"SELECT {columns} FROM {table} WHERE source = 'tickops-1' AND seq IN (2, 3) "
                              "ORDER BY seq")
    _mutate(server_store, f"ALTER TABLE {table} DELETE WHERE source = 'tickops-1' AND seq IN (2, 3)",
            f"SELECT count() = 4 FROM {table} WHERE source = 'tickops-1'")
    swapped = [rows[1][:1] + (2,) + rows[1][2:], rows[0][:1] + (3,) + rows[0][2:]]
    server_store.insert_columns(TABLE, columns.split(", "), [list(column) for column in zip(*swapped)])
    tampered = _verify_cli(server_store.database, tmp_path)
    assert tampered.returncode == 1
    assert ("reordered: tickops-1 #2 (3000000000 anna action-3 AAPL): it follows the record stored as #3"
            in tampered.stdout)
    assert "tickops-2: 1 records, head #1" in tampered.stdout


def test_verify_exits_2_when_storage_cannot_be_read(tmp_path):
    from tests.ports import free_port

    env_port = str(free_port())
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")}, "PYTHONPATH": str(ROOT),
           "TICKOPS_STORAGE__BACKEND": "server", "TICKOPS_STORAGE__PORT": env_port}
    done = subprocess.run([sys.executable, "-m", "alerts.audit", "verify"], cwd=tmp_path, env=env, check=False,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "could not read the audit trail" in done.stderr


@pytest.mark.timeout(120)
def test_the_restore_cli_records_the_request_and_its_outcome_in_the_restore_chain(server_store, tmp_path):
    from storage.backup import BackupConfig, BackupWriter
    from tests.events_factory import FakeClock, make_events

    backup = tmp_path / "backup"
    writer = BackupWriter(BackupConfig(directory=backup, instance_id="restore-1"), clock=FakeClock())
    writer.append(make_events(300))
    writer.close()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")}, "PYTHONPATH": str(ROOT),
           "TICKOPS_STORAGE__BACKEND": "server", "TICKOPS_STORAGE__PORT": str(CLICKHOUSE_PORT),
           "TICKOPS_STORAGE__DATABASE": server_store.database, "TICKOPS_BACKUP__DIRECTORY": str(backup)}
    done = subprocess.run([sys.executable, "-m", "storage.restore", "--no-progress"], cwd=tmp_path, env=env,
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    records = [r for r in all_records(server_store) if r.source == "restore"]
    assert [(r.seq, r.action, r.subject) for r in records] == [(1, "restore", str(backup)),
                                                               (2, "restore_done", str(backup))]
    inserted = int(re.search(r"\): (\d+) inserted", done.stdout).group(1))
    assert inserted > 0 and f"inserted={inserted} already_stored=0 failed_segments=0" in records[1].details
    assert records[0].actor == records[1].actor != ""  # the OS user who ran it
    assert verify(records)[0].ok



@pytest.mark.timeout(120)
def test_newest_records_deleted_on_the_server_are_detected_with_the_anchor_and_not_without(server_store, tmp_path):
    from storage.audit_anchor import anchor_path

    migrate(server_store)
    anchor = anchor_path(tmp_path / "data")  # the default data_dir, relative to the CLI's working directory
    alerts = AlertStore(server_store, audit_source="tickops-1", audit_anchor=anchor)
    for i in range(1, 7):
        alerts.audit("anna", f"action-{i}", "AAPL", f"note {i}", ts_ns=i * S)
    record_tool_action(server_store, "restore", "restore", "/backup", anchor=anchor)
    assert anchor.read_text().count("\n") == 2  # one line per source
    table = server_store.table(TABLE)
    _mutate(server_store, f"ALTER TABLE {table} DELETE WHERE source = 'tickops-1' AND seq >= 5",
            f"SELECT count() = 4 FROM {table} WHERE source = 'tickops-1'")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    blind = _verify_cli(server_store.database, outside)  # no anchor: the shorter chain is intact in itself
    assert blind.returncode == 0 and "tickops-1: 4 records, head #4" in blind.stdout, blind.stdout + blind.stderr
    assert "no anchor file" in blind.stdout
    for args in ((), ("--anchor", str(anchor))):  # the data_dir's anchor by default, or named
        caught = _verify_cli(server_store.database, tmp_path, *args)
        assert caught.returncode == 1, caught.stdout + caught.stderr
        assert ("truncated: tickops-1: stored head #4 is behind the anchor's #6 (#5..#6 deleted from the chain's end"
                in caught.stdout), caught.stdout
        assert "restore: 1 records, head #1" in caught.stdout and caught.stdout.count("problem(s)") == 1
        assert "anchors: 2 chain head(s) checked" in caught.stdout
    # The dashboard's "Verify the hash chains" checks against the same anchor.
    on_dashboard = {summary.source: summary for summary in alerts.verify_audit()}
    assert [p.kind for p in on_dashboard["tickops-1"].problems] == ["truncated"]
    assert on_dashboard["restore"].ok

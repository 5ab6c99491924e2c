"""Restore: events -> backup segments -> storage, exactly once, on the ClickHouse server and chDB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from storage.backup import BackupConfig, BackupWriter
from storage.bars import query_bars
from storage.migrate import migrate
from storage.restore import expand_paths, restore_segments
from storage.rows import IDENTITY_COLUMNS, TABLE_COLUMNS, identity_of, stored_identity, table_for, to_batches
from storage.segments import list_segments
from tests.conftest import CLICKHOUSE_PORT
from tests.events_factory import T0_NS, FakeClock, make_events

ROOT = Path(__file__).resolve().parents[2]
MINUTE = 60_000_000_000


def _backup(directory: Path, events: list, **config) -> list[Path]:
    writer = BackupWriter(
        BackupConfig(directory=directory, instance_id="restore-1", segment_max_bytes=8_000, flush_max_bytes=4_000, **config),
        clock=FakeClock(),
    )
    for start in range(0, len(events), 200):
        writer.append(events[start : start + 200])
    writer.close()
    return list_segments(directory)


def _stored_keys(store) -> dict[str, set]:
    keys = {}
    for table, columns in IDENTITY_COLUMNS.items():
        rows = store.query(f"SELECT {', '.join(columns)} FROM {store.table(table)}")
        keys[table] = {stored_identity(table, row) for row in rows}
    return keys


def _counts(store) -> dict[str, int]:
    return {table: store.query(f"SELECT count() FROM {store.table(table)}")[0][0] for table in TABLE_COLUMNS}


def _expected_keys(events) -> dict[str, set]:
    keys: dict[str, set] = {table: set() for table in TABLE_COLUMNS}
    for event in events:
        table = table_for(event)
        if table:
            keys[table].add(identity_of(table, event))
    return keys


@pytest.mark.timeout(60)
def test_restored_rows_are_the_backed_up_events_and_restoring_twice_adds_nothing(store, tmp_path):
    events = make_events(6_000)
    segments = _backup(tmp_path, events)
    assert len(segments) > 2
    migrate(store)

    first = restore_segments(store, segments)
    expected = _expected_keys(events)
    assert first.inserted == sum(map(len, expected.values())) and not first.failed
    assert _stored_keys(store) == expected
    counts = _counts(store)
    assert counts == {table: len(keys) for table, keys in expected.items()}

    second = restore_segments(store, segments)
    assert second.inserted == 0 and second.already_stored == first.inserted
    assert _counts(store) == counts  # plain count(), no FINAL: nothing was inserted twice
    (source_of_rows,) = store.query(f"SELECT DISTINCT bus_partition FROM {store.table('trades')}")[0]
    assert source_of_rows == -1  # restored rows say they did not come from the bus


@pytest.mark.timeout(60)
def test_a_partly_stored_backup_is_completed_without_doubling_what_was_there(chdb_store, tmp_path):
    events = make_events(3_000)
    segments = _backup(tmp_path, events)
    migrate(chdb_store)
    restore_segments(chdb_store, segments[:1])
    stored_before = sum(_counts(chdb_store).values())
    report = restore_segments(chdb_store, segments)
    assert 0 < stored_before == report.already_stored
    assert _counts(chdb_store) == {table: len(keys) for table, keys in _expected_keys(events).items()}


@pytest.mark.timeout(60)
def test_trades_another_collector_stored_are_not_restored_again_and_the_bars_stay_exact(store, tmp_path):
    events = make_events(2_000)
    segments = _backup(tmp_path, events)  # this instance's backup
    migrate(store)
    trades = [e for e in events if table_for(e) == "trades"]
    from_peer = [msgspec.structs.replace(t, source="peer@1", recv_ns=t.recv_ns + 7) for t in trades]
    for batch in to_batches(from_peer, stored_ns=1).values():  # the same prints, stored by another collector
        store.insert_columns(batch.table, batch.columns, batch.data)
    bars_before = query_bars(store, "AAPL", 0, 2**62)

    report = restore_segments(store, segments)
    assert report.already_stored == len(trades)
    assert _counts(store)["trades"] == len(trades)  # count() without FINAL: each print once
    assert _stored_keys(store) == _expected_keys(events)
    assert query_bars(store, "AAPL", 0, 2**62) == bars_before and sum(b.trades for b in bars_before) > 0


@pytest.mark.timeout(60)
def test_a_tampered_segment_is_skipped_with_a_clear_error_unless_forced(chdb_store, tmp_path):
    events = make_events(3_000)
    segments = _backup(tmp_path, events)
    tampered = segments[1]
    with tampered.open("ab") as handle:
        handle.write(bytes(100))  # the frames still read, but the file is not what was sealed
    migrate(chdb_store)

    report = restore_segments(chdb_store, segments)
    (failed,) = report.failed
    assert failed.path == tampered and "does not match its manifest" in failed.error and "--force" in failed.error
    expected_total = sum(map(len, _expected_keys(events).values()))
    stored_without = sum(_counts(chdb_store).values())
    assert stored_without < expected_total

    forced = restore_segments(chdb_store, segments, force=True)
    assert not forced.failed and forced.inserted == expected_total - stored_without
    assert _counts(chdb_store) == {table: len(keys) for table, keys in _expected_keys(events).items()}


@pytest.mark.timeout(60)
def test_a_time_range_restores_only_the_events_inside_it(chdb_store, tmp_path):
    events = make_events(6_000)  # 20 events per second: 5 minutes of ts_ns
    segments = _backup(tmp_path, events)
    migrate(chdb_store)
    since, until = T0_NS + MINUTE, T0_NS + 2 * MINUTE
    report = restore_segments(chdb_store, segments, since_ns=since, until_ns=until)
    inside = [e for e in events if table_for(e) and since <= e.ts_ns < until]
    assert report.inserted == len(inside)
    assert any(outcome.status == "out_of_range" for outcome in report.segments)
    (low, high) = chdb_store.query(f"SELECT min(ts_ns), max(ts_ns) FROM {chdb_store.table('quotes')}")[0]
    assert since <= low and high < until


@pytest.mark.timeout(90)
def test_the_cli_restores_into_the_configured_store_and_a_rerun_inserts_nothing(server_store, tmp_path):
    events = make_events(2_000)
    backup_dir = tmp_path / "backup"
    _backup(backup_dir, events)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")},
        "PYTHONPATH": str(ROOT),
        "TICKOPS_STORAGE__BACKEND": "server",
        "TICKOPS_STORAGE__PORT": str(CLICKHOUSE_PORT),
        "TICKOPS_STORAGE__DATABASE": server_store.database,
        "TICKOPS_BACKUP__DIRECTORY": str(backup_dir),
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "storage.restore", "--no-progress", *args], cwd=tmp_path, env=env,
                              check=False, capture_output=True, text=True, timeout=60)

    expected = sum(1 for e in events if table_for(e))
    first = cli()
    assert first.returncode == 0, first.stderr
    assert f"{expected} inserted, 0 already stored, 0 segment(s) failed" in first.stdout
    again = cli(*map(str, expand_paths([backup_dir])))
    assert again.returncode == 0 and f"0 inserted, {expected} already stored" in again.stdout
    assert sum(_counts(server_store).values()) == expected

    missing = cli(str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "nowhere does not exist" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = cli(str(tmp_path / "empty"))
    assert empty.returncode == 1 and "no backup segments" in empty.stderr

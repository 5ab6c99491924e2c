"""Fault: the backup disk fills up while events keep arriving.

A real 1 MB tmpfs is the backup disk (ENOSPC comes from the kernel, nothing is faked).
Ingestion into storage goes on throughout; the backup turns degraded and counts the
failure and the events it could not keep; after space is freed it resumes by itself.
Reconciliation of the backup against storage then reports exactly the events the
backup counted as dropped, and nothing else.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.validation import Validator
from storage.backup import BackupConfig, BackupWriter
from storage.migrate import migrate
from storage.reconcile import compare, read_backup, read_store
from storage.rows import table_for, to_batches
from storage.segments import is_sealed, list_segments, verify_segment
from tests.events_factory import FakeClock, make_events


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs, unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 1 MB tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tickops-test", str(mount_point)],
                            check=False, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def _fill(disk: Path, leave_bytes: int) -> Path:
    """Occupy the disk until only ``leave_bytes`` are free."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    with filler.open("wb") as handle:
        handle.write(bytes(stat.f_bavail * stat.f_frsize - leave_bytes))
    return filler


@pytest.mark.timeout(60)
def test_full_backup_disk_degrades_the_backup_ingestion_continues_and_backups_resume_after_space_is_freed(
    small_disk, store
):
    migrate(store)
    clock = FakeClock()
    writer = BackupWriter(
        BackupConfig(directory=small_disk / "backup", instance_id="full-1", segment_max_bytes=96 * 1024,
                     flush_max_bytes=16 * 1024, retry_ns=10**9),
        clock=clock,
    )
    filler = _fill(small_disk, leave_bytes=160 * 1024)
    events = make_events(40_000)
    stored = 0

    def ingest(batch) -> None:
        nonlocal stored
        writer.append(batch)  # the backup first, as the collector does; it must never raise
        for table_batch in to_batches(batch, stored_ns=clock()).values():
            stored += store.insert_columns(table_batch.table, table_batch.columns, table_batch.data)
        clock.advance(0.4)

    for start in range(0, 30_000, 2_000):
        ingest(events[start : start + 2_000])
    full = writer.health
    assert full.state == "degraded" and full.write_errors >= 1 and full.events_dropped > 0
    assert f"[Errno {errno.ENOSPC}]" in full.last_error

    filler.unlink()
    for start in range(30_000, 40_000, 2_000):
        ingest(events[start : start + 2_000])
    assert writer.health.state == "ok"
    writer.close()

    final = writer.health
    assert stored == sum(1 for e in events if table_for(e))  # ingestion never stopped
    assert final.events_appended == 40_000 == final.events_written + final.events_dropped
    segments = list_segments(small_disk / "backup")
    assert segments and all(is_sealed(segment) for segment in segments)
    backed_up = [e for segment in segments for batch in verify_segment(segment).batches() for e in batch]
    assert len(backed_up) == final.events_written and backed_up[-1] == events[-1]
    validator = Validator()
    validator.feed(backed_up)
    assert validator.missing == final.events_dropped and validator.counts["seq_duplicate"] == 0

    backup_keys = {(e.source, e.seq) for e in backed_up}
    lost_stored = sum(1 for e in events if table_for(e) and (e.source, e.seq) not in backup_keys)
    report = compare(
        [read_store(store), read_backup([small_disk / "backup"]).counts], detail_cells=100_000
    )
    assert report.mismatches and not report.problems
    assert sum(f.missing.get("backup", 0) for f in report.mismatches) == lost_stored
    assert all("clickhouse" not in f.missing for f in report.mismatches)

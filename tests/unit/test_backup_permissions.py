"""Permission denied on the backup directory: ingestion goes on, the backup degrades, then recovers.

Root ignores file modes, so when the suite runs as root the unwritable phase also drops
the effective uid to ``nobody``; the errors the writer meets are then real EACCES
from the kernel, as for a service account whose directory was re-owned.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.backup import BackupConfig, BackupWriter
from storage.segments import is_sealed, list_segments, read_manifest, verify_segment
from tests.events_factory import FakeClock, make_events

pytestmark = pytest.mark.timeout(30)
NOBODY = 65534


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory ``nobody`` can reach (pytest's tmp dirs are private to root)."""
    parent = Path(tempfile.mkdtemp(prefix="tickops-perm-"))
    parent.chmod(0o755)
    yield parent
    parent.chmod(0o755)
    shutil.rmtree(parent)


@contextlib.contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    directory.chmod(0o555)
    as_root = os.geteuid() == 0
    if as_root:
        os.seteuid(NOBODY)
    try:
        yield
    finally:
        if as_root:
            os.seteuid(0)
        directory.chmod(0o755)


def test_permission_denied_degrades_the_backup_without_stopping_appends_and_recovery_follows(shared_dir):
    directory = shared_dir / "backup"
    clock = FakeClock()
    config = BackupConfig(directory=directory, instance_id="perm-1", segment_max_ns=60 * 10**9,
                          flush_max_bytes=4_000, retry_ns=10**9)
    writer = BackupWriter(config, clock=clock)
    writer.append(make_events(200))
    writer.flush()
    assert writer.health.state == "ok"

    with unwritable(directory):
        writer.rotate_if_due(clock.advance(61))  # sealing needs a new manifest file: EACCES
        failed = writer.health
        assert failed.state == "degraded" and failed.write_errors == 1
        assert "PermissionError" in failed.last_error and failed.unsealed_segments == 1
        for start in range(201, 5_201, 100):  # ingestion goes on; only one frame's worth stays pending
            writer.append(make_events(100, start_seq=start))
            clock.advance(0.5)
        during = writer.health
        assert during.state == "degraded" and during.events_dropped > 0 and during.write_errors > 1

    writer.rotate_if_due(clock.advance(2))  # the retry after permissions are back
    recovered = writer.health
    assert recovered.state == "ok" and recovered.unsealed_segments == 0 and recovered.degraded_since_ns is None
    writer.append(make_events(100, start_seq=5_201))
    writer.close()

    final = writer.health
    segments = list_segments(directory)
    assert all(is_sealed(segment) for segment in segments)
    stored = [event.seq for segment in segments for batch in verify_segment(segment).batches() for event in batch]
    assert len(stored) == len(set(stored)) == final.events_written == sum(read_manifest(s).count for s in segments)
    assert final.events_appended == 5_300 == final.events_written + final.events_dropped
    assert stored[:200] == list(range(1, 201)) and stored[-100:] == list(range(5_201, 5_301))

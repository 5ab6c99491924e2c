"""The mirror's disk fills up (a real 1 MB tmpfs): copies fail cleanly, are counted and alerted, the backup goes on,
and the mirror catches up by itself once space returns."""

from __future__ import annotations

import pytest

from storage.backup import BackupConfig, BackupWriter
from storage.mirror import BackupMirror
from storage.segments import list_segments, manifest_path
from tests.events_factory import FakeClock, make_events
from tests.integration.test_backup_disk_full import _fill, small_disk  # noqa: F401 - the 1 MB tmpfs fixture


@pytest.mark.timeout(60)
def test_a_full_mirror_disk_leaves_no_partial_copy_and_the_mirror_catches_up_when_space_returns(small_disk, tmp_path):
    clock = FakeClock()
    source = tmp_path / "backup"
    writer = BackupWriter(BackupConfig(directory=source, instance_id="m-1", segment_max_bytes=40_000,
                                       flush_max_bytes=8_000, compression_level=1), clock=clock)
    events = make_events(20_000)
    for start in range(0, len(events), 200):
        writer.append(events[start:start + 200])
    writer.close()
    segments = list_segments(source)
    filler = _fill(small_disk, leave_bytes=3 * 40_000)
    mirror = BackupMirror(source, small_disk, retention_ns=14 * 86_400 * 10**9, clock_ns=clock)

    copied = mirror.sync()
    health = mirror.health
    assert 0 < copied < len(segments)
    assert health.state == "failing" and "No space left on device" in health.last_error
    assert health.pending == len(segments) - copied
    mirrored = list_segments(small_disk)
    assert len(mirrored) == copied and not list(small_disk.glob("*.tmp"))
    for copy in mirrored:  # what is there is whole and sealed
        assert manifest_path(copy).exists() and copy.read_bytes() == (source / copy.name).read_bytes()

    filler.unlink()
    assert mirror.sync() == len(segments) - copied
    assert mirror.health.state == "ok" and mirror.health.pending == 0
    assert [p.name for p in list_segments(small_disk)] == [p.name for p in segments]

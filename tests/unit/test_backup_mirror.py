"""The backup mirror on real files: sealed segments and snapshots copied and verified by sha256; a missing mount, a
changed source and expired files are counted, alerted and never stop the backup."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.rules import Observation, evaluate_rules
from config import AlertSettings
from storage.backup import BackupConfig, BackupWriter
from storage.mirror import BackupMirror
from storage.operator_backup import SUBDIRECTORY, SnapshotManifest
from storage.segments import is_sealed, list_segments, manifest_path, write_manifest
from tests.events_factory import T0_NS, FakeClock, make_events

pytestmark = pytest.mark.timeout(60)

DAY_NS = 86_400 * 10**9


def _backup(directory: Path, clock: FakeClock, events: int = 3_000, *, close: bool = True) -> BackupWriter:
    writer = BackupWriter(BackupConfig(directory=directory, instance_id="m-1", segment_max_bytes=8_000,
                                       flush_max_bytes=4_000), clock=clock)
    stream = make_events(events)
    for start in range(0, len(stream), 100):
        writer.append(stream[start:start + 100])
    if close:
        writer.close()
    else:
        writer.append(make_events(5, start_seq=events + 1))
        writer.flush()  # a small last frame, written into an open segment that stays unsealed
    return writer


def _snapshot(directory: Path, created_ns: int) -> Path:
    """A sealed operator snapshot file as storage/operator_backup.py writes it (the bytes do not matter here)."""
    import hashlib

    (directory / SUBDIRECTORY).mkdir(parents=True, exist_ok=True)
    path = directory / SUBDIRECTORY / "20261118T000000000000Z-m-1.ops.ndjson.zst"
    body = b"snapshot bytes"
    path.write_bytes(body)
    write_manifest(path, SnapshotManifest(snapshot=path.name, instance_id="m-1", database="d", created_ns=created_ns,
                                          created="", tables={}, bytes=len(body),
                                          sha256=hashlib.sha256(body).hexdigest()))
    return path


def _alerts(mirror: BackupMirror, clock: FakeClock) -> list[tuple[str, str]]:
    obs = Observation(now_ns=clock(), backup_mirror_error=mirror.health.last_error)
    return [(f.rule, f.subject) for f in evaluate_rules(obs, AlertSettings())]


def test_sealed_segments_and_snapshots_are_copied_byte_for_byte_once_and_open_segments_wait(tmp_path):
    clock = FakeClock()
    source, target = tmp_path / "backup", tmp_path / "mirror"
    target.mkdir()
    writer = _backup(source, clock, close=False)
    snapshot = _snapshot(source, clock())
    sealed = [s for s in list_segments(source) if is_sealed(s)]
    open_segment = [s for s in list_segments(source) if not is_sealed(s)]
    assert len(sealed) > 3 and open_segment
    mirror = BackupMirror(source, target, retention_ns=14 * DAY_NS, clock_ns=clock)

    assert mirror.sync() == len(sealed) + 1
    for path in [*sealed, snapshot]:
        copy = target / path.relative_to(source)
        assert copy.read_bytes() == path.read_bytes()
        assert manifest_path(copy).read_bytes() == manifest_path(path).read_bytes()
    assert not (target / open_segment[0].name).exists()
    health = mirror.health
    assert (health.state, health.files_copied, health.pending, health.failures) == ("ok", len(sealed) + 1, 0, 0)
    assert health.bytes_copied == sum(p.stat().st_size for p in [*sealed, snapshot])

    assert mirror.sync() == 0  # nothing new
    writer.close()  # the open segment is sealed at rotation: the next pass takes it
    assert mirror.sync() == 1 and (target / open_segment[0].name).exists()
    assert not list(target.rglob("*.tmp"))


def test_a_missing_mirror_mount_is_counted_and_alerts_the_backup_goes_on_and_copies_resume_once_it_is_there(tmp_path):
    clock = FakeClock()
    source, target = tmp_path / "backup", tmp_path / "mnt" / "mirror"
    writer = _backup(source, clock, close=False)
    mirror = BackupMirror(source, target, retention_ns=14 * DAY_NS, clock_ns=clock)
    assert mirror.sync() == 0
    health = mirror.health
    assert health.state == "failing" and health.failures == 1 and "is its disk mounted?" in health.last_error
    assert not target.exists()  # never created: that would fill the disk the mount point lives on
    assert _alerts(mirror, clock) == [("backup_mirror_failed", "backup_mirror")]
    writer.append(make_events(500, start_seq=10_000))  # the backup does not wait for the mirror
    writer.rotate_if_due()
    assert writer.health.state == "ok"
    writer.close()

    target.mkdir(parents=True)
    assert mirror.sync() == len(list_segments(source))
    assert mirror.health.state == "ok" and mirror.health.last_error == "" and mirror.health.failures == 1
    assert _alerts(mirror, clock) == []


def test_a_source_segment_changed_after_sealing_is_not_copied_and_counted_once(tmp_path):
    clock = FakeClock()
    source, target = tmp_path / "backup", tmp_path / "mirror"
    target.mkdir()
    _backup(source, clock)
    segments = list_segments(source)
    with segments[1].open("ab") as handle:
        handle.write(b"bit rot")
    mirror = BackupMirror(source, target, retention_ns=14 * DAY_NS, clock_ns=clock)
    assert mirror.sync() == len(segments) - 1
    health = mirror.health
    assert health.state == "failing" and health.checksum_mismatches == 1 and health.pending == 1
    assert segments[1].name in health.last_error and "does not match its manifest" in health.last_error
    assert not (target / segments[1].name).exists() and not list(target.glob("*.tmp"))
    assert mirror.sync() == 0 and mirror.health.checksum_mismatches == 1  # not read again until it changes
    assert _alerts(mirror, clock) == [("backup_mirror_failed", "backup_mirror")]


def test_files_older_than_the_retention_leave_the_mirror_and_are_not_copied_again(tmp_path):
    clock = FakeClock(T0_NS)
    source, target = tmp_path / "backup", tmp_path / "mirror"
    target.mkdir()
    _backup(source, clock)
    mirror = BackupMirror(source, target, retention_ns=2 * DAY_NS, clock_ns=clock)
    copied = mirror.sync()
    assert copied > 0
    clock.advance(3 * 86_400)
    assert mirror.sync() == 0
    assert list_segments(target) == [] and mirror.health.files_removed == copied
    assert list(target.iterdir()) == []


def test_a_mirror_on_the_backup_directory_itself_is_refused_when_settings_load(tmp_path):
    from config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="backup.mirror_directory .*must be another disk or mount"):
        load_settings(backup={"directory": tmp_path / "b", "mirror_directory": tmp_path / "b" / "."})
    assert load_settings(backup={"directory": tmp_path / "b", "mirror_directory": tmp_path / "m"}).backup.mirror_directory

"""Backup segments: round trip, rotation, crash recovery, retention, and append that never raises."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from events import Trade
from storage.backup import BackupConfig, BackupDirLocked, BackupWriter
from storage.segments import (
    ChecksumMismatch,
    ManifestMissing,
    is_sealed,
    list_segments,
    read_manifest,
    verify_segment,
)
from tests.events_factory import FakeClock, make_events

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(30)


def _config(directory: Path, **overrides) -> BackupConfig:
    return BackupConfig(directory=directory, instance_id="unit-1", **overrides)


def _read_all(directory: Path) -> list:
    segments = list_segments(directory)
    return [event for segment in segments for batch in verify_segment(segment).batches() for event in batch]


def test_appended_events_come_back_from_a_sealed_segment_whose_manifest_is_true(tmp_path):
    events = make_events(2_000)
    writer = BackupWriter(_config(tmp_path), clock=FakeClock())
    for start in range(0, len(events), 100):
        writer.append(events[start : start + 100])
    writer.close()

    (segment,) = list_segments(tmp_path)
    manifest = read_manifest(segment)
    assert _read_all(tmp_path) == events
    assert manifest.count == 2_000 and manifest.bytes == segment.stat().st_size
    assert manifest.sha256 == hashlib.sha256(segment.read_bytes()).hexdigest()
    assert manifest.sources["test-1"].first_seq == 1 and manifest.sources["test-1"].last_seq == 2_000
    assert manifest.first_ts_ns == events[0].ts_ns and manifest.last_ts_ns == events[-1].ts_ns
    assert sum(manifest.kinds.values()) == 2_000
    assert set(manifest.kinds) == {"trade", "quote", "depth", "system", "heartbeat"}
    assert manifest.closed_ns >= manifest.created_ns and not manifest.recovered
    health = writer.health
    assert (health.events_appended, health.events_written, health.events_dropped) == (2_000, 2_000, 0)


def test_segments_rotate_by_size_without_losing_or_repeating_an_event(tmp_path):
    events = make_events(20_000)
    writer = BackupWriter(_config(tmp_path, segment_max_bytes=20_000, flush_max_bytes=8_000), clock=FakeClock())
    for start in range(0, len(events), 250):
        writer.append(events[start : start + 250])
    writer.close()

    segments = list_segments(tmp_path)
    assert len(segments) > 3 and all(is_sealed(segment) for segment in segments)
    assert [event.seq for event in _read_all(tmp_path)] == list(range(1, 20_001))
    manifests = [read_manifest(segment) for segment in segments]
    assert sum(m.count for m in manifests) == 20_000
    firsts = [m.sources["test-1"].first_seq for m in manifests]
    lasts = [m.sources["test-1"].last_seq for m in manifests]
    assert firsts[1:] == [last + 1 for last in lasts[:-1]]  # each segment continues where the previous ended


def test_the_tick_writes_an_aged_frame_and_rotates_an_aged_segment_but_never_an_empty_one(tmp_path):
    clock = FakeClock()
    writer = BackupWriter(_config(tmp_path, segment_max_ns=60 * 10**9, flush_max_ns=200_000_000), clock=clock)
    writer.rotate_if_due(clock.advance(120))
    assert list_segments(tmp_path) == []  # nothing appended: no segment at all

    writer.append(make_events(10))
    assert list_segments(tmp_path) == []  # buffered: the frame is not due yet
    writer.rotate_if_due(clock.advance(0.25))
    (segment,) = list_segments(tmp_path)
    assert segment.stat().st_size > 0 and not is_sealed(segment)  # the aged frame is written, segment still open
    writer.rotate_if_due(clock.advance(61))
    assert is_sealed(segment) and writer.health.open_segment is None
    writer.append(make_events(5, start_seq=11))
    writer.close()
    assert [read_manifest(s).count for s in list_segments(tmp_path)] == [10, 5]


def _crash_after(directory: Path, flushed_batches: int) -> None:
    """Run a writer in a child process that flushes ``flushed_batches`` frames, buffers more, then is killed."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from storage.backup import BackupConfig, BackupWriter
        from tests.events_factory import make_events
        writer = BackupWriter(BackupConfig(directory=Path({str(directory)!r}), instance_id="unit-1"))
        for batch in range({flushed_batches}):
            writer.append(make_events(500, start_seq=1 + batch * 500))
            writer.flush()
        writer.append(make_events(300, start_seq=1 + {flushed_batches} * 500))  # never flushed
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, cwd=ROOT, capture_output=True, timeout=60)
    assert result.returncode == -9, result.stderr.decode()


def test_a_killed_writer_leaves_a_segment_that_the_next_start_seals_with_every_flushed_event(tmp_path):
    _crash_after(tmp_path, flushed_batches=2)
    (segment,) = list_segments(tmp_path)
    with pytest.raises(ManifestMissing):
        verify_segment(segment)

    writer = BackupWriter(_config(tmp_path))
    manifest = read_manifest(segment)
    assert manifest.recovered and manifest.count == 1_000 and manifest.discarded_tail_bytes == 0
    assert [event.seq for event in _read_all(tmp_path)] == list(range(1, 1_001))
    assert writer.health.state == "ok" and writer.health.segments_sealed == 1
    writer.close()


@pytest.mark.parametrize("damage", ["cut inside the last frame", "zero-filled blocks after the last frame"])
def test_a_torn_tail_is_cut_and_the_complete_frames_are_kept(tmp_path, damage):
    _crash_after(tmp_path, flushed_batches=2)
    (segment,) = list_segments(tmp_path)
    size = segment.stat().st_size
    if damage.startswith("cut"):
        os.truncate(segment, size - 7)
        expected = list(range(1, 501))
    else:
        with segment.open("ab") as handle:
            handle.write(bytes(4096))
        expected = list(range(1, 1_001))

    BackupWriter(_config(tmp_path)).close()
    manifest = read_manifest(segment)
    assert manifest.recovered and manifest.discarded_tail_bytes > 0 and manifest.bytes == segment.stat().st_size
    assert [event.seq for event in _read_all(tmp_path)] == expected


def test_corruption_inside_an_unsealed_segment_is_set_aside_for_an_operator_not_cut(tmp_path):
    _crash_after(tmp_path, flushed_batches=2)
    (segment,) = list_segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[200] ^= 0xFF  # inside the first frame, with a complete frame after it: not a torn tail
    segment.write_bytes(bytes(data))

    writer = BackupWriter(_config(tmp_path))
    health = writer.health
    assert health.corrupt_segments == 1 and "corrupt zstd frame" in health.last_error and health.state == "ok"
    assert list_segments(tmp_path) == [] and segment.with_name(segment.name + ".corrupt").exists()
    writer.close()


def test_a_segment_changed_after_sealing_fails_verification(tmp_path):
    writer = BackupWriter(_config(tmp_path))
    writer.append(make_events(100))
    writer.close()
    (segment,) = list_segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match="does not match its manifest"):
        verify_segment(segment)


def test_retention_removes_expired_sealed_segments_and_never_the_open_one(tmp_path):
    clock = FakeClock()
    day = 86_400
    writer = BackupWriter(_config(tmp_path, retention_ns=2 * day * 10**9, segment_max_ns=day * 10**9), clock=clock)
    for index in range(4):
        writer.append(make_events(50, start_seq=1 + 50 * index))
        writer.rotate_if_due(clock.advance(day))
    writer.append(make_events(50, start_seq=201))
    writer.flush()
    open_segment = Path(writer.health.open_segment)

    removed = writer.enforce_retention(clock.advance(day / 2))
    remaining = list_segments(tmp_path)
    assert len(removed) == 2 and all(not path.exists() for path in removed)
    assert open_segment in remaining and len(remaining) == 3
    assert all(Path(str(m).removesuffix(".manifest.json")).exists() for m in tmp_path.glob("*.manifest.json"))
    writer.close()


def _backup_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.name.endswith((".seg.zst", ".manifest.json")))


def test_retention_keeps_the_directory_within_its_budget_oldest_first(tmp_path):
    clock = FakeClock()
    writer = BackupWriter(_config(tmp_path, segment_max_bytes=10_000, flush_max_bytes=5_000), clock=clock)
    for start in range(0, 20_000, 500):
        writer.append(make_events(500, start_seq=1 + start))
        clock.advance(1)
    writer.append(make_events(10, start_seq=20_001))
    writer.flush()
    segments = list_segments(tmp_path)
    budget = _backup_bytes(tmp_path) // 3
    writer.config = dataclasses.replace(writer.config, budget_bytes=budget)

    removed = writer.enforce_retention()
    kept = list_segments(tmp_path)
    assert removed == segments[: len(removed)]  # oldest first
    assert Path(writer.health.open_segment) in kept
    assert _backup_bytes(tmp_path) <= budget
    assert writer.health.segments_removed == len(removed)
    writer.close()


def test_a_second_writer_for_the_same_directory_and_instance_is_refused(tmp_path):
    first = BackupWriter(_config(tmp_path))
    with pytest.raises(BackupDirLocked, match="instance id"):
        BackupWriter(_config(tmp_path))
    other_instance = BackupWriter(BackupConfig(directory=tmp_path, instance_id="unit-2"))
    first.close()
    other_instance.close()
    BackupWriter(_config(tmp_path)).close()  # released on close


def test_an_event_that_cannot_be_encoded_is_counted_and_append_does_not_raise(tmp_path):
    writer = BackupWriter(_config(tmp_path))
    good = make_events(3)
    bad = Trade(symbol="X", price=1.0, size=2**70, ts_ns=1, source="test-1", seq=4)  # beyond msgpack's integers
    writer.append([*good, bad])
    writer.close()
    health = writer.health
    assert (health.events_appended, health.events_written, health.events_dropped, health.encode_errors) == (4, 3, 1, 1)
    assert "OverflowError" in (health.last_error or "")
    assert _read_all(tmp_path) == good


def test_appends_after_close_are_counted_as_dropped(tmp_path):
    writer = BackupWriter(_config(tmp_path))
    writer.close()
    writer.append(make_events(5))
    assert writer.health.events_dropped == 5 and writer.health.state == "closed"


def test_a_disabled_backup_writes_nothing(tmp_path):
    writer = BackupWriter(_config(tmp_path / "backup", enabled=False))
    writer.append(make_events(5))
    writer.close()
    assert not (tmp_path / "backup").exists() and writer.health.state == "disabled"


def test_settings_map_to_the_writer_config(tmp_path):
    from config import load_settings

    settings = load_settings(data_dir=tmp_path, instance_id="a/b", backup={"segment_max_mb": 2, "flush_max_ms": 50})
    config = BackupConfig.from_settings(settings)
    assert config.directory == tmp_path / "backup" and config.segment_max_bytes == 2 * 1024 * 1024
    assert config.flush_max_ns == 50_000_000 and config.instance_id == "a/b"

"""The durable spool: records survive restarts in order, torn tails are cut, the budget is enforced loudly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.spool import Spool, SpoolFull, SpoolLocked, SpoolRecord
from tests.unit.file_size_limit import file_size_limit, run_in_child


def records(n: int, start: int = 0, size: int = 20) -> list[SpoolRecord]:
    return [SpoolRecord(f"p.t{i % 3}", f"K{i % 5}".encode(), f"{i:08d}".encode() * (size // 8), recv_ns=i)
            for i in range(start, start + n)]


def drain(spool: Spool, ack: bool = True) -> list[SpoolRecord]:
    out = []
    while entries := spool.peek(7):
        spool.advance(len(entries))
        for ticket, record in entries:
            out.append(record)
            if ack:
                spool.ack(ticket)
    return out


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def test_records_come_back_in_append_order_across_segment_rolls(tmp_path):
    spool = Spool(tmp_path, budget_bytes=1 << 20, segment_bytes=300, fsync_interval_s=0)
    spool.append(records(50))
    assert len(segment_files(tmp_path)) > 3
    assert drain(spool) == records(50)


def test_fully_delivered_segments_are_deleted_and_the_spool_returns_to_empty(tmp_path):
    spool = Spool(tmp_path, budget_bytes=1 << 20, segment_bytes=300)
    spool.append(records(50))
    drain(spool)
    stats = spool.stats()
    assert (stats.bytes_used, stats.unsent, stats.unacked, stats.segments) == (0, 0, 0, 0)
    assert segment_files(tmp_path) == []


def test_undelivered_records_are_replayed_after_a_restart_and_delivered_ones_are_not(tmp_path):
    spool = Spool(tmp_path, budget_bytes=1 << 20, segment_bytes=400)
    spool.append(records(40))
    entries = spool.peek(25)
    spool.advance(25)
    for ticket, _ in entries[:15]:
        spool.ack(ticket)  # 15 delivered, 10 sent but never acknowledged (crash), 15 never sent
    spool.close()
    reopened = Spool(tmp_path, budget_bytes=1 << 20, segment_bytes=400)
    assert reopened.unsent == 25
    assert drain(reopened) == records(40)[15:]


def test_records_appended_by_a_killed_process_are_replayed_by_the_next(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(repo)!r})
from bus.spool import Spool, SpoolRecord
spool = Spool({str(tmp_path)!r}, budget_bytes=1 << 20, fsync_interval_s=60)
spool.append([SpoolRecord("p.t", b"k", str(i).encode(), i) for i in range(100)])
os.kill(os.getpid(), signal.SIGKILL)
"""
    assert subprocess.run([sys.executable, "-c", script], timeout=60).returncode == -signal.SIGKILL
    replayed = drain(Spool(tmp_path, budget_bytes=1 << 20))
    assert [r.value for r in replayed] == [str(i).encode() for i in range(100)]


def test_a_torn_tail_from_a_crash_mid_append_is_cut_and_counted(tmp_path, caplog):
    spool = Spool(tmp_path, budget_bytes=1 << 20)
    spool.append(records(10))
    spool.close()
    (segment,) = segment_files(tmp_path)
    with open(segment, "ab") as handle:
        handle.write(b"\x40\x00\x00\x00\x12\x34")  # half a frame header plus nothing
    with caplog.at_level("ERROR", logger="bus.spool"):
        reopened = Spool(tmp_path, budget_bytes=1 << 20)
    assert reopened.stats().corrupt_bytes == 6
    assert "torn tail" in caplog.text
    assert drain(reopened) == records(10)


def test_a_checksum_mismatch_cuts_the_segment_there_and_says_so(tmp_path, caplog):
    spool = Spool(tmp_path, budget_bytes=1 << 20)
    spool.append(records(10))
    spool.close()
    (segment,) = segment_files(tmp_path)
    data = bytearray(segment.read_bytes())
    frame = len(data) // 10
    data[5 * frame + 12] ^= 0xFF  # inside the body of the 6th record
    segment.write_bytes(bytes(data))
    with caplog.at_level("ERROR", logger="bus.spool"):
        reopened = Spool(tmp_path, budget_bytes=1 << 20)
    assert "checksum" in caplog.text
    assert reopened.stats().corrupt_bytes == 5 * frame
    assert drain(reopened) == records(5)


def test_over_budget_appends_are_rejected_with_counts_never_silently(tmp_path):
    probe = Spool(tmp_path / "probe", budget_bytes=1 << 20)
    probe.append(records(1))
    one = probe.bytes_used  # every test record has the same frame size
    spool = Spool(tmp_path / "spool", budget_bytes=10 * one)
    with pytest.raises(SpoolFull, match="budget") as caught:
        spool.append(records(30))
    assert (caught.value.accepted, caught.value.rejected) == (10, 20)
    assert spool.bytes_used == 10 * one
    assert drain(spool) == records(caught.value.accepted)


def test_a_failed_replay_goes_back_to_the_tail_even_over_budget(tmp_path):
    spool = Spool(tmp_path, budget_bytes=200)
    with pytest.raises(SpoolFull):
        spool.append(records(50))
    (ticket, first), *_ = spool.peek(1)
    spool.advance(1)
    spool.requeue(ticket, first)
    replayed = drain(spool)
    assert replayed[-1] == first and replayed.count(first) == 1


def test_peek_does_not_hand_out_until_advance(tmp_path):
    spool = Spool(tmp_path, budget_bytes=1 << 20)
    spool.append(records(3))
    assert [r for _, r in spool.peek(2)] == [r for _, r in spool.peek(2)] == records(2)
    with pytest.raises(ValueError):
        spool.advance(3)
    spool.advance(2)
    assert [r for _, r in spool.peek(5)] == records(3)[2:]


def test_records_larger_than_a_read_chunk_replay_intact(tmp_path):
    big = SpoolRecord("p.t", b"k", os.urandom(3 << 20), recv_ns=1)
    spool = Spool(tmp_path, budget_bytes=64 << 20)
    spool.append([big, *records(2)])
    assert drain(spool) == [big, *records(2)]


def test_a_second_process_cannot_open_the_same_spool(tmp_path):
    spool = Spool(tmp_path, budget_bytes=1 << 20)
    with pytest.raises(SpoolLocked, match="own directory"):
        Spool(tmp_path, budget_bytes=1 << 20)
    spool.close()
    Spool(tmp_path, budget_bytes=1 << 20).close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=8),
    acked=st.integers(min_value=0, max_value=200),
    segment_bytes=st.sampled_from([120, 500, 1 << 20]),
)
def test_whatever_was_not_acknowledged_is_replayed_in_order_after_reopening(tmp_path_factory, batches, acked, segment_bytes):
    directory = tmp_path_factory.mktemp("spool")
    spool = Spool(directory, budget_bytes=1 << 20, segment_bytes=segment_bytes)
    written: list[SpoolRecord] = []
    for size in batches:
        batch = records(size, start=len(written))
        spool.append(batch)
        written.extend(batch)
    acked = min(acked, len(written))
    entries = spool.peek(acked)
    spool.advance(len(entries))
    for ticket, _ in entries:
        spool.ack(ticket)
    spool.close()
    assert drain(Spool(directory, budget_bytes=1 << 20, segment_bytes=segment_bytes)) == written[acked:]


def frame_bytes(directory: Path) -> int:
    """The on-disk size of one test record (every record from :func:`records` has the same)."""
    probe = Spool(directory, budget_bytes=1 << 20)
    probe.append(records(1))
    size = probe.bytes_used
    probe.close()
    return size


def test_a_write_cut_short_by_a_full_disk_keeps_only_whole_records_and_replay_does_not_hang(tmp_path):
    one = frame_bytes(tmp_path / "probe")

    def in_child() -> dict:
        spool = Spool(tmp_path / "spool", budget_bytes=1 << 20, fsync_interval_s=0)
        spool.append(records(2))
        with file_size_limit(4 * one + one // 2):  # room for two more records and half of a third
            try:
                spool.append(records(4, start=2))
                full = None
            except SpoolFull as exc:
                full = exc
            stats = spool.stats()
            entries = spool.peek(100)  # before the fix: half a record booked as written, and an endless loop on it
        return {
            "full": str(full), "accepted": full and full.accepted, "rejected": full and full.rejected,
            "failing": stats.failing, "write_failures": stats.write_failures, "error": stats.last_error,
            "unsent": stats.unsent, "bytes_used": stats.bytes_used, "file_bytes": segment_files(tmp_path / "spool")[0].stat().st_size,
            "replayed": [record for _, record in entries],
        }

    result = run_in_child(in_child, timeout_s=20)
    assert (result["accepted"], result["rejected"]) == (2, 2) and "disk write failed" in result["full"]
    assert result["failing"] and result["write_failures"] == 1 and "File too large" in result["error"]
    assert result["unsent"] == 4 and result["bytes_used"] == result["file_bytes"] == 4 * one
    assert result["replayed"] == records(4)


def test_a_full_disk_rejects_appends_until_space_returns_then_appends_succeed_again(tmp_path, caplog):
    one = frame_bytes(tmp_path / "probe")

    def in_child() -> dict:
        stopped_clock = lambda: 0.0  # noqa: E731 - the whole burst falls in one throttle interval
        spool = Spool(tmp_path / "spool", budget_bytes=1 << 20, fsync_interval_s=0, clock=stopped_clock)
        spool.append(records(3))
        rejected = 0
        with file_size_limit(3 * one), caplog.at_level("ERROR", logger="bus.spool"):
            for start in range(3, 13):
                try:
                    spool.append(records(1, start=start))
                except SpoolFull as exc:
                    rejected += exc.rejected
        full = spool.stats()
        spool.append(records(2, start=13))  # space is back: the next append simply works
        return {"rejected": rejected, "full": full, "after": spool.stats(), "replayed": drain(spool),
                "error_logs": sum("spool write failed" in r.getMessage() for r in caplog.records)}

    result = run_in_child(in_child)
    assert result["rejected"] == 10
    assert result["full"].failing and result["full"].write_failures == 10 and result["full"].unsent == 3
    assert result["error_logs"] == 1  # throttled: one line for a burst of failures, with the total
    assert not result["after"].failing and result["after"].write_failures == 10 and result["after"].unsent == 5
    assert result["replayed"] == [*records(3), *records(2, start=13)]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("damage", ["checksum mismatch", "torn frame"])
def test_a_damaged_record_met_during_replay_is_cut_and_counted_not_looped_on(tmp_path, caplog, damage):
    spool = Spool(tmp_path, budget_bytes=1 << 20)
    spool.append(records(10))
    (segment,) = segment_files(tmp_path)
    one = segment.stat().st_size // 10
    with open(segment, "r+b") as handle:  # damage the 6th record under the running spool
        if damage == "checksum mismatch":
            handle.seek(5 * one + 12)
            handle.write(b"\xff")
        else:
            handle.truncate(5 * one + one // 2)
    with caplog.at_level("ERROR", logger="bus.spool"):
        replayed = drain(spool)  # looped forever before the fix, holding the spool lock
    assert replayed == records(5)
    assert damage in caplog.text
    stats = spool.stats()
    assert (stats.corrupt_bytes, stats.unsent, stats.unacked, stats.bytes_used) == (5 * one, 0, 0, 0)
    spool.append(records(3, start=20))
    assert drain(spool) == records(3, start=20)


def test_a_checkpoint_the_full_disk_refuses_is_logged_and_written_once_space_returns(tmp_path, caplog):
    def in_child() -> dict:
        spool = Spool(tmp_path, budget_bytes=1 << 20, checkpoint_interval_s=0)
        spool.append(records(4))
        entries = spool.peek(2)
        spool.advance(2)
        for ticket, _ in entries:
            spool.ack(ticket)
        with file_size_limit(1), caplog.at_level("WARNING", logger="bus.spool"):
            spool.checkpoint_if_due()  # raised into the producer's poll before
        refused = [r.getMessage() for r in caplog.records]
        spool.checkpoint_if_due()
        spool.close()
        return {"refused": refused, "replayed": drain(Spool(tmp_path, budget_bytes=1 << 20))}

    result = run_in_child(in_child)
    assert any("checkpoint not written" in message for message in result["refused"])
    assert result["replayed"] == records(4)[2:]

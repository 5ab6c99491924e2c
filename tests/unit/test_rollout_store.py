"""A staged rollout's stored record and its restore in a new process (pure: no storage here; the table
and the restart are proved in tests/integration/test_rollout_store.py and test_rollout_restart.py)."""

from __future__ import annotations

import dataclasses

import pytest

from runtime.bulk_start import StartOutcome
from runtime.rollout import Rollout, RolloutState, StageHealth
from runtime.rollout_store import (RolloutRecord, RolloutRecordError, decode_record, encode_record,
                                   latest_unfinished)
from tests.unit.test_rollout import S, Clock, _all_fresh, _start_due, _symbols


def _record(rollout: Rollout, revision: int = 3, updated_ns: int = 5) -> RolloutRecord:
    return RolloutRecord("r1", revision, updated_ns, depth=True, critical=False, snapshot=rollout.snapshot())


def _waiting_on_stage_2(clock: Clock) -> Rollout:
    rollout = Rollout(_symbols(6), (2, 4, 6), clock=clock, by="ops", stall_after_s=60)
    _start_due(rollout, clock)
    clock.now += S
    assert rollout.judge(_all_fresh(_symbols(2), clock)) is RolloutState.STARTING
    _start_due(rollout, clock)
    clock.now += S
    assert rollout.judge(StageHealth({})) is RolloutState.WAITING
    return rollout


def test_a_record_reads_back_as_written_definition_options_and_progress():
    clock = Clock()
    rollout = Rollout(_symbols(6), (2, 4, 6), clock=clock, by="ops", stall_after_s=90)
    due = rollout.due()
    rollout.started(StartOutcome(due[:1], {due[1]: "invalid symbol: S0001"}), clock())
    record = _record(rollout)
    back = decode_record(encode_record(record))
    assert back == record
    snap = back.snapshot
    assert snap.state is RolloutState.HALTED and snap.refused == {"S0001": "invalid symbol: S0001"}
    assert snap.started_ns == {"S0000": clock()} and snap.stall_after_s == 90 and snap.targets == (2, 4, 6)
    assert back.depth is True and back.critical is False and back.rollout_id == "r1" and back.revision == 3


@pytest.mark.parametrize("text, message", [
    ("not json", "unreadable"),
    ('{"v": 1}', "unreadable: Object missing required field"),
])
def test_a_damaged_record_is_refused_saying_what_is_wrong(text, message):
    with pytest.raises(RolloutRecordError, match=message):
        decode_record(text)


def test_a_record_of_another_version_or_naming_symbols_outside_its_list_is_refused():
    record = _record(_waiting_on_stage_2(Clock()))
    newer = encode_record(record).replace('"v":1', '"v":2')
    with pytest.raises(RolloutRecordError, match="version 2; this code reads version 1"):
        decode_record(newer)
    stray = dataclasses.replace(record.snapshot, started_ns={**record.snapshot.started_ns, "XYZ": 1})
    with pytest.raises(RolloutRecordError, match="started symbols outside its list: XYZ"):
        decode_record(encode_record(dataclasses.replace(record, snapshot=stray)))
    bad_state = encode_record(record).replace('"state":"waiting"', '"state":"sleeping"')
    with pytest.raises(RolloutRecordError, match="Invalid enum value 'sleeping'"):
        decode_record(bad_state)


def test_a_waited_on_stage_is_judged_again_from_the_restart_and_nothing_is_started_twice():
    clock = Clock()
    before = _waiting_on_stage_2(clock)
    clock.now += 600 * S
    restarted_at = clock()
    rollout = Rollout.restore(decode_record(encode_record(_record(before))).snapshot, clock=clock)
    progress = rollout.progress()
    assert progress.state is RolloutState.WAITING and progress.stage == 2 and progress.started == 4
    assert progress.resumed_ns == restarted_at and progress.stage_started_ns == restarted_at
    assert rollout.due() == ()
    clock.now += S
    # data seen before the restart says nothing of the new process; the stall timer starts again
    assert rollout.judge(StageHealth({s: restarted_at - 1 for s in _symbols(4)})) is RolloutState.WAITING
    assert rollout.judge(_all_fresh(_symbols(4), clock)) is RolloutState.STARTING
    assert rollout.due() == tuple(_symbols(6)[4:])


def test_a_stalled_stage_waits_again_after_a_restart_and_stalls_only_after_the_bound_anew():
    clock = Clock()
    before = _waiting_on_stage_2(clock)
    clock.now += 120 * S
    assert before.judge(StageHealth({})) is RolloutState.STALLED
    rollout = Rollout.restore(before.snapshot(), clock=clock)
    assert rollout.state is RolloutState.WAITING
    clock.now += 59 * S
    assert rollout.judge(StageHealth({})) is RolloutState.WAITING
    clock.now += 2 * S
    assert rollout.judge(StageHealth({})) is RolloutState.STALLED


def test_a_paused_rollout_stays_paused_after_a_restart_and_resumes_to_waiting():
    clock = Clock()
    before = _waiting_on_stage_2(clock)
    before.pause()
    rollout = Rollout.restore(before.snapshot(), clock=clock)
    assert rollout.state is RolloutState.PAUSED and rollout.due() == ()
    clock.now += S
    assert rollout.judge(_all_fresh(_symbols(4), clock)) is RolloutState.PAUSED
    rollout.resume()
    assert rollout.state is RolloutState.WAITING


def test_starts_under_way_when_the_process_ended_are_not_made_again():
    """The stage's record said 'starting'; the symbols wanted now were started by the process that ended."""
    clock = Clock()
    before = Rollout(_symbols(6), (2, 4, 6), clock=clock, by="ops")
    _start_due(before, clock)
    clock.now += S
    before.judge(_all_fresh(_symbols(2), clock))
    assert before.due() == ("S0002", "S0003")
    part = Rollout.restore(before.snapshot(), clock=clock, already_started={"S0000", "S0001", "S0002"})
    assert part.state is RolloutState.STARTING and part.due() == ("S0003",)
    whole = Rollout.restore(before.snapshot(), clock=clock, already_started=set(_symbols(4)))
    assert whole.state is RolloutState.WAITING and whole.due() == () and whole.progress().started == 4


def test_a_finished_rollout_is_restored_as_it_was_and_not_taken_up():
    clock = Clock()
    before = _waiting_on_stage_2(clock)
    before.cancel()
    rollout = Rollout.restore(before.snapshot(), clock=clock)
    assert rollout.state is RolloutState.CANCELLED and rollout.progress().resumed_ns is None
    done = dataclasses.replace(_record(before), rollout_id="done", updated_ns=9)
    waiting = _record(_waiting_on_stage_2(clock), updated_ns=7)
    older = dataclasses.replace(waiting, rollout_id="older", updated_ns=1)
    assert latest_unfinished([done, older, waiting]) is waiting
    assert latest_unfinished([done]) is None

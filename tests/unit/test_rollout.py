"""The staged rollout's state machine: a stage advances only when healthy; it holds and says why otherwise."""

from __future__ import annotations

import pytest

from runtime.bulk_start import StartOutcome
from runtime.rollout import (InvalidStages, Rollout, RolloutConflict, RolloutState, StageHealth, parse_stages,
                             plan_stages)

S = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_000 * S

    def __call__(self) -> int:
        return self.now


def _symbols(n: int) -> list[str]:
    return [f"S{i:04d}" for i in range(n)]


def _start_due(rollout: Rollout, clock: Clock) -> tuple[str, ...]:
    due = rollout.due()
    rollout.started(StartOutcome(due, {}), clock())
    return due


def _all_fresh(symbols, clock: Clock) -> StageHealth:
    return StageHealth({s: clock() for s in symbols})


def test_stages_are_cumulative_counts_cut_to_the_list_with_a_final_stage_for_the_rest():
    assert plan_stages(1500, (10, 100, 1000)) == (10, 100, 1000, 1500)
    assert plan_stages(50, (10, 100, 1000)) == (10, 50)
    assert plan_stages(10, (10, 100)) == (10,)
    assert parse_stages("10 → 100 -> 1000") == parse_stages("10, 100, 1000") == (10, 100, 1000)


@pytest.mark.parametrize("stages, message", [((), "at least one"), ((10, 0), "above zero"),
                                             ((100, 10), "more symbols than the one before")])
def test_stages_that_make_no_sense_are_refused_with_a_reason(stages, message):
    with pytest.raises(InvalidStages, match=message):
        plan_stages(100, stages)


def test_stage_text_that_is_not_numbers_is_refused():
    with pytest.raises(InvalidStages, match="whole numbers"):
        parse_stages("ten, 100")


def test_a_healthy_stage_advances_to_the_next_and_the_last_one_finishes_the_rollout():
    clock = Clock()
    rollout = Rollout(_symbols(25), (10, 20), clock=clock, by="ops")
    assert _start_due(rollout, clock) == tuple(_symbols(25)[:10])
    assert rollout.due() == ()  # started once
    clock.now += S
    assert rollout.judge(_all_fresh(_symbols(10), clock)) is RolloutState.STARTING
    assert _start_due(rollout, clock) == tuple(_symbols(25)[10:20])
    clock.now += S
    assert rollout.judge(_all_fresh(_symbols(20), clock)) is RolloutState.STARTING
    assert _start_due(rollout, clock) == tuple(_symbols(25)[20:])
    clock.now += S
    assert rollout.judge(_all_fresh(_symbols(25), clock)) is RolloutState.DONE
    progress = rollout.progress()
    assert progress.started == 25 and progress.targets == (10, 20, 25) and progress.stage == 3


def test_a_symbol_without_data_since_its_start_holds_the_stage_and_is_named():
    clock = Clock()
    rollout = Rollout(_symbols(20), (10, 20), clock=clock, by="ops")
    started_at = clock()
    _start_due(rollout, clock)
    clock.now += S
    last = {s: clock() for s in _symbols(8)}
    last["S0008"] = started_at - S  # an event from before its start does not count
    health = StageHealth(last, not_watched={"S0009": "IQFeed does not know it"})
    assert rollout.judge(health) is RolloutState.WAITING
    progress = rollout.progress()
    assert progress.stage == 1 and progress.stage_healthy == 8 and progress.stage_size == 10
    assert progress.reasons == ("2 of 10 symbols without data since their start: S0008, S0009",
                                "not watched: S0009 (IQFeed does not know it)")
    assert rollout.due() == ()


def test_a_critical_alert_or_a_pipeline_behind_holds_a_stage_whose_symbols_all_have_data():
    clock = Clock()
    rollout = Rollout(_symbols(20), (10,), clock=clock, by="ops")
    _start_due(rollout, clock)
    clock.now += S
    fresh = {s: clock() for s in _symbols(10)}
    assert rollout.judge(StageHealth(fresh, critical_firing=("storage_down storage",))) is RolloutState.WAITING
    assert rollout.progress().reasons == ("critical alerts firing: storage_down storage",)
    behind = ("1,200 events spooled: the bus has not taken them yet",)
    assert rollout.judge(StageHealth(fresh, behind=behind)) is RolloutState.WAITING
    assert rollout.progress().reasons == behind
    assert rollout.judge(StageHealth(fresh)) is RolloutState.STARTING


def test_a_stage_unhealthy_past_the_timeout_is_stalled_not_advanced_and_goes_on_once_it_recovers():
    clock = Clock()
    rollout = Rollout(_symbols(20), (10,), clock=clock, by="ops", stall_after_s=60)
    _start_due(rollout, clock)
    clock.now += 59 * S
    assert rollout.judge(StageHealth({})) is RolloutState.WAITING
    clock.now += 2 * S
    assert rollout.judge(StageHealth({})) is RolloutState.STALLED
    assert rollout.due() == ()
    assert "10 of 10 symbols without data" in rollout.progress().reasons[0]
    assert rollout.judge(_all_fresh(_symbols(10), clock)) is RolloutState.STARTING


def test_a_refused_start_halts_the_rollout_with_the_refusal():
    clock = Clock()
    rollout = Rollout(_symbols(20), (10,), clock=clock, by="ops")
    due = rollout.due()
    rollout.started(StartOutcome(due[:5], {s: "limit: feed.watch_limit is 5" for s in due[5:]}), clock())
    assert rollout.state is RolloutState.HALTED
    assert rollout.progress().reasons == ("5 symbols not started: limit: feed.watch_limit is 5",)
    assert rollout.judge(_all_fresh(_symbols(20), clock)) is RolloutState.HALTED and rollout.due() == ()


def test_a_paused_rollout_neither_starts_nor_advances_until_resumed():
    clock = Clock()
    rollout = Rollout(_symbols(20), (10,), clock=clock, by="ops")
    _start_due(rollout, clock)
    rollout.pause()
    clock.now += S
    assert rollout.judge(_all_fresh(_symbols(10), clock)) is RolloutState.PAUSED
    rollout.resume()
    assert rollout.state is RolloutState.WAITING
    assert rollout.judge(_all_fresh(_symbols(10), clock)) is RolloutState.STARTING
    rollout.pause()
    assert rollout.due() == ()
    rollout.resume()
    assert rollout.due() == tuple(_symbols(20)[10:])


def test_a_pause_given_while_a_stage_was_starting_holds_once_the_starts_are_done():
    clock = Clock()
    rollout = Rollout(_symbols(20), (10,), clock=clock, by="ops")
    due = rollout.due()
    rollout.pause()
    rollout.started(StartOutcome(due, {}), clock())
    assert rollout.state is RolloutState.PAUSED
    rollout.resume()
    assert rollout.state is RolloutState.WAITING


def test_a_cancelled_rollout_starts_nothing_more_and_cannot_be_resumed():
    clock = Clock()
    rollout = Rollout(_symbols(20), (10,), clock=clock, by="ops")
    _start_due(rollout, clock)
    rollout.cancel()
    assert rollout.judge(_all_fresh(_symbols(10), clock)) is RolloutState.CANCELLED and rollout.due() == ()
    with pytest.raises(RolloutConflict):
        rollout.resume()
    with pytest.raises(RolloutConflict):
        rollout.cancel()

"""A staged rollout's state machine: start a list of symbols in stages (10 → 100 → 1000), the next
stage only once the previous one is healthy.

Pure: no I/O, time from the ``clock`` passed in (ns). The runner (runtime/rollout_runner.py) asks
:meth:`Rollout.due` what to start, starts it through the operator action, tells :meth:`Rollout.started`
what happened and then :meth:`Rollout.judge` what the pipeline looks like, on every step.

A stage is healthy when every symbol it started has had an event since its start, no critical alert
fires and the pipeline is not behind. A stage unhealthy for longer than ``stall_after_s`` is *stalled*:
reported, never advanced; it is still judged, so a stage that recovers (the feed came back) goes on.
A refused start (watch limit, fleet capacity) *halts* the rollout: more of the same would be refused too.

A rollout outlives its process: :meth:`Rollout.snapshot` is what runtime/rollout_store.py keeps, and
:meth:`Rollout.restore` takes it up in the next process, judging the current stage again from then.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from runtime.bulk_start import StartOutcome

DEFAULT_STAGES = (10, 100, 1000)
DEFAULT_STALL_AFTER_S = 300.0
STAGE_SEPARATORS = re.compile(r"(?:->|→|[\s,;>])+")


class RolloutState(str, Enum):
    STARTING = "starting"  # the current stage's symbols are due to start
    WAITING = "waiting"  # started; waiting for the stage to be healthy
    STALLED = "stalled"  # waiting for longer than stall_after_s
    PAUSED = "paused"
    HALTED = "halted"  # a start was refused: nothing more is started
    CANCELLED = "cancelled"
    DONE = "done"


FINAL = (RolloutState.HALTED, RolloutState.CANCELLED, RolloutState.DONE)


class InvalidStages(ValueError):
    """Stages that are not positive, increasing symbol counts; the message says which."""


class RolloutConflict(RuntimeError):
    """An operation the rollout's state does not allow (resume what is not paused, start a second one)."""


@dataclass(frozen=True)
class StageHealth:
    """What the pipeline shows of a stage's symbols at one moment."""

    last_event_ns: Mapping[str, int]  # symbol -> receive time (wall ns) of its latest event; absent: none seen
    critical_firing: tuple[str, ...] = ()  # "rule subject" of each firing critical alert
    behind: tuple[str, ...] = ()  # why the pipeline is behind (spool holding events, writer retrying)
    # symbol -> why it is not watched (the feed refused it, or it is over a collector's watch limit)
    not_watched: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutProgress:
    state: RolloutState
    stage: int  # 1-based; the stage being started or judged
    targets: tuple[int, ...]  # symbols started once each stage is done (cumulative)
    started: int  # symbols this rollout started so far
    stage_size: int  # symbols of the current stage
    stage_healthy: int  # of them, with an event since their start
    reasons: tuple[str, ...]  # why it waits, stalled or halted ("" nothing to say)
    stage_started_ns: int | None
    refused: Mapping[str, str]
    by: str
    resumed_ns: int | None = None  # when this process took the rollout up after a restart; None: begun here


@dataclass(frozen=True)
class RolloutSnapshot:
    """Everything a rollout needs to go on in another process: its definition and its progress.

    ``started_ns`` holds each started symbol's start; ``stage_started_ns`` None until the first stage's
    starts are done. ``paused_from`` is the state a resume returns to (None unless paused).
    """

    symbols: tuple[str, ...]
    targets: tuple[int, ...]
    by: str
    stall_after_s: float
    stage: int  # 0-based index into targets
    state: RolloutState
    paused_from: RolloutState | None
    started_ns: Mapping[str, int]
    stage_started_ns: int | None
    refused: Mapping[str, str]
    reasons: tuple[str, ...]


def plan_stages(count: int, stages: Sequence[int]) -> tuple[int, ...]:
    """Cumulative symbol counts per stage for a list of ``count`` symbols.

    Stages beyond the list shrink to it; a list longer than the last stage gets a final stage for the
    rest, so nothing the operator gave is silently left out.
    """
    if not stages:
        raise InvalidStages("give at least one stage, e.g. 10, 100, 1000")
    if any(n <= 0 for n in stages):
        raise InvalidStages(f"stages are symbol counts above zero; got {', '.join(map(str, stages))}")
    if any(b <= a for a, b in zip(stages, stages[1:])):
        raise InvalidStages(f"each stage must start more symbols than the one before; got {', '.join(map(str, stages))}")
    if count <= 0:
        raise InvalidStages("the list has no symbol to start")
    targets: list[int] = []
    for n in stages:
        target = min(n, count)
        if not targets or target > targets[-1]:
            targets.append(target)
    if targets[-1] < count:
        targets.append(count)
    return tuple(targets)


def parse_stages(text: str) -> tuple[int, ...]:
    """``"10, 100, 1000"`` or ``"10 → 100 → 1000"`` as stage sizes; InvalidStages when not numbers."""
    parts = [p for p in STAGE_SEPARATORS.split(text) if p]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise InvalidStages(f"stages are whole numbers separated by commas, e.g. 10, 100, 1000; got {text!r}") from None


class Rollout:
    def __init__(self, symbols: Sequence[str], stages: Sequence[int], *, clock: Callable[[], int], by: str,
                 stall_after_s: float = DEFAULT_STALL_AFTER_S) -> None:
        self.symbols = tuple(symbols)
        self.targets = plan_stages(len(self.symbols), stages)
        self.by = by
        self._clock = clock
        self._stall_after_s = stall_after_s
        self._stall_after_ns = int(stall_after_s * 1e9)
        self._stage = 0  # index into targets
        self._state = RolloutState.STARTING
        self._paused_from: RolloutState | None = None
        self._started_ns: dict[str, int] = {}
        self._stage_started_ns: int | None = None
        self._refused: dict[str, str] = {}
        self._reasons: tuple[str, ...] = ()
        self._healthy = 0
        self._resumed_ns: int | None = None

    @property
    def state(self) -> RolloutState:
        return self._state

    def due(self) -> tuple[str, ...]:
        """The symbols to start now: the current stage's, once, while starting."""
        if self._state is not RolloutState.STARTING:
            return ()
        return tuple(s for s in self._stage_list() if s not in self._started_ns)

    def _stage_list(self) -> tuple[str, ...]:
        """Every symbol of the current stage, started or not."""
        first = self.targets[self._stage - 1] if self._stage else 0
        return self.symbols[first:self.targets[self._stage]]

    def started(self, outcome: StartOutcome, at_ns: int) -> None:
        """``at_ns``: when the stage's starts began; an event received after it answers a watch of this stage."""
        for symbol in outcome.started:
            self._started_ns[symbol] = at_ns
        self._stage_started_ns = self._clock()
        if outcome.refused:
            self._refused.update(outcome.refused)
            after = RolloutState.HALTED
            self._reasons = (f"{len(outcome.refused)} symbols not started: {next(iter(outcome.refused.values()))}",)
        else:
            after = RolloutState.WAITING
            self._reasons = ()
        # paused or cancelled while the stage was starting: that decision stands
        if self._state is RolloutState.PAUSED:
            self._paused_from = after
        elif self._state is not RolloutState.CANCELLED:
            self._state = after

    def stage_symbols(self) -> tuple[str, ...]:
        """The symbols the current stage started (those a health check looks at)."""
        return tuple(s for s in self._stage_list() if s in self._started_ns)

    def judge(self, health: StageHealth) -> RolloutState:
        """Advance when the stage is healthy; otherwise hold and say why (stalled past the timeout)."""
        if self._state not in (RolloutState.WAITING, RolloutState.STALLED):
            return self._state
        now = self._clock()
        symbols = self.stage_symbols()
        silent = [s for s in symbols if health.last_event_ns.get(s, -1) < self._started_ns[s]]
        self._healthy = len(symbols) - len(silent)
        reasons: list[str] = []
        if silent:
            unwatched = [f"{s} ({health.not_watched[s]})" for s in silent if s in health.not_watched]
            reasons.append(f"{len(silent)} of {len(symbols)} symbols without data since their start: "
                           + ", ".join(silent[:10]) + (" …" if len(silent) > 10 else ""))
            if unwatched:
                reasons.append("not watched: " + ", ".join(unwatched[:10]))
        if health.critical_firing:
            reasons.append("critical alerts firing: " + ", ".join(health.critical_firing))
        reasons.extend(health.behind)
        self._reasons = tuple(reasons)
        if reasons:
            assert self._stage_started_ns is not None
            if now - self._stage_started_ns > self._stall_after_ns:
                self._state = RolloutState.STALLED
            return self._state
        if self._stage + 1 == len(self.targets):
            self._state = RolloutState.DONE
        else:
            self._stage += 1
            self._state = RolloutState.STARTING
            self._healthy = 0
        return self._state

    def pause(self) -> None:
        if self._state in FINAL or self._state is RolloutState.PAUSED:
            raise RolloutConflict(f"a {self._state.value} rollout cannot be paused")
        self._paused_from, self._state = self._state, RolloutState.PAUSED

    def resume(self) -> None:
        """Back to where it was; the stall timer restarts, since a paused stage was not judged."""
        if self._state is not RolloutState.PAUSED or self._paused_from is None:
            raise RolloutConflict(f"a {self._state.value} rollout cannot be resumed")
        self._state, self._paused_from = self._paused_from, None
        if self._state is RolloutState.STALLED:
            self._state = RolloutState.WAITING
        if self._stage_started_ns is not None:
            self._stage_started_ns = self._clock()

    def cancel(self) -> None:
        """Nothing more is started; what was started stays started (stop it from the sidebar)."""
        if self._state in FINAL:
            raise RolloutConflict(f"a {self._state.value} rollout cannot be cancelled")
        self._state = RolloutState.CANCELLED

    def progress(self) -> RolloutProgress:
        stage_symbols = self.stage_symbols()
        size = len(stage_symbols) if stage_symbols else len(self._stage_list())
        return RolloutProgress(self._state, self._stage + 1, self.targets, len(self._started_ns), size,
                               self._healthy, self._reasons, self._stage_started_ns, dict(self._refused), self.by,
                               self._resumed_ns)

    def snapshot(self) -> RolloutSnapshot:
        return RolloutSnapshot(self.symbols, self.targets, self.by, self._stall_after_s, self._stage, self._state,
                               self._paused_from, dict(self._started_ns), self._stage_started_ns,
                               dict(self._refused), self._reasons)

    @classmethod
    def restore(cls, snapshot: RolloutSnapshot, *, clock: Callable[[], int],
                already_started: Collection[str] = ()) -> Rollout:
        """The rollout of ``snapshot``, taken up now by a new process.

        The current stage is judged again from now (its symbols' starts and the stall timer reset): what
        the pipeline showed before the restart says nothing of the new process. ``already_started``: the
        symbols wanted now; those of a stage whose starts were under way when the process ended count as
        started (now), so none is started twice. A paused rollout stays paused.
        """
        rollout = cls(snapshot.symbols, snapshot.targets, clock=clock, by=snapshot.by,
                      stall_after_s=snapshot.stall_after_s)
        if rollout.targets != tuple(snapshot.targets) or not 0 <= snapshot.stage < len(rollout.targets):
            raise InvalidStages(f"stored stages {list(snapshot.targets)} do not fit its {len(snapshot.symbols)} "
                                f"symbols or its stage index {snapshot.stage}")
        now = clock()
        rollout._stage, rollout._state, rollout._paused_from = snapshot.stage, snapshot.state, snapshot.paused_from
        rollout._started_ns = dict(snapshot.started_ns)
        rollout._refused, rollout._reasons = dict(snapshot.refused), tuple(snapshot.reasons)
        rollout._stage_started_ns = snapshot.stage_started_ns
        if snapshot.state not in FINAL:
            rollout._resumed_ns = now
            wanted = set(already_started)
            for symbol in rollout._stage_list():
                if symbol in rollout._started_ns or symbol in wanted:
                    rollout._started_ns[symbol] = now
            if rollout._stage_started_ns is not None:
                rollout._stage_started_ns = now
            rollout._state = rollout._resumed_state(rollout._state, now)
            rollout._paused_from = rollout._resumed_state(rollout._paused_from, now) if rollout._paused_from else None
        return rollout

    def _resumed_state(self, state: RolloutState, now: int) -> RolloutState:
        """A stalled stage waits again (its timer restarts); a stage whose starts were all done before the
        restart, but not yet recorded, waits instead of starting nothing forever."""
        if state is RolloutState.STALLED:
            return RolloutState.WAITING
        if state is RolloutState.STARTING and all(s in self._started_ns for s in self._stage_list()):
            self._stage_started_ns = now
            return RolloutState.WAITING
        return state

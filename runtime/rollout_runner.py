"""Runs one staged rollout at a time for the process the dashboard holds (engine or attached runtime).

Stepped by a job of that process's JobRunner, not by a browser session: a rollout of a thousand
symbols takes many minutes, and it must go on when the operator closes the tab (docs/ARCHITECTURE.md,
Dashboard). Each stage's starts go through the same operator action as a single start (checked,
audited, in a fleet written to the assignment topic first); the rollout's own begin, advance, pause,
resume and cancel are audited too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from runtime.bulk_start import start_many
from runtime.rollout import (DEFAULT_STALL_AFTER_S, FINAL, Rollout, RolloutConflict, RolloutProgress, RolloutState,
                             StageHealth)

log = logging.getLogger(__name__)

StartSymbol = Callable[[str, bool, bool, str], object]  # (symbol, depth, critical, by)
Health = Callable[[Sequence[str], int], StageHealth]  # (the stage's symbols, when it started) -> health
Audit = Callable[[str, str, str, str], None]  # (by, action, subject, details)


class RolloutRunner:
    def __init__(self, start: StartSymbol, health: Health, audit: Audit,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self._start = start
        self._health = health
        self._audit = audit
        self._clock = clock
        self._lock = threading.Lock()
        self._rollout: Rollout | None = None
        self._options = (False, False)  # depth, critical
        self._starting: tuple[int, int] | None = None

    def begin(self, symbols: Sequence[str], stages: Sequence[int], *, depth: bool, critical: bool, by: str,
              stall_after_s: float = DEFAULT_STALL_AFTER_S) -> RolloutProgress:
        """InvalidStages for stages that make no sense; RolloutConflict while another rollout runs."""
        with self._lock:
            if self._rollout is not None and self._rollout.state not in FINAL:
                raise RolloutConflict(f"a rollout by {self._rollout.by} is {self._rollout.state.value}: "
                                      "cancel it before starting another")
            rollout = Rollout(symbols, stages, clock=self._clock, by=by, stall_after_s=stall_after_s)
            self._rollout, self._options = rollout, (depth, critical)
        self._audit(by, "rollout_begin", f"{len(rollout.symbols)} symbols",
                    f"stages {' → '.join(map(str, rollout.targets))}, depth={depth}" + (", critical" if critical else ""))
        log.info("rollout begun", extra={"symbols": len(rollout.symbols), "stages": list(rollout.targets), "by": by})
        return rollout.progress()

    def step(self) -> None:
        """Start what is due, else judge the stage; a job calls it every second (never two at once).

        A stage's starts run outside the lock, so the page reads the progress meanwhile, and a pause or
        cancel given during them holds once they are done.
        """
        with self._lock:
            rollout = self._rollout
            if rollout is None:
                return
            due = rollout.due()
        if due:
            self._start_stage(rollout, due)
            return
        with self._lock:
            if rollout.state not in (RolloutState.WAITING, RolloutState.STALLED):
                return
            before = rollout.progress()
            state = rollout.judge(self._health(rollout.stage_symbols(), before.stage_started_ns or 0))
            after = rollout.progress()
        if state is not before.state:
            healthy = state in (RolloutState.STARTING, RolloutState.DONE)
            self._audit(rollout.by, "rollout_stage_healthy" if healthy else f"rollout_{state.value}",
                        f"stage {before.stage}", "; ".join(after.reasons) or f"{before.stage_size} symbols with data")
            level = logging.INFO if healthy else logging.WARNING
            log.log(level, "rollout %s", state.value, extra={"stage": before.stage, "reasons": "; ".join(after.reasons)})

    def _start_stage(self, rollout: Rollout, due: Sequence[str]) -> None:
        depth, critical = self._options
        at_ns = self._clock()
        self._starting = (0, len(due))
        outcome = start_many(lambda symbol: self._start(symbol, depth, critical, rollout.by), due,
                             progress=self._progressed)
        with self._lock:
            rollout.started(outcome, at_ns)
            self._starting = None
            stage = rollout.progress().stage
        log.info("rollout stage started", extra={"stage": stage, "started": len(outcome.started),
                                                 "refused": len(outcome.refused)})

    def _progressed(self, done: int, total: int) -> None:
        self._starting = (done, total)

    def starting(self) -> tuple[int, int] | None:
        """(started, of) while a stage's symbols are being started, else None."""
        return self._starting

    def pause(self, by: str) -> None:
        self._operate(by, "pause", lambda r: r.pause())

    def resume(self, by: str) -> None:
        self._operate(by, "resume", lambda r: r.resume())

    def cancel(self, by: str) -> None:
        self._operate(by, "cancel", lambda r: r.cancel())

    def _operate(self, by: str, action: str, change: Callable[[Rollout], None]) -> None:
        """RolloutConflict when there is no rollout or its state does not allow ``action``."""
        with self._lock:
            if self._rollout is None:
                raise RolloutConflict(f"no rollout to {action}")
            change(self._rollout)
            stage = self._rollout.progress().stage
        self._audit(by, f"rollout_{action}", f"stage {stage}", "")

    def progress(self) -> RolloutProgress | None:
        with self._lock:
            return self._rollout.progress() if self._rollout is not None else None

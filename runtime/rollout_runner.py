"""Runs one staged rollout at a time for the process the dashboard holds (engine or attached runtime).

Stepped by a job of that process's JobRunner, not by a browser session: a rollout of a thousand
symbols takes many minutes, and it must go on when the operator closes the tab (docs/ARCHITECTURE.md,
Dashboard). Each stage's starts go through the same operator action as a single start (checked,
audited, in a fleet written to the assignment topic first); the rollout's own begin, advance, pause,
resume and cancel are audited too.

Each change is also kept in storage (runtime/rollout_store.py), and the next process takes an unfinished
rollout up as soon as storage answers (``rollout_resumed`` in the audit trail); until it has looked, a new
rollout is refused, so one begun meanwhile cannot hide the one that was running.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any

from runtime.bulk_start import start_many
from runtime.rollout import (DEFAULT_STALL_AFTER_S, FINAL, InvalidStages, Rollout, RolloutConflict, RolloutProgress,
                             RolloutState, StageHealth)
from runtime.rollout_store import RolloutRecord, RolloutStore, latest_unfinished
from storage.store import StorageError

log = logging.getLogger(__name__)

StartSymbol = Callable[[str, bool, bool, str], object]  # (symbol, depth, critical, by)
Health = Callable[[Sequence[str], int], StageHealth]  # (the stage's symbols, when it started) -> health
Audit = Callable[[str, str, str, str], None]  # (by, action, subject, details)


class RolloutRunner:
    def __init__(self, start: StartSymbol, health: Health, audit: Audit,
                 clock: Callable[[], int] = time.time_ns, *, store: RolloutStore | None = None,
                 ready: Callable[[], bool] = lambda: True, wanted: Callable[[], Collection[str]] = frozenset) -> None:
        """``store``: where the rollout is kept (None: in memory only); ``ready``: storage answers, so the
        stored rollout can be read; ``wanted``: the symbols started now (a resumed stage's starts that
        were under way when the last process ended are not made again)."""
        self._start = start
        self._health = health
        self._audit = audit
        self._clock = clock
        self._store = store
        self._ready = ready
        self._wanted = wanted
        self._lock = threading.Lock()
        self._taking_up = threading.Lock()
        self._looked = store is None  # the stored rollout was read (or there is no store)
        self._rollout: Rollout | None = None
        self._options = (False, False)  # depth, critical
        self._id = ""
        self._revision = 0
        self._starting: tuple[int, int] | None = None

    @classmethod
    def serving(cls, runtime: Any, health: Callable[[Any, Sequence[str], int], StageHealth]) -> RolloutRunner:
        """The runner of an engine or attached runtime: its starts, its audit trail, its storage."""
        return cls(start=lambda symbol, depth, critical, by: runtime.start_symbol(symbol, depth=depth,
                                                                                  critical=critical, by=by),
                   health=lambda symbols, since_ns: health(runtime, symbols, since_ns),
                   audit=runtime.alert_store.audit,
                   store=RolloutStore(runtime.store, runtime.storage.writes),
                   ready=lambda: runtime.storage.ready,
                   # the stored copy too: in a fleet the assignment topic's view may not be read yet after a restart
                   wanted=lambda: {spec.symbol for spec in [*runtime.symbols.all(), *runtime.desired_symbols()]
                                   if spec.level1})

    def begin(self, symbols: Sequence[str], stages: Sequence[int], *, depth: bool, critical: bool, by: str,
              stall_after_s: float = DEFAULT_STALL_AFTER_S) -> RolloutProgress:
        """InvalidStages for stages that make no sense; RolloutConflict while another rollout runs, or before
        storage has said whether one was running when the last process ended."""
        self._take_up()
        with self._lock:
            if not self._looked:
                raise RolloutConflict("storage has not answered since this process started, so a rollout left "
                                      "unfinished by the previous one is not known yet: try again once storage "
                                      "is available")
            if self._rollout is not None and self._rollout.state not in FINAL:
                raise RolloutConflict(f"a rollout by {self._rollout.by} is {self._rollout.state.value}: "
                                      "cancel it before starting another")
            rollout = Rollout(symbols, stages, clock=self._clock, by=by, stall_after_s=stall_after_s)
            self._rollout, self._options = rollout, (depth, critical)
            self._id, self._revision = uuid.uuid4().hex, 0
        self._save()
        self._audit(by, "rollout_begin", f"{len(rollout.symbols)} symbols",
                    f"stages {' → '.join(map(str, rollout.targets))}, depth={depth}" + (", critical" if critical else ""))
        log.info("rollout begun", extra={"symbols": len(rollout.symbols), "stages": list(rollout.targets), "by": by})
        return rollout.progress()

    def step(self) -> None:
        """Start what is due, else judge the stage; a job calls it every second (never two at once).

        A stage's starts run outside the lock, so the page reads the progress meanwhile, and a pause or
        cancel given during them holds once they are done.
        """
        self._take_up()
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
            self._save()
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
        self._save()
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
        self._save()
        self._audit(by, f"rollout_{action}", f"stage {stage}", "")

    def _save(self) -> None:
        """Keep the rollout's state as it is now; the revision orders the writes of concurrent changes."""
        if self._store is None:
            return
        with self._lock:
            if self._rollout is None:
                return
            self._revision += 1
            depth, critical = self._options
            record = RolloutRecord(self._id, self._revision, self._clock(), depth, critical, self._rollout.snapshot())
        self._store.save(record)

    def _take_up(self) -> None:
        """Once storage answers: go on with the rollout the previous process left unfinished, if any."""
        if self._looked or self._store is None or not self._ready():
            return
        with self._taking_up:
            if self._looked:
                return
            try:
                record = latest_unfinished(self._store.records())
            except StorageError as exc:
                log.debug("stored rollout not read yet", extra={"error": str(exc)})
                return
            rollout = None
            if record is not None:
                try:
                    rollout = Rollout.restore(record.snapshot, clock=self._clock, already_started=self._wanted())
                except InvalidStages as exc:
                    log.error("stored rollout not resumed: its stages do not fit its symbols",
                              extra={"rollout": record.rollout_id, "error": str(exc)})
            with self._lock:
                self._looked = True
                if rollout is None or record is None:
                    return
                self._rollout, self._options = rollout, (record.depth, record.critical)
                self._id, self._revision = record.rollout_id, record.revision
                progress = rollout.progress()
        self._save()
        details = (f"begun by {progress.by}; {progress.started:,} of {progress.targets[-1]:,} symbols started; "
                   f"stage {progress.stage} of {len(progress.targets)} {progress.state.value}")
        self._audit("system", "rollout_resumed", f"stage {progress.stage}", details)
        log.warning("unfinished rollout resumed after a restart", extra={
            "rollout": self._id, "stage": progress.stage, "state": progress.state.value,
            "started": progress.started, "symbols": progress.targets[-1], "by": progress.by})

    def progress(self) -> RolloutProgress | None:
        with self._lock:
            return self._rollout.progress() if self._rollout is not None else None

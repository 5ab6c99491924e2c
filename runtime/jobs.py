"""Background jobs under one APScheduler ``BackgroundScheduler``, each supervised.

A periodic job is a short step run at an interval (backup rotation, host sample,
alert rules...). A loop job (the writer, the producer's delivery reports) calls its step
back to back until shutdown, because a hot path cannot wait for the next tick; its
interval only says how soon a loop that died is started again. A step that raises is
logged with its traceback, counted, and retried after an exponential backoff instead of
hammering a broken dependency; the counters are what the dashboard and the alert rules
read, so a dying job is never silent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)
# A step still running at its next tick is skipped (coalesced) by design; APScheduler
# would warn about every such skip. Failures are reported by the supervisor below.
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
# APScheduler's executor logs every run at INFO, start and end: about 13 lines a second for
# an idle engine, drowning what an operator needs. The supervisor logs each run at DEBUG.
logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)


@dataclass(frozen=True)
class JobStatus:
    name: str
    interval_s: float
    runs: int
    failures: int
    consecutive_failures: int
    last_error: str
    backing_off: bool


class _Supervised:
    def __init__(self, name: str, step: Callable[[], object], interval_s: float, max_backoff_s: float,
                 clock: Callable[[], float], loop_until: threading.Event | None) -> None:
        self.name = name
        self.step = step
        self.loop_until = loop_until
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.runs = 0
        self.failures = 0
        self.consecutive = 0
        self.last_error = ""
        self.resume_at = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> None:
        if self.clock() < self.resume_at:
            return
        with self.lock:
            started = self.clock()
            try:
                self.step()
                while self.loop_until is not None and not self.loop_until.is_set():
                    self.step()
            except Exception as exc:  # noqa: BLE001 - a job must never kill the scheduler
                self.failures += 1
                self.consecutive += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = min(self.max_backoff_s, max(self.interval_s, 0.1) * 2 ** (self.consecutive - 1))
                self.resume_at = self.clock() + delay
                log.exception("job failed; backing off", extra={"job": self.name, "failures": self.failures,
                                                                "backoff_s": round(delay, 3)})
            else:
                log.debug("job ran", extra={"job": self.name,
                                            "duration_ms": round((self.clock() - started) * 1000, 1)})
                if self.consecutive:
                    log.info("job recovered", extra={"job": self.name, "after_failures": self.consecutive})
                self.consecutive = 0
                self.resume_at = 0.0
            finally:
                self.runs += 1

    def status(self) -> JobStatus:
        return JobStatus(self.name, self.interval_s, self.runs, self.failures, self.consecutive,
                         self.last_error, self.clock() < self.resume_at)


class JobRunner:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1,
                                                            "misfire_grace_time": None})
        self._jobs: dict[str, _Supervised] = {}
        self._clock = clock
        self._stopping = threading.Event()
        # Interpreter exit joins every executor thread before atexit runs; a loop job that is
        # never told to stop would hang the process there, so end the loops first.
        threading._register_atexit(self._stopping.set)  # noqa: SLF001 - the hook concurrent.futures uses too

    def add(self, name: str, step: Callable[[], object], interval_s: float, max_backoff_s: float = 30.0,
            *, loop: bool = False) -> None:
        """Run ``step`` every ``interval_s``; with ``loop``, back to back until shutdown (the
        step must block briefly, e.g. on a poll timeout, rather than spin)."""
        if name in self._jobs:
            raise ValueError(f"job {name!r} already added")
        job = _Supervised(name, step, interval_s, max_backoff_s, self._clock, self._stopping if loop else None)
        self._jobs[name] = job
        # A loop starts with the scheduler, not one interval later: the producer's loop serves the
        # delivery reports, and every event of a first second without it would wait that second.
        first = {"next_run_time": datetime.now(timezone.utc)} if loop else {}
        self._scheduler.add_job(job, "interval", seconds=interval_s, id=name, name=name, **first)

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stop scheduling, end loop jobs after their current step, wait for running steps."""
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def run_now(self, name: str) -> None:
        """Run one step synchronously (final flushes at shutdown, tests)."""
        self._jobs[name]()

    def status(self) -> list[JobStatus]:
        return [job.status() for job in self._jobs.values()]

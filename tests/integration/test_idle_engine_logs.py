"""An idle engine's log at INFO is worth reading: one line per thing an operator would want to know.

APScheduler used to log every job run at INFO ("Running job ...", "... executed
successfully"), about 13 lines a second for an engine doing nothing.
"""

from __future__ import annotations

import logging
import time

import pytest

from config import load_settings
from runtime.engine import Engine
from tests.log_capture import root_logging

WATCH_S = 5.0


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[float, logging.LogRecord]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((time.monotonic(), record))


@pytest.fixture
def info_lines():
    with root_logging(_Lines(), logging.INFO) as handler:
        yield handler


@pytest.mark.timeout(90)
def test_idle_engine_logs_no_job_runs_and_under_one_info_line_per_second(chdb_store, tmp_path, info_lines):
    settings = load_settings(data_dir=tmp_path, feed={"symbols": ["AAPL", "MSFT", "SPY"], "simulator_rate": 5},
                             storage={"database": chdb_store.database})
    engine = Engine(settings, store=chdb_store).start()
    try:
        time.sleep(1.0)  # start-up: migrations, connections, partition assignment
        watch_from = time.monotonic()
        time.sleep(WATCH_S)
        watch_to = time.monotonic()
    finally:
        engine.stop(drain_timeout_s=5)
    job_runs = [r.getMessage() for _, r in info_lines.records
                if r.name.startswith("apscheduler") and ("Running job" in r.getMessage()
                                                         or "executed successfully" in r.getMessage())]
    assert not job_runs, f"{len(job_runs)} APScheduler job-run lines at INFO, e.g. {job_runs[:2]}"
    watched = [f"{r.name}: {r.getMessage()}" for at, r in info_lines.records if watch_from <= at < watch_to]
    assert len(watched) < WATCH_S, f"{len(watched)} INFO lines in {WATCH_S:.0f} s of idling: {watched[:10]}"

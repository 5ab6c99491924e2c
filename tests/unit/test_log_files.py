"""Each process writes its JSON log lines to a rotating file too: rotated by size and by age, rotated copies
deleted by count and by age. Time is a fake clock; file ages are set with os.utime."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from config import load_settings
from monitoring.logs import AgedRotatingFileHandler, JsonFormatter, configure_process_logging, process_name

HOUR = 3600.0


class FakeClock:
    """Starts at the real time, so files written meanwhile have plausible modification times."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logger():
    log = logging.getLogger("tests.log_files")
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def attach(log: logging.Logger, path: Path, clock: FakeClock, **limits) -> AgedRotatingFileHandler:
    options = {"max_bytes": 10_000, "keep_files": 3, "rotate_after_s": 24 * HOUR, "max_age_s": 7 * 24 * HOUR, **limits}
    handler = AgedRotatingFileHandler(path, clock=clock, **options)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    return handler


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_file_over_its_size_limit_is_rotated_and_only_keep_files_copies_are_kept(tmp_path, logger):
    path = tmp_path / "collector-a.log"
    handler = attach(logger, path, FakeClock(), max_bytes=2_000, keep_files=2)
    for n in range(100):
        logger.info("tick", extra={"n": n, "symbol": "AAPL"})
    assert [p.name for p in handler.rotated()] == ["collector-a.log.1", "collector-a.log.2"]
    assert not (tmp_path / "collector-a.log.3").exists()
    for file in (path, *handler.rotated()):
        assert file.stat().st_size <= 2_000
    newest = [line["n"] for line in lines(path)]
    assert newest[-1] == 99 and newest == list(range(newest[0], 100)), "the current file holds the latest lines"
    assert lines(tmp_path / "collector-a.log.1")[-1]["n"] == newest[0] - 1, "no line lost at a rotation"


def test_a_file_older_than_rotate_after_is_rotated_at_the_next_line(tmp_path, logger):
    clock = FakeClock()
    path = tmp_path / "writer-a.log"
    handler = attach(logger, path, clock, rotate_after_s=HOUR)
    logger.info("first")
    clock.now += HOUR - 1
    logger.info("second")
    assert handler.rotated() == []
    clock.now += 2
    logger.info("third")
    assert [line["msg"] for line in lines(path)] == ["third"]
    assert [line["msg"] for line in lines(tmp_path / "writer-a.log.1")] == ["first", "second"]


def test_an_empty_file_is_not_rotated_for_its_age(tmp_path, logger):
    clock = FakeClock()
    handler = attach(logger, tmp_path / "quiet.log", clock, rotate_after_s=HOUR)
    clock.now += 10 * HOUR
    logger.info("after a quiet night")
    assert handler.rotated() == []


def test_rotated_copies_older_than_max_age_are_deleted_at_the_next_rotation(tmp_path, logger):
    clock = FakeClock()
    path = tmp_path / "dashboard-a.log"
    handler = attach(logger, path, clock, rotate_after_s=HOUR, max_age_s=36 * HOUR, keep_files=10)
    for day in range(4):
        logger.info("day", extra={"day": day})
        os.utime(path, (clock.now, clock.now))  # the line was written at the fake clock's time
        clock.now += 24 * HOUR
    # Day 1 rotated day 0's file; day 2 found it 48 h old (over 36 h) and deleted it, and so on.
    assert [[line["day"] for line in lines(copy)] for copy in handler.rotated()] == [[2]]
    assert [line["day"] for line in lines(path)] == [3]


def test_a_stale_file_left_by_an_earlier_process_is_rotated_at_start_and_expired_copies_deleted(tmp_path, logger):
    clock = FakeClock()
    path = tmp_path / "collector-b.log"
    path.write_text('{"msg": "from yesterday"}\n')
    expired = tmp_path / "collector-b.log.1"
    expired.write_text('{"msg": "from last month"}\n')
    os.utime(path, (clock.now - 30 * HOUR, clock.now - 30 * HOUR))
    os.utime(expired, (clock.now - 30 * 24 * HOUR, clock.now - 30 * 24 * HOUR))
    attach(logger, path, clock)
    logger.info("today")
    assert [line["msg"] for line in lines(path)] == ["today"]
    assert [line["msg"] for line in lines(tmp_path / "collector-b.log.1")] == ["from yesterday"]
    assert not (tmp_path / "collector-b.log.2").exists(), "the month-old copy was deleted, not shifted"


def test_settings_name_the_file_and_the_limits_and_a_missing_directory_is_created(tmp_path, monkeypatch):
    settings = load_settings(data_dir=tmp_path, instance_id="desk/7",
                             logs={"max_file_mb": 3, "keep_files": 4, "rotate_after_h": 6, "max_age_days": 2})
    assert process_name("collector", settings) == "collector-desk_7"
    assert settings.log_directory() == tmp_path / "logs"
    root = logging.getLogger()
    saved = list(root.handlers)
    for handler in saved:  # configure_process_logging installs once per process: start from none
        root.removeHandler(handler)
    try:
        configure_process_logging("collector", settings)
        files = [h for h in root.handlers if isinstance(h, AgedRotatingFileHandler)]
        assert len(files) == 1
        handler = files[0]
        assert Path(handler.baseFilename) == tmp_path / "logs" / "collector-desk_7.log"
        assert (handler.maxBytes, handler.backupCount) == (3 * 2**20, 4)
        logging.getLogger("tests.settings").warning("written", extra={"symbol": "MSFT"})
        handler.flush()
        assert lines(Path(handler.baseFilename))[-1]["symbol"] == "MSFT"
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved:
            root.addHandler(handler)


def test_an_unwritable_log_directory_leaves_stderr_logging_and_says_so(tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    settings = load_settings(data_dir=tmp_path, logs={"directory": blocker / "logs"})
    root = logging.getLogger()
    saved = list(root.handlers)
    for handler in saved:
        root.removeHandler(handler)
    try:
        configure_process_logging("writer", settings)
        assert not [h for h in root.handlers if isinstance(h, AgedRotatingFileHandler)]
        assert [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)], "stderr still logs"
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
    assert "logging to stderr only" in capsys.readouterr().err

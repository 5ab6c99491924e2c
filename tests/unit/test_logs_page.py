"""The Logs page reads every process's JSON log files from the shared log directory and filters them by
level, component, symbol and text, with error counts per component over time. The page runs in AppTest
on real files written by our JsonFormatter; the reader's pure parts are tested directly."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from monitoring.log_reader import LogQuery, error_counts, parse_line, read_recent, select
from monitoring.logs import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]
# The page alone, without app.py (which would start an engine). Run from a file in pages/, Streamlit would put
# pages/ first on sys.path, where pages/alerts.py shadows the alerts package; so it is run by path instead.
LOGS_PAGE = f"import runpy\nrunpy.run_path({str(ROOT / 'pages' / 'logs.py')!r}, run_name='__main__')\n"
BASE_NS = 1_795_000_000 * 10**9  # a fixed instant; lines are a few seconds or minutes after it


def write_log(path: Path, records: list[tuple[int, int, str, str, dict]]) -> None:
    """(seconds after BASE, level, logger, message, extra) -> JSON lines as a process writes them."""
    formatter = JsonFormatter()
    with path.open("a") as handle:
        for seconds, level, name, message, extra in records:
            record = logging.LogRecord(name, level, __file__, 1, message, None, None)
            record.created = BASE_NS / 1e9 + seconds
            record.msecs = 0
            record.__dict__.update(extra)
            handle.write(formatter.format(record) + "\n")


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "logs"
    directory.mkdir()
    write_log(directory / "collector-a.log.1", [
        (0, logging.INFO, "runtime.engine", "engine started", {}),
        (5, logging.ERROR, "collectors.iqfeed.connections", "level1 disconnected", {"error": "reset"}),
    ])
    write_log(directory / "collector-a.log", [
        (65, logging.WARNING, "collectors.iqfeed.protocol", "symbol rejected", {"symbol": "BAD"}),
        (70, logging.ERROR, "collectors.iqfeed.connections", "level1 disconnected", {"error": "timeout"}),
        (75, logging.INFO, "runtime.engine", "symbol started", {"symbol": "AAPL"}),
    ])
    write_log(directory / "writer-a.log", [
        (66, logging.ERROR, "storage.writer", "insert failed", {"symbol": "AAPL", "error": "Connection refused"}),
        (130, logging.CRITICAL, "storage.writer", "crash hook", {}),
        (131, logging.DEBUG, "storage.writer", "batch written", {"rows": 3}),
    ])
    (directory / "writer-a.log").open("a").write("Traceback (most recent call last): not JSON\n")
    (directory / "notes.txt").write_text('{"msg": "not a log file"}\n')
    return directory


def test_every_process_file_and_rotated_copy_is_read_and_a_foreign_line_is_kept_as_text(log_dir):
    entries = read_recent(log_dir)
    assert {e.process for e in entries} == {"collector-a", "writer-a"}
    assert len(entries) == 9
    foreign = [e for e in entries if e.component == "?"]
    assert [e.message for e in foreign] == ["Traceback (most recent call last): not JSON"]
    assert not any("not a log file" in e.message for e in entries)


def test_queries_filter_by_level_component_symbol_and_text_newest_first(log_dir):
    entries = read_recent(log_dir)

    def messages(**query) -> list[str]:
        return [e.message for e in select(entries, LogQuery(**query), 100)]

    assert messages(min_level="ERROR") == ["crash hook", "level1 disconnected", "insert failed", "level1 disconnected"]
    assert messages(components=frozenset({"collectors"}), min_level="WARNING") == [
        "level1 disconnected", "symbol rejected", "level1 disconnected"]
    assert messages(symbol="aapl") == ["symbol started", "insert failed"]
    assert messages(text="timeout") == ["level1 disconnected"]  # found in the extra fields, not the message
    assert messages(text="traceback") == ["Traceback (most recent call last): not JSON"]
    assert len(select(entries, LogQuery(), 2)) == 2


def test_error_counts_are_per_minute_and_component():
    lines = [json.dumps({"ts": ts, "level": level, "logger": name, "msg": "m"}) for ts, level, name in [
        ("2026-11-30T14:00:05.000Z", "ERROR", "bus.kafka"), ("2026-11-30T14:00:59.999Z", "CRITICAL", "bus.kafka"),
        ("2026-11-30T14:01:00.000Z", "ERROR", "bus.kafka"), ("2026-11-30T14:00:30.000Z", "ERROR", "storage.writer"),
        ("2026-11-30T14:00:31.000Z", "WARNING", "storage.writer")]]
    minute = parse_line(lines[0], "p").ts_ns // 60_000_000_000 * 60_000_000_000
    counts = error_counts(parse_line(line, "p") for line in lines)
    assert counts == {(minute, "bus.kafka"): 2, (minute + 60_000_000_000, "bus.kafka"): 1,
                      (minute, "storage.writer"): 1}


@pytest.fixture
def logs_page(log_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("TICKOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TICKOPS_LOGS__DIRECTORY", str(log_dir))
    monkeypatch.setenv("TICKOPS_LOGS__FILE", "false")  # the page's own process writes no file into the fixture
    st.cache_resource.clear()
    app = AppTest.from_string(LOGS_PAGE, default_timeout=30)
    yield app
    st.cache_resource.clear()


def shown(app: AppTest) -> list[str]:
    return list(app.dataframe[0].value["message"])


def test_logs_page_filters_by_level_component_symbol_and_text_and_plots_errors_per_component(logs_page):
    app = logs_page.run()
    assert not app.exception, app.exception
    assert app.title[0].value == "Logs"
    assert set(shown(app)) == {"engine started", "level1 disconnected", "symbol rejected", "symbol started",
                               "insert failed", "crash hook", "Traceback (most recent call last): not JSON"}
    chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert {trace["name"]: sum(trace["y"]) for trace in chart["data"]} == {
        "collectors.iqfeed.connections": 2, "storage.writer": 2}

    app.selectbox[0].set_value("ERROR").run()
    assert shown(app) == ["crash hook", "level1 disconnected", "insert failed", "level1 disconnected"]

    app.multiselect[0].set_value(["storage.writer"]).run()
    assert shown(app) == ["crash hook", "insert failed"]
    chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert [trace["name"] for trace in chart["data"]] == ["storage.writer"]

    app.multiselect[0].set_value([]).run()
    app.selectbox[0].set_value("DEBUG").run()
    app.text_input[0].set_value("AAPL").run()  # symbol
    assert shown(app) == ["symbol started", "insert failed"]

    app.text_input[0].set_value("").run()
    app.text_input[1].set_value("refused").run()  # text, found in an extra field
    assert shown(app) == ["insert failed"]
    assert "1 of 9 lines" in [c.value for c in app.caption][-1]


def test_logs_page_says_where_it_looks_when_there_is_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("TICKOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TICKOPS_LOGS__DIRECTORY", str(tmp_path / "empty"))
    monkeypatch.setenv("TICKOPS_LOGS__FILE", "false")
    st.cache_resource.clear()
    app = AppTest.from_string(LOGS_PAGE, default_timeout=30).run()
    st.cache_resource.clear()
    assert not app.exception
    assert "No log lines" in app.info[0].value and str(tmp_path / "empty") in app.info[0].value

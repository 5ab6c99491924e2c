"""Stopping the dashboard process (SIGTERM, as a service manager or Ctrl-C does) exits
promptly and flushes the embedded engine: every received event reaches the backup."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser


@pytest.mark.timeout(180)
def test_sigterm_stops_the_engine_flushes_and_exits(tmp_path, page):
    proc, url = start_dashboard(tmp_path)
    try:
        page.goto(url)  # the first session creates the engine
        received = page.get_by_test_id("stMetric").filter(has_text="Events received").get_by_test_id("stMetricValue")
        expect(received).not_to_have_text("0", timeout=60_000)
    finally:
        code = stop_dashboard(proc, timeout_s=40)
    log = (tmp_path / "streamlit.log").read_text()
    assert code is not None, f"the process hung on shutdown:\n{log[-3000:]}"
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    stopped = [r for r in records if r["msg"] == "engine stopped"]
    sealed = [r for r in records if r["msg"] == "backup segment sealed"]
    assert stopped and stopped[0]["ingested"] > 0, log[-3000:]
    assert sum(r["events"] for r in sealed) == stopped[0]["ingested"], "events received but not in the backup"

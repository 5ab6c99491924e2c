"""The dashboard in a real browser: it serves, renders the overview and reads chDB."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.mark.timeout(120)
def test_overview_renders_pipeline_mode_and_storage_tables(dashboard_url, page, tmp_path):
    page.goto(dashboard_url)
    expect(page.get_by_role("heading", name="TickOps")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("ClickHouse 26.")).to_be_visible(timeout=60_000)  # chDB answered
    for label in ("Feed", "Bus", "Storage"):
        expect(page.get_by_test_id("stMetricLabel").filter(has_text=label)).to_be_visible()
    page.screenshot(path=str(tmp_path / "overview.png"))

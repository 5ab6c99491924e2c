"""The dashboard in a real browser against a real engine (simulator feed, in-process bus, chDB)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.mark.timeout(180)
def test_overview_shows_data_flowing_and_every_page_opens(dashboard_url, page, tmp_path):
    page.goto(dashboard_url)
    expect(page.get_by_role("heading", name="TickOps")).to_be_visible(timeout=60_000)
    received = page.get_by_test_id("stMetric").filter(has_text="Events received").get_by_test_id("stMetricValue")
    expect(received).not_to_have_text("0", timeout=30_000)
    page.screenshot(path=str(tmp_path / "overview.png"))
    for title in ("Live feeds", "Alerts", "Latency", "Host health", "Data integrity", "Audit log"):
        page.get_by_role("link", name=title).click()
        expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=30_000)
        expect(page.get_by_test_id("stException")).to_have_count(0)


@pytest.mark.timeout(180)
def test_operator_starts_a_symbol_from_the_sidebar_and_sees_it_live(dashboard_url, page):
    page.goto(f"{dashboard_url}/live_feeds")
    expect(page.get_by_role("heading", name="Live feeds")).to_be_visible(timeout=60_000)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_label("Start symbol").fill("nvda")
    sidebar.get_by_role("button", name="Start").click()
    grid = page.get_by_test_id("stDataFrame").first
    expect(grid).to_contain_text("NVDA", timeout=30_000)
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(0)  # no symbol's history until one is chosen
    page.get_by_test_id("stSelectbox").click()
    page.get_by_role("option", name="AAPL").click()
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(2, timeout=30_000)
    sidebar.get_by_label("Start symbol").fill("AAPL,S,SET LOGINID,x")
    sidebar.get_by_role("button", name="Start").click()
    expect(sidebar.get_by_test_id("stAlertContentError")).to_contain_text(re.compile("comma"), timeout=15_000)
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_test_id("stDataFrame").first).to_contain_text("start_symbol", timeout=30_000)

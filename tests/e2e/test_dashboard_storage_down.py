"""The dashboard in a real browser while ClickHouse is down: every page opens, says so at the top,
and an operator can still act (the action is kept in memory until storage is back)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import free_port, start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser

PAGES = ("Live feeds", "Alerts", "Latency", "Host health", "Data integrity", "Audit log")


@pytest.fixture(scope="module")
def storage_down_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard with a ClickHouse server configured on a port nobody listens on."""
    settings = {"TICKOPS_STORAGE__BACKEND": "server", "TICKOPS_STORAGE__PORT": str(free_port())}
    proc, url = start_dashboard(tmp_path_factory.mktemp("storage-down"), settings)
    try:
        yield url
    finally:
        assert stop_dashboard(proc) is not None, "the dashboard did not stop within 30 s of SIGTERM"


@pytest.mark.timeout(180)
def test_every_page_opens_under_a_storage_banner_while_clickhouse_is_down(storage_down_url, page):
    page.goto(storage_down_url)
    expect(page.get_by_role("heading", name="TickOps")).to_be_visible(timeout=60_000)
    banner = page.get_by_test_id("stAlertContentError").filter(has_text=re.compile("^Storage unavailable since"))
    expect(banner).to_be_visible(timeout=30_000)
    received = page.get_by_test_id("stMetric").filter(has_text="Events received").get_by_test_id("stMetricValue")
    expect(received).not_to_have_text("0", timeout=30_000)  # the feed runs without storage
    for title in PAGES:
        page.get_by_role("link", name=title).click()
        expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=30_000)
        expect(banner).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text(re.compile("Audit log: storage unavailable"))).to_be_visible()


@pytest.mark.timeout(180)
def test_an_operator_starts_a_symbol_while_storage_is_down_and_it_is_watched_at_once(storage_down_url, page):
    page.goto(storage_down_url)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("5 watched", exact=False)).to_be_visible(timeout=60_000)  # configured, from memory
    sidebar.get_by_label("Start symbol").fill("nvda")
    sidebar.get_by_role("button", name="Start").click()
    expect(page.get_by_text("Started NVDA")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    page.get_by_role("link", name="Live feeds").click()
    expect(page.get_by_test_id("stDataFrame").first).to_contain_text("NVDA", timeout=30_000)

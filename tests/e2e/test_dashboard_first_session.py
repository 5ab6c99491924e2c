"""The first browser session of a freshly started dashboard behaves like every later one.

Streamlit runs a server's first session in its "pages directory" mode (``pages/`` sits next to
app.py) until ``st.navigation`` runs (dashboard/navigation_mode.py). Each test starts its own
server, because only a server's first session shows it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser


@pytest.fixture
def fresh_url(tmp_path) -> Iterator[str]:
    """A dashboard (embedded default, five configured symbols) no browser has opened yet."""
    proc, url = start_dashboard(tmp_path)
    try:
        yield url
    finally:
        stop_dashboard(proc)


@pytest.mark.timeout(180)
def test_the_first_symbol_start_of_a_fresh_dashboard_is_not_dropped(fresh_url, page):
    """It was: the first run's sidebar form got other widget ids, so its first submission vanished."""
    page.goto(fresh_url)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("5 watched", exact=False)).to_be_visible(timeout=60_000)
    sidebar.get_by_label("Start symbol").fill("NVDA")
    sidebar.get_by_role("button", name="Start").click()
    expect(page.get_by_text("Started NVDA")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)


@pytest.mark.timeout(180)
def test_a_page_opened_by_its_url_first_runs_inside_the_dashboards_navigation(fresh_url, page):
    """It ran pages/fleet.py alone: Streamlit's list of files for navigation, no login box, no symbol controls."""
    page.goto(f"{fresh_url}/fleet")
    expect(page.get_by_role("heading", name="Fleet", exact=True)).to_be_visible(timeout=60_000)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("5 watched", exact=False)).to_be_visible(timeout=60_000)
    expect(sidebar.get_by_role("link", name="Overview")).to_be_visible()
    expect(sidebar.get_by_role("link", name="Host health")).to_be_visible()
    expect(sidebar.get_by_role("link", name="app")).to_have_count(0)  # a file name: Streamlit's own list
    expect(sidebar.get_by_role("link", name="host_health")).to_have_count(0)
    expect(page).to_have_url(f"{fresh_url}/fleet")

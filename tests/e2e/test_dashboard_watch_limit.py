"""An operator starting a symbol beyond the watch limit sees why in the sidebar, and nothing changes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def full_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded default with its five configured symbols and a watch limit of five."""
    proc, url = start_dashboard(tmp_path_factory.mktemp("watch-limit"), {"TICKOPS_FEED__WATCH_LIMIT": "5"})
    try:
        yield url
    finally:
        assert stop_dashboard(proc) is not None, "the dashboard did not stop within 30 s of SIGTERM"


@pytest.mark.timeout(180)
def test_a_start_over_the_watch_limit_is_a_clear_message_in_the_sidebar(full_url, page):
    page.goto(full_url)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("5 watched", exact=False)).to_be_visible(timeout=60_000)
    sidebar.get_by_label("Start symbol").fill("NVDA")
    sidebar.get_by_role("button", name="Start").click()
    expect(sidebar.get_by_text("feed.watch_limit is 5", exact=False)).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(sidebar.get_by_text("5 watched", exact=False)).to_be_visible()

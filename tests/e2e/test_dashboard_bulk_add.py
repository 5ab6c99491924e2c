"""An operator pastes a list of symbols with a bad entry on the Fleet page, sees the rejection and its
reason, applies, and sees the symbols watched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded default (its five configured symbols), on its own so the counts are this test's."""
    proc, url = start_dashboard(tmp_path_factory.mktemp("bulk-add"))
    try:
        yield url
    finally:
        stop_dashboard(proc)


def _open_fleet(url: str, page: Page, watched: str = "watched") -> Locator:
    """The Fleet page, reached from the navigation; returns the sidebar."""
    page.goto(url)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text(watched, exact=False).first).to_be_visible(timeout=60_000)
    page.get_by_role("link", name="Fleet").click()
    expect(page.get_by_role("heading", name="Add symbols")).to_be_visible(timeout=60_000)
    return sidebar


@pytest.mark.timeout(180)
def test_a_pasted_list_is_previewed_with_its_rejection_then_applied_and_watched(url, page):
    sidebar = _open_fleet(url, page, "5 watched")
    symbols = page.get_by_label("Symbols to add")
    symbols.fill("nvda, AMZN\nÄPPL aapl")
    symbols.press("Control+Enter")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("2 to start: NVDA, AMZN")).to_be_visible(timeout=15_000)
    expect(page.get_by_text("1 entries rejected", exact=False)).to_be_visible()
    expect(page.get_by_text("wanted already (nothing to do): AAPL", exact=False)).to_be_visible()
    rejections = page.get_by_test_id("stDataFrame").filter(has_text="reason")
    expect(rejections).to_contain_text("ÄPPL")
    expect(rejections).to_contain_text("invalid symbol")
    page.get_by_role("button", name="Start 2 symbols now").click()
    expect(page.get_by_text("Started 2 symbols: NVDA, AMZN")).to_be_visible(timeout=30_000)
    expect(sidebar.get_by_text("7 watched", exact=False)).to_be_visible(timeout=15_000)
    instances = page.get_by_test_id("stDataFrame").first
    expect(instances).to_contain_text("7", timeout=15_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)


@pytest.mark.timeout(180)
def test_a_staged_rollout_shows_its_progress_and_why_it_waits(url, page):
    """ZZZZ is outside the embedded simulator's universe: stage 2 waits for it, and the page says so."""
    _open_fleet(url, page)
    symbols = page.get_by_label("Symbols to add")
    symbols.fill("META JPM DIS ZZZZ")
    symbols.press("Control+Enter")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("4 to start: META, JPM, DIS, ZZZZ")).to_be_visible(timeout=15_000)
    stages = page.get_by_label("Stages (symbols started after each)")
    stages.fill("2, 4")
    stages.press("Enter")
    page.get_by_role("button", name="Roll out in stages").click()
    expect(page.get_by_role("heading", name="Staged rollout")).to_be_visible(timeout=15_000)
    waiting = page.get_by_test_id("stAlertContentWarning").filter(has_text="Waiting:")
    expect(waiting).to_contain_text("ZZZZ", timeout=60_000)  # stage 1 (META, JPM) healthy, stage 2 holds
    started = page.get_by_test_id("stMetric").filter(has_text="Symbols started").get_by_test_id("stMetricValue")
    expect(started).to_have_text("4 of 4")
    page.get_by_role("button", name="Cancel rollout").click()
    expect(page.get_by_text("Cancelled: nothing more is started", exact=False)).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)


@pytest.mark.timeout(180)
def test_an_uploaded_csv_gives_its_symbol_column_to_the_preview(url, page):
    _open_fleet(url, page)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(files=[{
        "name": "portfolio.csv", "mimeType": "text/csv",
        "buffer": "name,symbol,weight\nIntel,intc,0.2\nBroken,BAD\u00e9,0.1\nPepsi,PEP,0.3\n".encode()}])
    # The page says when its run has the file: a click before that previewed an empty list under load.
    expect(page.get_by_text("portfolio.csv: 65 bytes received")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=30_000)
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("2 to start: INTC, PEP")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("stDataFrame").filter(has_text="reason")).to_contain_text("BADé")
    expect(page.get_by_test_id("stException")).to_have_count(0)

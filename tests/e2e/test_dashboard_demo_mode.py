"""Demo mode needs loopback: `streamlit run app.py` bound to 0.0.0.0 without operators refuses to run (no
engine, a clear message) unless dashboard.allow_demo; and the toolbar has no Deploy button."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser


@pytest.mark.timeout(120)
def test_bound_to_every_interface_without_operators_it_refuses_with_the_reason(page, tmp_path):
    proc, url = start_dashboard(tmp_path, address="0.0.0.0")
    try:
        page.goto(url)
        error = page.get_by_test_id("stAlertContentError")
        expect(error).to_contain_text("Refusing to run in demo mode", timeout=60_000)
        expect(error).to_contain_text("address 0.0.0.0")
        expect(error).to_contain_text("python -m dashboard.users add NAME --role ROLE")
        expect(page.get_by_test_id("stSidebar").get_by_role("button")).to_have_count(0)
    finally:
        stop_dashboard(proc)
    log = (tmp_path / "streamlit.log").read_text()
    assert "dashboard refused to run in demo mode" in log
    assert "engine started" not in log and not (tmp_path / "chdb").exists()  # no pipeline was started


@pytest.mark.timeout(120)
def test_allow_demo_runs_it_on_every_interface_and_the_toolbar_has_no_deploy_button(page, tmp_path):
    proc, url = start_dashboard(tmp_path, {"TICKOPS_DASHBOARD__ALLOW_DEMO": "true"}, address="0.0.0.0")
    try:
        page.goto(url)
        expect(page.get_by_test_id("stSidebar")).to_contain_text("Demo mode", timeout=60_000)
        expect(page.get_by_test_id("stToolbar")).to_be_visible()
        expect(page.get_by_test_id("stAppDeployButton")).to_have_count(0)
        expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
    finally:
        stop_dashboard(proc)
    assert "engine started" in (tmp_path / "streamlit.log").read_text()

"""Streamlit's AppTest runs the dashboard in-process, with a real engine behind it
(simulator feed, in-process bus, chDB): every page renders and the sidebar acts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import unique_name

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGES = ["pages/overview.py", "pages/live_feeds.py", "pages/fleet.py", "pages/alerts.py", "pages/latency.py",
         "pages/host_health.py", "pages/data_integrity.py", "pages/audit_log.py", "pages/logs.py"]


@contextmanager
def listening_on(address: str | None) -> Iterator[None]:
    """Streamlit's server.address for AppTest runs (demo mode runs only on loopback), restored afterwards."""
    from streamlit import config as streamlit_config

    previous = streamlit_config.get_option("server.address")
    streamlit_config.set_option("server.address", address)
    try:
        yield
    finally:
        streamlit_config.set_option("server.address", previous)


@pytest.fixture
def dashboard_env(monkeypatch, data_dir):
    """A fresh engine per test: own database, no metrics port; stopped afterwards. Streamlit listens on
    loopback, as `make run` has it."""
    monkeypatch.setenv("TICKOPS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TICKOPS_INSTANCE_ID", unique_name("app"))
    monkeypatch.setenv("TICKOPS_STORAGE__DATABASE", unique_name("app"))
    monkeypatch.setenv("TICKOPS_MONITORING__ENABLED", "false")
    monkeypatch.setenv("TICKOPS_FEED__SYMBOLS", '["AAPL","MSFT"]')
    st.cache_resource.clear()
    with listening_on("127.0.0.1"):
        yield
    from dashboard import resources

    try:
        resources.engine().stop()
    except Exception:  # noqa: BLE001 - a test whose config was invalid never built one
        pass
    st.cache_resource.clear()


def _run(page: str | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    if page:
        app.switch_page(page).run()
    return app


@pytest.mark.timeout(180)
def test_every_page_renders_without_exceptions(dashboard_env):
    for page in PAGES:
        app = _run(page)
        assert not app.exception, (page, app.exception)
        assert app.title, page


@pytest.mark.timeout(120)
def test_sidebar_offers_symbol_controls_in_demo_mode(dashboard_env):
    app = _run()
    assert [b.label for b in app.sidebar.button] == ["Start", "Stop"]
    assert app.sidebar.text_input[0].label == "Start symbol"
    assert "Demo mode" in app.sidebar.info[0].value


@pytest.mark.timeout(60)
def test_bad_configuration_is_shown_as_an_error_not_a_crash(dashboard_env, monkeypatch):
    monkeypatch.setenv("TICKOPS_FEED__LEVEL1_PORT", "99999")
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception
    assert "feed.level1_port" in app.error[0].value


@pytest.mark.timeout(120)
def test_alerts_page_shows_notification_channels_and_their_counts(dashboard_env, monkeypatch):
    app = _run("pages/alerts.py")
    assert any("No notification channel configured" in c.value for c in app.caption)
    from dashboard import resources

    resources.engine().stop()  # then a new engine with a webhook configured (nothing listens; no alert is sent)
    st.cache_resource.clear()
    monkeypatch.setenv("TICKOPS_NOTIFY__WEBHOOK_URL", "http://127.0.0.1:9/tickops")
    app = _run("pages/alerts.py")
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table["channel"]) == ["webhook"] and list(table["sent"]) == [0]


@pytest.mark.timeout(240)
def test_every_page_renders_while_clickhouse_is_down_and_the_app_shows_a_storage_banner(dashboard_env, monkeypatch):
    """A ClickHouse server nobody answers on: the engine starts anyway and no page raises.

    AppTest runs the entry script (banner, sidebar) only for the default page; a switched-to page
    runs alone. tests/e2e/test_dashboard_storage_down.py sees the banner on every page in a browser.
    """
    from tests.ports import free_port

    monkeypatch.setenv("TICKOPS_STORAGE__BACKEND", "server")
    monkeypatch.setenv("TICKOPS_STORAGE__PORT", str(free_port()))
    app = _run()
    assert not app.exception, app.exception
    assert app.error[0].value.startswith("Storage unavailable since "), [e.value for e in app.error]
    assert "2 watched" in app.sidebar.caption[0].value  # the configured symbols, served from memory
    for page in PAGES:
        app = _run(page)
        assert not app.exception, (page, app.exception)
        assert app.title, page
    for page in ("pages/alerts.py", "pages/audit_log.py"):
        app = _run(page)
        assert any("storage unavailable" in w.value for w in app.warning), page


@pytest.mark.timeout(120)
def test_fleet_page_shows_the_embedded_process_as_the_one_instance_with_its_capacity_and_its_writer(dashboard_env):
    from dashboard import resources

    app = _run("pages/fleet.py")
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table["instance"]) == [resources.settings().instance_id]
    assert list(table["wanted"]) == [2]
    assert any(m.label == "Symbols wanted" and m.value == "2" for m in app.metric)
    assert any("Embedded" in c.value for c in app.caption)
    [writers] = [d.value for d in app.dataframe if "writer" in d.value.columns]
    [(writer, runs, health)] = [(r["writer"], r["runs"], r["health"]) for r in writers.to_dict("records")]
    assert (writer, runs, health) == (resources.settings().instance_id, "in its collector", "ok")


@pytest.mark.timeout(120)
def test_data_integrity_page_shows_the_catch_up_progress_of_newly_watched_symbols(dashboard_env):
    app = _run("pages/data_integrity.py")
    assert not app.exception
    assert "Catch-up of newly watched symbols" in [h.value for h in app.subheader]
    (bar,) = app.get("progress")
    assert "/ 2 symbols" in bar.proto.text and "trades recovered" in bar.proto.text

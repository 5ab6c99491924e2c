"""Streamlit's AppTest renders the dashboard script in-process without a browser."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import unique_name

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(autouse=True)
def _fresh_resources():
    """Settings and store are cached per process; each test reads its own environment."""
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


@pytest.mark.timeout(120)
def test_app_renders_modes_and_storage_without_errors(monkeypatch, data_dir):
    monkeypatch.setenv("TICKOPS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TICKOPS_STORAGE__DATABASE", unique_name("app"))
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception
    assert [m.value for m in app.metric] == ["simulator", "memory", "chdb"]
    assert any("ClickHouse 26" in md.value for md in app.markdown)


@pytest.mark.timeout(60)
def test_bad_configuration_is_shown_as_an_error_not_a_crash(monkeypatch, data_dir):
    monkeypatch.setenv("TICKOPS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TICKOPS_FEED__LEVEL1_PORT", "99999")
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception
    assert "feed.level1_port" in app.error[0].value

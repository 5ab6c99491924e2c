"""The Overview shows availability per component once the engine has sampled its health, and the backup mirror's
state in the pipeline table (AppTest, real engine)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.integration.pipeline import wait_until
from tests.unit.test_app_render import APP, dashboard_env  # noqa: F401 - the per-test engine fixture


@pytest.mark.timeout(120)
def test_the_overview_shows_availability_the_budget_left_and_the_backup_mirror(dashboard_env, monkeypatch, tmp_path):
    monkeypatch.setenv("TICKOPS_BACKUP__MIRROR_DIRECTORY", str(tmp_path))
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    from dashboard import resources

    engine = resources.engine()
    wait_until(lambda: engine.status().uptime is not None, 30, "the first uptime sample")
    app.switch_page("pages/overview.py").run()
    assert not app.exception
    assert any(h.value.startswith("Availability (objective 99.9% of minutes)") for h in app.subheader)
    table = next(frame.value for frame in app.dataframe if "30 d budget left" in frame.value.columns)
    assert list(table["component"]) == ["feed", "bus", "storage", "writer"]
    assert all(cell.endswith("of 43.2 min") for cell in table["30 d budget left"])
    pipeline = next(frame.value for frame in app.dataframe if "stage" in frame.value.columns)
    assert "backup mirror" in list(pipeline["stage"])

"""The Data integrity page shows the end-of-day verdicts stored for recent trading days (AppTest, real
engine and chDB behind it)."""

from __future__ import annotations

import time
from datetime import date

import pytest

from storage.completeness import DayCheck, save_checks
from tests.unit.test_app_render import _run, dashboard_env  # noqa: F401 - the fixture is used by name

pytestmark = pytest.mark.timeout(180)


def _check(day: date, symbol: str, verdict: str, stored: int, feed: int, recovered: int = 0) -> DayCheck:
    return DayCheck(day=day, symbol=symbol, stored_volume=stored, stored_trades=stored // 100, feed_volume=feed,
                    bar_volume=feed, history_trades=-1 if stored == feed else 50, trades_recovered=recovered,
                    volume_recovered=recovered * 100, verdict=verdict,  # type: ignore[arg-type]
                    detail=f"stored {stored:,}; feed Total Volume {feed:,}", checked_by="test", checked_ns=time.time_ns())


def test_the_page_shows_each_checked_day_and_the_symbols_not_complete(dashboard_env):  # noqa: F811
    app = _run("pages/data_integrity.py")
    assert not app.exception, app.exception
    assert any("No trading day checked yet" in info.value for info in app.info)
    from dashboard import resources

    monday, tuesday = date(2021, 3, 1), date(2021, 3, 2)
    save_checks(resources.engine().store, [
        _check(monday, "AAPL", "complete", 5_000, 5_000, recovered=3), _check(monday, "MSFT", "complete", 900, 900),
        _check(tuesday, "AAPL", "complete", 7_000, 7_000), _check(tuesday, "MSFT", "incomplete", 800, 1_000),
    ])
    app = _run("pages/data_integrity.py")
    assert not app.exception, app.exception
    assert "End-of-day completeness" in [h.value for h in app.subheader]
    assert app.get("plotly_chart"), "no completeness plot"
    days = app.dataframe[-2].value
    assert list(days["day"]) == ["2021-03-02", "2021-03-01"]
    assert list(days["complete"]) == [1, 2] and list(days["incomplete"]) == ["MSFT", ""]
    assert list(days["trades recovered"]) == [0, 3]
    assert any("1 symbol-days not complete" in e.value for e in app.error)
    failed = app.dataframe[-1].value
    assert list(zip(failed["day"], failed["symbol"], failed["verdict"], failed["feed volume"])) == [
        ("2021-03-02", "MSFT", "incomplete", 1_000)]

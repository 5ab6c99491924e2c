"""The watch limit: stops apply first, an over-limit start is refused clearly, and the symbols job
never fails on the desired state (which another process or an older limit may have made larger)."""

from __future__ import annotations

import pytest

from alerts.rules import evaluate_rules
from collectors.iqfeed.protocol import SymbolLimitReached
from config import load_settings
from runtime.engine import Engine
from tests.integration.pipeline import wait_until

pytestmark = pytest.mark.timeout(120)


def _engine(store, tmp_path, symbols: list[str]) -> Engine:
    settings = load_settings(data_dir=tmp_path, feed={"symbols": symbols, "watch_limit": 3, "simulator_rate": 100},
                             storage={"database": store.database}, monitoring={"enabled": False})
    return Engine(settings, store=store).start()


def test_a_start_over_the_limit_is_refused_with_a_clear_message_and_nothing_is_stored(chdb_store, tmp_path):
    engine = _engine(chdb_store, tmp_path, ["AAPL", "MSFT", "SPY"])
    try:
        with pytest.raises(SymbolLimitReached, match="watch_limit is 3"):
            engine.start_symbol("QQQ", by="ops")
        assert "QQQ" not in {s.symbol for s in engine.symbols.all()}
        engine.stop_symbol("SPY", by="ops")
        assert engine.start_symbol("QQQ", by="ops").level1  # room again once one is stopped
    finally:
        engine.stop()


def test_a_desired_state_over_the_limit_watches_up_to_it_reports_the_rest_and_the_job_keeps_working(
        chdb_store, tmp_path):
    engine = _engine(chdb_store, tmp_path, ["AAPL", "MSFT", "SPY"])
    try:
        wait_until(lambda: len(engine.feed.watched()) == 3, 30, "the three configured symbols watched")
        for symbol in ("QQQ", "TSLA"):  # as another process (or a larger limit before a restart) stored them
            engine.symbols.set(symbol, level1=True, by="elsewhere")
        engine.jobs.run_now("symbols")
        engine.jobs.run_now("symbols")
        assert len(engine.feed.watched()) == 3
        assert set(engine.status().unwatched) == {"AAPL", "MSFT", "SPY", "QQQ", "TSLA"} - engine.feed.watched()
        assert len(engine.status().unwatched) == 2
        symbols_job = next(j for j in engine.jobs.status() if j.name == "symbols")
        assert symbols_job.consecutive_failures == 0, symbols_job.last_error
        # A stop applies even while starts are refused: it was the pass that failed before.
        watched = sorted(engine.feed.watched())
        engine.stop_symbol(watched[0], by="ops")
        assert watched[0] not in engine.feed.watched()
        assert len(engine.feed.watched()) == 3 and len(engine.status().unwatched) == 1
        assert "symbols_over_limit" in {f.rule for f in evaluate_rules(engine.observe(), engine.settings.alerts)}
    finally:
        engine.stop()

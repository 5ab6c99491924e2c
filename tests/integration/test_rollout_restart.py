"""A staged rollout outlives the process the dashboard holds: the embedded engine (simulator over TCP,
in-process bus, chDB; or a private ClickHouse server that goes down) is stopped mid-rollout and a new one
on the same data directory and database goes on with it, starting each symbol once.

ZZZZ is outside the first engine's simulator universe, so stage 2 (GOOGL, ZZZZ) waits for sure when the
first engine stops; the second one's simulator knows it (feed.symbols joins the universe)."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import streamlit as st

from storage.audit_trail import AuditFilter
from tests.integration.pipeline import wait_until
from tests.integration.test_delivery_faults import private_clickhouse  # noqa: F401 - fixture
from tests.integration.test_storage_outage import outage_settings
from tests.unit.test_app_render import _run, dashboard_env  # noqa: F401 - the fixture is used by name

SYMBOLS = ["NVDA", "AMZN", "GOOGL", "ZZZZ", "META", "TSLA"]


def _audited(engine, action: str) -> list[str]:
    return [r.subject for r in engine.alert_store.audit_log(500, AuditFilter(actions=(action,)))]


@pytest.mark.timeout(240)
def test_a_rollout_stopped_mid_stage_by_a_restart_goes_on_to_done_and_starts_each_symbol_once(
        dashboard_env, monkeypatch):
    from dashboard import resources
    from runtime.rollout import RolloutState

    first = resources.engine()
    resources.rollout().begin(SYMBOLS, (2, 4, 6), depth=False, critical=False, by="ops")
    wait_until(lambda: (p := resources.rollout().progress()) and p.stage == 2 and p.reasons, 60,
               "stage 1 healthy, stage 2 waiting for ZZZZ")
    assert resources.rollout().progress().state is RolloutState.WAITING
    stopped_ns = time.time_ns()
    first.stop()
    st.cache_resource.clear()  # the dashboard process restarts: a new engine, the same database

    monkeypatch.setenv("TICKOPS_FEED__SYMBOLS", '["AAPL","MSFT","ZZZZ"]')
    second = resources.engine()
    assert second is not first
    runner = resources.rollout()
    wait_until(lambda: (p := runner.progress()) is not None and p.state is RolloutState.DONE, 90,
               "the resumed rollout done")
    progress = runner.progress()
    assert progress.started == 6 and progress.resumed_ns is not None and progress.resumed_ns > stopped_ns
    assert {s.symbol for s in second.desired_symbols() if s.level1} >= set(SYMBOLS)
    wait_until(lambda: _audited(second, "rollout_resumed"), 30, "the resume audited")
    assert _audited(second, "rollout_resumed") == ["stage 2"]
    starts = Counter(s for s in _audited(second, "start_symbol") if s in SYMBOLS)
    assert starts == Counter(SYMBOLS), starts  # none started twice, none left out
    assert sorted(_audited(second, "rollout_stage_healthy")) == ["stage 1", "stage 2", "stage 3"]

    app = _run("pages/fleet.py")
    assert not app.exception, app.exception
    assert any("resumed after restart at " in c.value for c in app.caption), [c.value for c in app.caption]
    assert any(s.value.startswith("Done: all 6 symbols started") for s in app.success)


@pytest.mark.timeout(300)
def test_a_pause_while_storage_is_down_survives_a_stop_and_the_next_process_resumes_the_rollout_paused(
        private_clickhouse, tmp_path):  # noqa: F811 - fixture
    from runtime.engine import Engine
    from runtime.rollout import RolloutConflict, RolloutState

    settings = outage_settings(tmp_path, private_clickhouse)
    first = Engine(settings).start()
    first.serve_rollouts()  # as the dashboard's process does (dashboard/resources.py)
    try:
        first.rollout.begin(SYMBOLS, (2, 4, 6), depth=False, critical=False, by="ops")
        wait_until(lambda: (p := first.rollout.progress()).stage == 2 and p.reasons, 60, "stage 2 waiting for ZZZZ")
        private_clickhouse.down()
        wait_until(lambda: not first.storage.ready, 30, "the engine to see storage down")
        pending = first.storage.writes.pending
        first.rollout.pause("ops")  # an operator action: it never waits for storage
        assert first.storage.writes.pending > pending  # the rollout's record and the audit entry, held
    finally:
        first.stop()  # storage still down: the held writes stay in the write-behind journal (data_dir)

    # the next process starts while storage is down too: it cannot know the rollout yet
    second = Engine(settings.model_copy(update={
        "feed": settings.feed.model_copy(update={"symbols": ["AAPL", "MSFT", "ZZZZ"]})})).start()
    second.serve_rollouts()
    try:
        assert second.rollout.progress() is None
        with pytest.raises(RolloutConflict, match="storage has not answered since this process started"):
            second.rollout.begin(["INTC"], (1,), depth=False, critical=False, by="ops")
        private_clickhouse.up()
        wait_until(lambda: second.rollout.progress() is not None, 60, "the stored rollout taken up")
        time.sleep(3)  # a few rollout steps: none may start or advance anything
        progress = second.rollout.progress()
        assert progress.state is RolloutState.PAUSED and progress.stage == 2 and progress.started == 4
        assert progress.resumed_ns is not None
        second.rollout.resume("ops")
        wait_until(lambda: second.rollout.progress().state is RolloutState.DONE, 90, "the rollout done once resumed")
        wait_until(lambda: _audited(second, "rollout_resume"), 30, "the resume audited")
        starts = Counter(s for s in _audited(second, "start_symbol") if s in SYMBOLS)
        assert starts == Counter(SYMBOLS), starts
        assert _audited(second, "rollout_pause") == ["stage 2"]
    finally:
        second.stop()

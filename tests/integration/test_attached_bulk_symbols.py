"""Bulk add and a staged rollout from a dashboard attached to a collector fleet (``dashboard.attach = true``,
Kafka bus): the starts go through the attached runtime's operator action (assignment topic, storage, audit),
and a stage is judged by its events in storage and the alerts the collectors stored. AppTest runs app.py
in-process against the real ClickHouse server and Kafka broker."""

from __future__ import annotations

import time

import pytest

from alerts.lifecycle import Alert
from alerts.store import AlertStore
from events import Trade
from storage.rows import to_batches
from tests.conftest import unique_name
from tests.integration._feed_support import wait_until
from tests.integration.test_attached_dashboard import attached_env, run, writer_endpoint  # noqa: F401 - fixtures
from tests.unit.test_app_bulk_symbols import _preview

pytestmark = pytest.mark.timeout(180)
FLEET = "pages/fleet.py"


def _stored_trade(store, symbol: str) -> None:
    """As a collector's writer stores a trade it received now."""
    now = time.time_ns()
    trade = Trade(symbol=symbol, price=1.0, size=1, ts_ns=now, source="collector-1@1", seq=1, recv_ns=now)
    for batch in to_batches([trade], stored_ns=now).values():
        store.insert_columns(batch.table, batch.columns, batch.data)


def test_attached_bulk_add_and_rollout_act_through_storage_and_judge_by_stored_events(
        attached_env, server_store, monkeypatch):
    monkeypatch.setenv("TICKOPS_KAFKA__TOPIC_PREFIX", unique_name("bulk"))  # an assignment topic of its own
    from dashboard import resources
    from runtime.rollout import RolloutState

    app = _preview(run(FLEET), "NVDA amzn NVDA")
    assert not app.exception, app.exception
    app = app.button(key="bulk_apply").click().run()
    assert any("Started 2 symbols: NVDA, AMZN" in s.value for s in app.success), [e.value for e in app.error]
    stored = server_store.query(f"SELECT symbol FROM {server_store.table('symbols')} FINAL WHERE level1 = 1")
    assert {"NVDA", "AMZN"} <= {row[0] for row in stored}
    view, runner = resources.engine(), resources.rollout()
    assert {"NVDA", "AMZN"} <= {s.symbol for s in view.desired_symbols() if s.level1}  # the assignment topic's

    app = _preview(run(FLEET), "GOOGL META")
    app.text_input(key="rollout_stages").input("1, 2").run()
    app.button(key="rollout_begin").click().run()
    assert wait_until(lambda: (p := runner.progress()) is not None and p.reasons, 15), runner.progress()
    assert runner.progress().reasons == ("1 of 1 symbols without data since their start: GOOGL",)
    _stored_trade(server_store, "GOOGL")
    assert wait_until(lambda: runner.progress().started == 2, 15), runner.progress()
    now = time.time_ns()
    AlertStore(server_store).save([Alert("iqconnect_failing", "iqconnect", "critical", "firing",
                                         "IQConnect exited with code 3", now, now, fired_ns=now)])
    assert wait_until(lambda: view.alert_book.active(), 15)  # the attached runtime reads them every 2 s
    _stored_trade(server_store, "META")
    assert wait_until(lambda: runner.progress().reasons == ("critical alerts firing: iqconnect_failing iqconnect",),
                      15), runner.progress()
    assert runner.progress().state is RolloutState.WAITING
    AlertStore(server_store).save([Alert("iqconnect_failing", "iqconnect", "critical", "resolved",
                                         "IQConnect runs again", now, time.time_ns(), fired_ns=now,
                                         resolved_ns=time.time_ns())])
    assert wait_until(lambda: runner.progress().state is RolloutState.DONE, 15), runner.progress()
    actions = [(e.action, e.subject) for e in AlertStore(server_store).audit_log()]
    assert {("start_symbol", s) for s in ("NVDA", "AMZN", "GOOGL", "META")} <= set(actions)
    assert ("rollout_stage_healthy", "stage 1") in actions

"""The Fleet page's bulk add and staged rollout, in AppTest with a real engine behind it (simulator feed,
in-process bus, chDB): the preview names every rejection, applying starts and audits, and a rollout
advances a stage only once it is healthy."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from storage.audit_trail import AuditFilter
from tests.unit.test_app_render import _run, dashboard_env  # noqa: F401 - the fixture is used by name

FLEET = "pages/fleet.py"


def _eventually(what: str, check: Callable[[], object], timeout_s: float = 60.0) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.2)


def _audited(engine, action: str) -> list[str]:
    return [r.subject for r in engine.alert_store.audit_log(200, AuditFilter(actions=(action,)))]


def _preview(app, text: str):
    app.text_area(key="bulk_text").input(text).run()
    return app.button(key="bulk_preview_button").click().run()


@pytest.mark.timeout(180)
def test_the_preview_shows_each_rejected_entry_with_its_reason_and_what_is_wanted_already(dashboard_env):
    app = _preview(_run(FLEET), "nvda, amzn\nBAD\x01SYM aapl " + "X" * 31 + " NVDA")
    assert not app.exception, app.exception
    (rejections,) = [d.value for d in app.dataframe if "reason" in d.value.columns]
    assert list(rejections["entry"]) == ["BAD\x01SYM", "X" * 31, "NVDA"]
    reasons = list(rejections["reason"])
    assert reasons[0].startswith("invalid symbol: ") and reasons[1].startswith("too long: 31 characters")
    assert reasons[2] == "duplicate of entry 1"
    assert any("2 to start" in m.value and "NVDA, AMZN" in m.value for m in app.markdown)
    assert any("wanted already" in c.value and "AAPL" in c.value for c in app.caption)
    assert "3 entries rejected" in app.warning[0].value
    assert [b.label for b in app.button if b.key == "bulk_apply"] == ["Start 2 symbols now"]


@pytest.mark.timeout(180)
def test_applying_starts_the_accepted_symbols_watches_and_audits_each(dashboard_env):
    from dashboard import resources

    app = _preview(_run(FLEET), "NVDA AMZN BAD\x01SYM")
    app = app.button(key="bulk_apply").click().run()
    assert not app.exception, app.exception
    assert any("Started 2 symbols: NVDA, AMZN" in s.value for s in app.success)
    engine = resources.engine()
    assert {"NVDA", "AMZN"} <= {s.symbol for s in engine.desired_symbols() if s.level1}
    _eventually("NVDA and AMZN watched", lambda: {"NVDA", "AMZN"} <= engine.status().watched)
    _eventually("both starts audited", lambda: {"NVDA", "AMZN"} <= set(_audited(engine, "start_symbol")))


@pytest.mark.timeout(180)
def test_a_start_over_the_watch_limit_reports_the_rest_not_started_and_never_crashes(dashboard_env, monkeypatch):
    monkeypatch.setenv("TICKOPS_FEED__WATCH_LIMIT", "3")
    app = _preview(_run(FLEET), "NVDA AMZN GOOGL")
    assert any(w.value.startswith("Only 1 more symbols fit: 2 are wanted and the watch limits add up to 3")
               for w in app.warning), [w.value for w in app.warning]
    app = app.button(key="bulk_apply").click().run()
    assert not app.exception, app.exception
    assert any("Started 1 symbols: NVDA" in s.value for s in app.success)
    assert "2 symbols not started — limit: cannot start AMZN" in app.error[0].value
    assert "feed.watch_limit is 3" in app.error[0].value


@pytest.mark.timeout(240)
def test_a_rollout_advances_a_stage_once_healthy_and_holds_on_a_symbol_without_data(dashboard_env):
    """ZZZZ is outside the simulator's universe: the feed refuses it, so stage 2 never becomes healthy."""
    from dashboard import resources
    from runtime.rollout import RolloutState

    app = _preview(_run(FLEET), "NVDA AMZN GOOGL ZZZZ")
    app.text_input(key="rollout_stages").input("2, 4").run()
    app = app.button(key="rollout_begin").click().run()
    assert not app.exception, app.exception
    engine, runner = resources.engine(), resources.rollout()
    _eventually("stage 1 healthy, stage 2 started", lambda: (p := runner.progress()) and p.stage == 2 and p.started == 4)
    assert _eventually("stage 1 advance audited", lambda: _audited(engine, "rollout_stage_healthy")) == ["stage 1"]
    _eventually("stage 2 judged", lambda: runner.progress().reasons)
    time.sleep(3)  # GOOGL's data comes in meanwhile; ZZZZ's never does
    progress = runner.progress()
    assert progress.state is RolloutState.WAITING and progress.stage == 2
    assert progress.stage_healthy == 1 and progress.stage_size == 2
    assert progress.reasons[0] == "1 of 2 symbols without data since their start: ZZZZ"
    assert progress.reasons[1].startswith("not watched: ZZZZ")
    app = _run(FLEET)
    assert not app.exception, app.exception
    assert "Staged rollout" in [h.value for h in app.subheader]
    assert any(m.label == "Symbols started" and m.value == "4 of 4" for m in app.metric)
    assert any(w.value.startswith("Waiting:\n- ") and "ZZZZ" in w.value for w in app.warning)
    app = _preview(app, "INTC")  # a second rollout while this one waits is refused, saying why
    app = app.button(key="rollout_begin").click().run()
    assert any("a rollout by local is waiting: cancel it before starting another" in e.value for e in app.error)
    app = app.button(key="rollout_pause").click().run()
    assert runner.progress().state is RolloutState.PAUSED
    assert any(i.value.startswith("Paused: nothing is started or advanced") for i in app.info)
    app = app.button(key="rollout_resume").click().run()
    assert runner.progress().state is RolloutState.WAITING
    app = app.button(key="rollout_cancel").click().run()
    assert runner.progress().state is RolloutState.CANCELLED
    assert any(i.value.startswith("Cancelled: nothing more is started") and "ZZZZ" in i.value for i in app.info)
    _eventually("begin and cancel audited", lambda: _audited(engine, "rollout_cancel"))

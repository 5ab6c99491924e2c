"""With feed.mode = "iqconnect" the engine launches IQConnect and supervises it. The simulator process stands
in for IQConnect.exe (its launch arguments, --exit-after for a crash, --wrong-login for a login DTN refuses)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import msgspec
import pytest

from alerts.lifecycle import Alert
from config import load_settings
from runtime.engine import Engine
from runtime.metrics import start_monitoring
from tests.integration._feed_support import wait_until
from tests.integration.test_iqconnect_supervisor import stand_in_settings

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


def iqconnect_engine(tmp_path: Path, server_store, *flags: str, connect_timeout_s: float = 8.0) -> Engine:
    feed = stand_in_settings("--symbols", "AAPL,MSFT", *flags, connect_timeout_s=connect_timeout_s).model_dump()
    feed.update(symbols=["AAPL", "MSFT"], restart_initial_s=0.5, restart_max_s=1.0)
    settings = load_settings(data_dir=tmp_path, feed=feed, storage={"backend": "server",
                                                                   "database": server_store.database})
    return Engine(settings, store=server_store)


def record_alert_changes(engine: Engine) -> list[Alert]:
    """Every alert change the engine's alerts job produces (fired, resolved...), in order."""
    changes: list[Alert] = []
    evaluate = engine.evaluate_alerts

    def recording() -> list[Alert]:
        changed = evaluate()
        changes.extend(changed)
        return changed

    engine.evaluate_alerts = recording  # before start(): the job is added with this attribute
    return changes


def healthz(port: int) -> dict:
    """The verdict, also when it is down (503: Level 1 is down while IQConnect is being restarted)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return msgspec.json.decode(response.read())
    except urllib.error.HTTPError as exc:
        assert exc.code == 503
        return msgspec.json.decode(exc.read())


def test_a_crashed_iqconnect_is_restarted_by_the_engine_alerts_and_data_flows_again(
        tmp_path, server_store, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the stand-in is `python -m collectors.iqfeed.simulator`
    engine = iqconnect_engine(tmp_path, server_store, "--exit-after", "4")
    changes = record_alert_changes(engine)
    engine.start()
    monitoring = start_monitoring(engine.status, "127.0.0.1", 0)
    try:
        assert engine.iqconnect is not None, "mode iqconnect: the engine launches IQConnect"
        assert wait_until(lambda: engine.status().iqconnect.dtn_connected is True and engine.status().ingested > 0,
                          30), engine.status().iqconnect
        first_pid = engine.status().iqconnect.pid
        assert wait_until(lambda: engine.status().iqconnect.restarts >= 1, 30), engine.status().iqconnect
        assert engine.status().iqconnect.last_exit_code == 3
        assert wait_until(lambda: any(a.rule == "iqconnect_failing" and a.state == "firing" for a in changes), 10)
        fired = next(a for a in changes if a.rule == "iqconnect_failing")
        assert "IQConnect exited with code 3" in fired.summary and fired.severity == "critical"
        ingested_at_restart = engine.status().ingested
        assert wait_until(lambda: engine.status().iqconnect.pid != first_pid
                          and engine.status().iqconnect.dtn_connected is True, 30), engine.status().iqconnect
        assert wait_until(lambda: engine.status().ingested > ingested_at_restart + 20, 20), "data after the restart"
        assert wait_until(lambda: any(a.rule == "iqconnect_failing" and a.state == "resolved" for a in changes), 10)
        details = healthz(monitoring.port)["details"]["iqconnect"]
        assert details["restarts"] >= 1 and details["last_exit_code"] == 3
    finally:
        monitoring.stop()
        engine.stop()
    assert not engine.iqconnect.state.running, "the engine's stop ends IQConnect"


def test_a_login_dtn_refuses_is_reported_as_a_login_problem_alert_and_on_healthz(tmp_path, server_store, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    engine = iqconnect_engine(tmp_path, server_store, "--wrong-login", connect_timeout_s=1.5)
    engine.start()
    monitoring = start_monitoring(engine.status, "127.0.0.1", 0)
    try:
        def login_alert() -> Alert | None:
            return next((a for a in engine.alert_book.active() if a.rule == "iqconnect_failing"), None)

        assert wait_until(lambda: login_alert() is not None and login_alert().state == "firing", 30), \
            engine.status().iqconnect
        assert "login or entitlement problem" in login_alert().summary
        assert "feed.login" in login_alert().summary, "the alert says what to check"
        # The supervisor restarts IQConnect after each failed connect: between two launches the DTN state
        # is unknown (None), so wait for an answer taken while one runs.
        answers = []
        assert wait_until(lambda: answers.append(healthz(monitoring.port)) or
                          answers[-1]["details"]["iqconnect"]["dtn_connected"] is False, 20), answers[-3:]
        answer = answers[-1]
        assert answer["status"] in ("degraded", "down")
        assert any("login or entitlement" in reason for reason in answer["reasons"])
    finally:
        monitoring.stop()
        engine.stop()
    assert not engine.iqconnect.state.running

"""The dashboard attached to processes that run apart (``dashboard.attach = true``): it starts no engine,
shows each process's /healthz and what storage holds, and its operator actions reach storage, where the
collectors take them in. AppTest runs app.py in-process against the real ClickHouse server and a real
writer-process health endpoint (storage/writer_health.py)."""

from __future__ import annotations

import json
import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from alerts.lifecycle import Alert
from alerts.store import AlertStore
from storage.writer_health import WriterProcessState, writer_monitoring
from tests.conftest import CLICKHOUSE_PORT, unique_name
from tests.ports import free_port
from tests.integration._feed_support import wait_until
from tests.unit.test_app_render import APP, listening_on

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def writer_endpoint():
    """A writer process's monitoring endpoint, still waiting for storage (degraded, with the reason)."""
    state = WriterProcessState()
    state.preparing("migrate", "Connection refused")
    server = writer_monitoring(state, "127.0.0.1", 0)
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture
def attached_env(monkeypatch, server_store, data_dir, writer_endpoint):
    nobody = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("TICKOPS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TICKOPS_INSTANCE_ID", unique_name("dash"))
    monkeypatch.setenv("TICKOPS_DASHBOARD__ATTACH", "true")
    monkeypatch.setenv("TICKOPS_DASHBOARD__PROCESS_ENDPOINTS", json.dumps([writer_endpoint, nobody]))
    monkeypatch.setenv("TICKOPS_BUS__KIND", "kafka")
    monkeypatch.setenv("TICKOPS_STORAGE__BACKEND", "server")
    monkeypatch.setenv("TICKOPS_STORAGE__PORT", str(CLICKHOUSE_PORT))
    monkeypatch.setenv("TICKOPS_STORAGE__DATABASE", server_store.database)
    monkeypatch.setenv("TICKOPS_STORAGE__EMBEDDED_WRITER", "false")
    st.cache_resource.clear()
    with listening_on("127.0.0.1"):  # no operators configured: demo mode, which runs on loopback only
        yield {"writer": writer_endpoint, "nobody": nobody}
    from dashboard import resources

    resources.engine().stop()
    st.cache_resource.clear()


def run(page: str | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    if page:
        app.switch_page(page).run()
    return app


def test_attached_dashboard_starts_no_engine_and_shows_each_process_health_and_what_is_stored(attached_env,
                                                                                             server_store):
    from dashboard import resources
    from runtime.attached import AttachedRuntime

    app = run()
    assert not app.exception, app.exception
    view = resources.engine()
    assert isinstance(view, AttachedRuntime) and view.feed is None
    assert wait_until(lambda: all(r.checked_ns for r in view.probes.results()), 15), view.probes.results()
    app.run()
    processes = app.dataframe[0].value
    rows = {row["process"]: row for row in processes.to_dict("records")}
    writer = rows[attached_env["writer"]]
    assert (writer["role"], writer["health"]) == ("writer", "degraded")
    assert "writer not started yet: migrate (Connection refused)" in writer["reasons"]
    assert rows[attached_env["nobody"]]["health"] == "unreachable"
    assert "Connection refused" in rows[attached_env["nobody"]]["reasons"]
    assert any("Not healthy" in e.value for e in app.error)
    assert any("Nothing stored in the last 5 minutes" in w.value for w in app.warning)

    now = time.time_ns()
    server_store.insert_columns(
        "trades", ["symbol", "ts_ns", "price", "size", "conditions", "market_center", "tick_id", "total_volume",
                   "basis", "backfilled", "source", "seq", "recv_ns", "stored_ns", "bus_partition", "bus_offset"],
        [["AAPL"] * 2, [now - 10**9, now], [1.0, 2.0], [1, 2], [[], []], [-1, -1], [-1, -1], [1, 3], ["", ""],
         [0, 0], ["collector-9@1"] * 2, [1, 2], [now, now], [now, now], [0, 0], [0, 1]])
    app.run()
    stored = app.dataframe[1].value.to_dict("records")
    assert [(r["table"], r["source"], r["rows"]) for r in stored] == [("trades", "collector-9@1", 2)]

    for page in ("pages/live_feeds.py", "pages/alerts.py", "pages/host_health.py", "pages/audit_log.py",
                 "pages/logs.py"):
        shown = run(page)
        assert not shown.exception, (page, shown.exception)


def test_attached_operator_actions_go_to_storage_where_collectors_read_them(attached_env, server_store):
    app = run()  # migrates the fresh database
    now = time.time_ns()  # a collector's alert, as its engine stores it
    AlertStore(server_store).save([Alert("iqconnect_failing", "iqconnect", "critical", "firing",
                                         "IQConnect exited with code 3 (restarted 1 times)", now, now, fired_ns=now)])
    assert [b.label for b in app.sidebar.button] == ["Start", "Stop"], "attached, operators act as embedded"
    from dashboard import resources

    view = resources.engine()
    # What the sidebar's Start calls (AppTest drops the entry script's sidebar on a rerun; the browser test in
    # tests/e2e/test_deploy_topology.py clicks it and sees the collector watch the symbol).
    view.start_symbol("nvda", by="local")
    stored = server_store.query(f"SELECT symbol, level1, updated_by FROM {server_store.table('symbols')}")
    assert ("NVDA", 1, "local") in [tuple(row) for row in stored]
    assert wait_until(lambda: [a.rule for a in view.alert_book.active()] == ["iqconnect_failing"], 10)
    alerts = run("pages/alerts.py")
    assert "IQConnect exited with code 3" in " ".join(m.value for m in alerts.markdown)
    alerts.text_input[0].set_value("restarting by hand")
    alerts.button[0].click().run()
    assert not alerts.exception, alerts.exception
    (state, by, note), = server_store.query(
        f"SELECT state, acked_by, ack_note FROM {server_store.table('alerts')} FINAL WHERE rule = 'iqconnect_failing'")
    assert (state, by, note) == ("acknowledged", "local", "restarting by hand")
    actions = [(e.action, e.subject) for e in AlertStore(server_store).audit_log()]
    assert ("start_symbol", "NVDA") in actions and ("acknowledge", "iqconnect_failing/iqconnect") in actions

"""A healthy engine raises no alert: the embedded default (simulator, in-process bus, chDB), run for real.

Before the alert rules judged sliding windows, this run showed ``latency_sla`` firing
within a minute (a p99 since start that counted start-up) and ``memory_growth`` pending
(an RSS slope over the first minute of warm-up).
"""

from __future__ import annotations

import time

import pytest

from config import load_settings
from runtime.engine import Engine
from tests.integration.pipeline import wait_until

RUN_S = 180


@pytest.mark.timeout(RUN_S + 120)
def test_three_minutes_of_the_embedded_default_raise_no_alert(chdb_store, tmp_path):
    settings = load_settings(data_dir=tmp_path, storage={"database": chdb_store.database},
                             monitoring={"enabled": False})
    engine = Engine(settings, store=chdb_store).start()
    raised = []
    try:
        wait_until(lambda: engine.writer is not None and engine.writer.stats().stored > 0, 60, "first rows stored")
        deadline = time.monotonic() + RUN_S
        while time.monotonic() < deadline:
            raised.extend((a.rule, a.subject, a.state, a.summary) for a in engine.alert_book.active())
            time.sleep(1)
        status = engine.status()
        live = engine.producer.latency.window(settings.alerts.latency_window_s)
        fresh = engine.writer.latency.window(settings.alerts.latency_window_s)
    finally:
        engine.stop()
    assert status.ingested > 0 and status.writer.stored > 0
    # The rules had something to judge: both latency windows hold enough events.
    assert live.count >= settings.alerts.latency_min_samples and fresh.count >= settings.alerts.latency_min_samples
    assert not raised, f"alerts raised by a healthy engine: {sorted(set(raised))[:10]}"
    assert [a for a in engine.alert_store.history() if a.state != "resolved"] == []

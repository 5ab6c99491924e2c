"""Fault: the spool's disk fills up while the broker is unreachable (a real 1 MB tmpfs, ENOSPC from the kernel).

The engine keeps ingesting; the spool rejects what does not fit (counted as dropped), the
alert rules see the spool's failed state, and it clears by itself once space returns.
"""

from __future__ import annotations

import pytest

from alerts.rules import evaluate_rules
from config import load_settings
from runtime.engine import Engine
from tests.conftest import unique_name
from tests.ports import free_port
from tests.integration.pipeline import wait_until
from tests.integration.test_backup_disk_full import _fill, small_disk  # noqa: F401 - the tmpfs fixture


@pytest.mark.timeout(120)
def test_a_full_spool_disk_raises_the_spool_alert_and_it_clears_when_space_returns(small_disk, chdb_store):  # noqa: F811
    settings = load_settings(
        data_dir=small_disk,
        feed={"symbols": ["AAPL", "MSFT"], "simulator_rate": 500},
        bus={"kind": "kafka"},
        kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}", "topic_prefix": unique_name("full"),
               "message_timeout_ms": 2000},
        storage={"database": chdb_store.database},
        backup={"enabled": False},
        monitoring={"enabled": False},
    )
    engine = Engine(settings, store=chdb_store).start()
    try:
        wait_until(lambda: engine.status().producer.spooled > 20, 60, "events spooled while the broker is down")
        filler = _fill(small_disk, leave_bytes=0)
        wait_until(lambda: engine.status().producer.spool.failing, 30, "a spool write refused by the full disk")
        full = engine.observe()
        assert "No space left on device" in full.spool_write_error and full.dropped_recent > 0
        assert {"spool_write_failed", "events_dropped"} <= {f.rule for f in evaluate_rules(full, settings.alerts)}
        spooled = engine.status().producer.spooled

        filler.unlink()
        wait_until(lambda: not engine.status().producer.spool.failing, 30, "spool writes working again")
        assert engine.status().producer.spooled > spooled
        assert "spool_write_failed" not in {f.rule for f in evaluate_rules(engine.observe(), settings.alerts)}
    finally:
        engine.stop(drain_timeout_s=2)

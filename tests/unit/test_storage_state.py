"""Storage availability as everything reads it (status, health, alert, banner), from plain outcomes."""

from __future__ import annotations

import logging

from prometheus_client import generate_latest

from dashboard.format import storage_banner
from runtime.metrics import engine_registry
from storage.availability import StorageMonitor, StorageState
from storage.store import StorageError, StorageUnavailable
from tests.engine_status import idle_status

S = 1_000_000_000
T0 = 1_796_000_000 * S


class WallClock:
    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def test_an_outage_starts_at_the_first_unreachable_answer_and_ends_at_the_next_success(caplog):
    clock = WallClock(T0)
    monitor = StorageMonitor(clock_ns=clock)
    with caplog.at_level(logging.INFO, logger="storage.availability"):
        monitor.failed(StorageUnavailable("Connection refused"))
        clock.now_ns += 30 * S
        monitor.failed(StorageUnavailable("Connection refused again"))
        down = monitor.state(pending_writes=2)
        monitor.succeeded()
    assert (down.available, down.down_since_ns, down.last_error, down.pending_writes) == (
        False, T0, "Connection refused again", 2)
    assert monitor.state() == StorageState()
    assert [r.getMessage() for r in caplog.records] == [
        "storage unavailable; events wait on the bus, operator changes in memory", "storage available again"]
    assert caplog.records[1].down_s == 30.0


def test_a_statement_the_server_refuses_is_an_error_not_an_outage():
    monitor = StorageMonitor(migrated=False)
    monitor.failed(StorageError("ClickHouse error 497: ACCESS_DENIED"))
    state = monitor.state()
    assert state.available and not state.migrated and not state.ready and "ACCESS_DENIED" in state.last_error
    assert not monitor.wait_migrated(0)
    monitor.mark_migrated()
    assert monitor.wait_migrated(0) and monitor.ready


def test_the_banner_says_what_is_down_since_when_and_what_still_works():
    assert storage_banner(StorageState()) is None
    down = StorageState(available=False, down_since_ns=T0, last_error="Connection refused", pending_writes=4)
    text = storage_banner(down, now_ns=T0 + 120 * S)
    assert text.startswith("Storage unavailable since 2026-11-30 00:53:20 UTC (2 min ago): Connection refused.")
    assert "4 operator and alert changes wait in memory" in text and "alerts and notifications carry on" in text
    unmigrated = storage_banner(StorageState(migrated=False, last_error="ACCESS_DENIED"))
    assert unmigrated.startswith("Storage not ready: schema migrations have not run yet (ACCESS_DENIED).")


def test_metrics_show_storage_availability_and_the_writes_waiting_for_it():
    down = StorageState(available=False, down_since_ns=T0, last_error="Connection refused", migrated=True,
                        pending_writes=4, dropped_writes=1)
    text = generate_latest(engine_registry(lambda: idle_status(storage=down))).decode()
    assert "tickops_storage_available 0.0" in text
    assert "tickops_storage_pending_writes 4.0" in text
    assert "tickops_storage_pending_writes_dropped_total 1.0" in text
    assert "tickops_storage_available 1.0" in generate_latest(engine_registry(idle_status)).decode()

"""The write-behind queue: operator actions and alert states wait in memory, in order, while storage is
not ready, and reach storage once it is; the bound and a refusing server drop with a count and a log."""

from __future__ import annotations

import logging

import pytest

from alerts.store import AlertStore
from storage.availability import StorageMonitor
from storage.migrate import migrate
from storage.server_store import ClickHouseServerStore
from storage.store import StorageUnavailable
from storage.write_behind import MAX_REFUSALS, WriteBehind
from tests.ports import free_port


def _actions(alerts: AlertStore) -> list[tuple[str, int]]:
    return sorted((e.action, e.ts_ns) for e in alerts.audit_log())


def test_writes_wait_while_storage_is_not_ready_and_go_through_in_order_once_it_is(chdb_store):
    migrate(chdb_store)
    monitor = StorageMonitor(migrated=False)
    writes = WriteBehind(chdb_store, monitor)
    alerts = AlertStore(chdb_store, writes)
    for ts in (1, 2, 3):
        alerts.audit("ops-anna", f"action-{ts}", "AAPL", ts_ns=ts)
    assert writes.pending == 3 and alerts.audit_log() == []
    monitor.mark_migrated()
    alerts.audit("ops-anna", "action-4", "AAPL", ts_ns=4)  # ready: the queue goes through, oldest first
    assert writes.pending == 0 and writes.dropped == 0
    assert _actions(alerts) == [("action-1", 1), ("action-2", 2), ("action-3", 3), ("action-4", 4)]


def test_beyond_its_bound_the_oldest_write_is_dropped_counted_and_logged(chdb_store, caplog):
    migrate(chdb_store)
    monitor = StorageMonitor(migrated=False)
    writes = WriteBehind(chdb_store, monitor, max_entries=3)
    alerts = AlertStore(chdb_store, writes)
    with caplog.at_level(logging.ERROR, logger="storage.write_behind"):
        for ts in range(1, 6):
            alerts.audit("ops-anna", f"action-{ts}", "AAPL", ts_ns=ts)
    assert (writes.pending, writes.dropped) == (3, 2)
    dropped = [r for r in caplog.records if r.getMessage().startswith("pending storage write dropped")]
    assert [(r.table, r.dropped, r.max_entries) for r in dropped] == [("audit_trail", 1, 3), ("audit_trail", 2, 3)]
    monitor.mark_migrated()
    writes.flush()
    assert [ts for _, ts in _actions(alerts)] == [3, 4, 5]


def test_an_unreachable_server_keeps_the_writes_and_marks_storage_down():
    store = ClickHouseServerStore(port=free_port(), database="nowhere", connect_timeout_s=1.0)
    writes = WriteBehind(store, monitor := StorageMonitor(clock_ns=lambda: 42))
    AlertStore(store, writes).audit("ops-anna", "acknowledge", "disk_free_low/data_dir", "on it")  # never raises
    state = monitor.state(writes.pending, writes.dropped)
    assert (state.available, state.down_since_ns, state.pending_writes) == (False, 42, 1)
    assert "unreachable" in state.last_error
    with pytest.raises(StorageUnavailable):
        writes.flush()
    assert writes.pending == 1
    store.close()


def test_a_write_the_server_refuses_is_given_up_after_a_few_attempts_and_the_rest_goes_through(chdb_store, caplog):
    migrate(chdb_store)
    monitor = StorageMonitor()
    writes = WriteBehind(chdb_store, monitor)
    writes.insert("no_such_table", ["x"], [[1]])  # refused by a server that answers: storage stays available
    assert writes.pending == 1 and monitor.state().available and "no_such_table" in monitor.state().last_error.lower()
    with caplog.at_level(logging.ERROR, logger="storage.write_behind"):
        for _ in range(MAX_REFUSALS - 2):
            with pytest.raises(Exception, match="refused"):
                writes.flush()
        AlertStore(chdb_store, writes).audit("ops-anna", "stop_symbol", "MSFT", ts_ns=7)
    assert (writes.pending, writes.dropped) == (0, 1)
    assert any(r.getMessage().startswith("pending storage write refused") and r.table == "no_such_table"
               for r in caplog.records)
    assert _actions(AlertStore(chdb_store)) == [("stop_symbol", 7)]

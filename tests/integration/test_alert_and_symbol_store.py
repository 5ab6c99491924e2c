"""Alerts, audit log and desired symbols persist on both backends and reload after a restart."""

from __future__ import annotations

import pytest

from alerts.lifecycle import AlertBook, Finding
from alerts.store import AlertStore
from collectors.iqfeed.protocol import InvalidSymbol
from runtime.symbols import SymbolRegistry
from storage.availability import StorageMonitor
from storage.migrate import migrate
from storage.write_behind import WriteBehind

S = 1_000_000_000


@pytest.mark.timeout(120)
def test_alert_states_persist_and_a_new_book_resumes_the_active_ones(store):
    migrate(store)
    alerts = AlertStore(store)
    book = AlertBook()
    alerts.save(book.evaluate([Finding("disk_free_low", "data_dir", "critical", "3% free"),
                               Finding("symbol_silent", "AAPL", "warning", "silent")], 1 * S))
    alerts.save([book.acknowledge("disk_free_low", "data_dir", "ops-anna", "cleaning up", 2 * S)])
    alerts.save(book.evaluate([Finding("disk_free_low", "data_dir", "critical", "3% free")], 3 * S))  # AAPL resolves

    reloaded = AlertBook(alerts.active())
    (active,) = reloaded.active()
    assert (active.rule, active.state, active.acked_by, active.ack_note) == (
        "disk_free_low", "acknowledged", "ops-anna", "cleaning up")
    states = {(a.rule, a.state) for a in alerts.history()}
    assert states == {("disk_free_low", "acknowledged"), ("symbol_silent", "resolved")}


@pytest.mark.timeout(120)
def test_audit_log_is_append_only_newest_first(store):
    migrate(store)
    alerts = AlertStore(store)
    alerts.audit("ops-anna", "start_symbol", "NVDA", "depth=False", ts_ns=1 * S)
    alerts.audit("ops-ben", "acknowledge", "disk_free_low/data_dir", "on it", ts_ns=2 * S)
    log = alerts.audit_log()
    assert [(e.actor, e.action) for e in log] == [("ops-ben", "acknowledge"), ("ops-anna", "start_symbol")]


@pytest.mark.timeout(120)
def test_symbol_registry_keeps_the_latest_desired_state_and_rejects_bad_symbols(store):
    migrate(store)
    registry = SymbolRegistry(store)
    registry.seed(["AAPL", "MSFT"], ["AAPL"])
    registry.refresh()  # storage holds no symbols: a first start, the configured ones are stored
    registry.seed(["IGNORED"], [])  # only the first start seeds
    registry.refresh()
    registry.set("msft", level1=False, by="ops-anna")
    specs = {s.symbol: s for s in registry.all()}
    assert set(specs) == {"AAPL", "MSFT"}
    assert specs["AAPL"].level1 and specs["AAPL"].depth
    assert not specs["MSFT"].level1 and specs["MSFT"].updated_by == "ops-anna"
    with pytest.raises(InvalidSymbol):
        registry.set("AAPL\r\nS,SET LOGINID,x", level1=True)


@pytest.mark.timeout(120)
def test_configured_symbols_serve_from_memory_until_storage_answers_and_are_stored_on_a_first_start(store):
    """Storage not ready at a first start: the configured symbols and an operator's start work from memory."""
    monitor = StorageMonitor(migrated=False)
    writes = WriteBehind(store, monitor)
    registry = SymbolRegistry(store, writes)
    registry.seed(["AAPL", "MSFT"], ["AAPL"])
    registry.set("NVDA", level1=True, by="ops-anna")
    assert [(s.symbol, s.level1, s.depth) for s in registry.all()] == [
        ("AAPL", True, True), ("MSFT", True, False), ("NVDA", True, False)]
    assert writes.pending == 1

    migrate(store)  # storage answers: what the engine's storage job does
    registry.refresh()
    monitor.mark_migrated()
    writes.flush()
    stored = SymbolRegistry(store)
    stored.refresh()
    assert {(s.symbol, s.level1, s.depth, s.updated_by) for s in stored.all()} == {
        ("AAPL", True, True, "config"), ("MSFT", True, False, "config"), ("NVDA", True, False, "ops-anna")}


@pytest.mark.timeout(120)
def test_a_restart_before_storage_answers_takes_the_stored_list_over_the_configured_one(store):
    migrate(store)
    earlier = SymbolRegistry(store)
    earlier.seed(["MSFT"], [])
    earlier.refresh()
    earlier.set("MSFT", level1=False, by="ops-anna")

    restarted = SymbolRegistry(store, WriteBehind(store, StorageMonitor(migrated=False)))
    restarted.seed(["AAPL", "MSFT"], [])  # configuration changed since the first start
    assert {s.symbol for s in restarted.all() if s.level1} == {"AAPL", "MSFT"}  # until storage answers
    restarted.set("TSLA", level1=True, by="ops-ben")  # newer than anything stored: survives the refresh
    restarted.refresh()
    assert [(s.symbol, s.level1, s.updated_by) for s in restarted.all()] == [
        ("MSFT", False, "ops-anna"), ("TSLA", True, "ops-ben")]

"""Feed-side faults through the whole pipeline: the feed connection dropped, a burst of
malformed lines. Each ends with the reconciliation: stored keys equal ingested keys, once."""

from __future__ import annotations

import time

import pytest

from config import load_settings
from runtime.backfill import BACKFILL_MARGIN_NS
from runtime.engine import Engine
from tests.integration.pipeline import assert_stored_exactly_once, wait_until
from tests.integration.test_engine import _record_ingest


def _engine(chdb_store, tmp_path) -> tuple[Engine, list]:
    settings = load_settings(
        data_dir=tmp_path,
        feed={"symbols": ["AAPL", "MSFT", "SPY"], "simulator_rate": 400, "heartbeat_timeout_s": 2.0},
        storage={"database": chdb_store.database},
    )
    engine = Engine(settings, store=chdb_store)
    return engine, _record_ingest(engine)


def _trades_since(engine: Engine, ts_ns: int) -> set[str]:
    table = engine.store.table("trades")
    return {s for (s,) in engine.store.query(f"SELECT DISTINCT symbol FROM {table} WHERE recv_ns > {ts_ns}")}


@pytest.mark.timeout(120)
def test_dropped_feed_connection_reconnects_resubscribes_and_loses_nothing(chdb_store, tmp_path):
    engine, ingested = _engine(chdb_store, tmp_path)
    engine.start()
    try:
        wait_until(lambda: _trades_since(engine, 0) == {"AAPL", "MSFT", "SPY"}, 30, "trades of every symbol")
        dropped_at = time.time_ns()
        engine.simulator.faults.drop_connections()
        wait_until(lambda: engine.status().feed.level1.reconnects >= 1, 15, "the client to reconnect")
        wait_until(lambda: _trades_since(engine, dropped_at) == {"AAPL", "MSFT", "SPY"}, 15,
                  "trades of every watched symbol after the reconnect")
        wait_until(lambda: any(w.connection == "level1" and w.end_ns for w in engine.status().outages), 10,
                  "the level1 outage window to close")
    finally:
        engine.stop()
    assert_stored_exactly_once(engine.store, ingested)
    outages = engine.store.query(
        f"SELECT connection, cause, start_ns, end_ns FROM {engine.store.table('feed_outages')} FINAL "
        f"WHERE connection = 'level1'")
    assert outages and all(end > start for _, _, start, end in outages)


@pytest.mark.timeout(120)
def test_burst_of_malformed_feed_lines_is_counted_and_everything_valid_is_stored_once(chdb_store, tmp_path):
    engine, ingested = _engine(chdb_store, tmp_path)
    engine.start()
    try:
        wait_until(lambda: _trades_since(engine, 0) == {"AAPL", "MSFT", "SPY"}, 30, "trades of every symbol")
        engine.simulator.faults.malformed(500)
        wait_until(lambda: engine.status().feed_counters.get("protocol_errors", 0) >= 200, 20,
                  "malformed lines to be counted")
        engine.simulator.faults.malformed(0)
        resumed_at = time.time_ns()
        wait_until(lambda: _trades_since(engine, resumed_at) == {"AAPL", "MSFT", "SPY"}, 15,
                  "valid data to keep flowing after the burst")
        assert engine.status().feed.level1.reconnects == 0, "malformed lines must not drop the connection"
    finally:
        engine.stop()
    assert_stored_exactly_once(engine.store, ingested)


@pytest.mark.timeout(120)
def test_trades_missed_during_an_outage_are_backfilled_once_from_tick_history(chdb_store, tmp_path):
    engine, ingested = _engine(chdb_store, tmp_path)
    engine.start()
    try:
        wait_until(lambda: _trades_since(engine, 0) == {"AAPL", "MSFT", "SPY"}, 30, "trades of every symbol")
        engine.simulator.faults.refuse_connections(3)
        engine.simulator.faults.drop_connections()  # the market goes on while we are away
        table = engine.store.table("trades")
        wait_until(lambda: engine.store.query(f"SELECT count() FROM {table} WHERE backfilled = 1")[0][0] > 0, 40,
                  "backfilled trades of the outage in storage")
        window = next(w for w in engine.status().outages if w.connection == "level1" and w.end_ns)
    finally:
        engine.stop()
    assert_stored_exactly_once(engine.store, ingested)
    rows = engine.store.query(f"SELECT symbol, ts_ns, total_volume, price, size, backfilled FROM {table}")
    trades = [row[:5] for row in rows]
    assert len(trades) == len(set(trades)), "a backfilled trade duplicates a live one"
    backfilled = [r for r in rows if r[5] == 1]
    assert all(window.start_ns - BACKFILL_MARGIN_NS <= r[1] <= window.end_ns + BACKFILL_MARGIN_NS for r in backfilled)
    assert {r[0] for r in backfilled} <= {"AAPL", "MSFT", "SPY"}

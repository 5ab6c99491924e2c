"""The whole engine: simulator feed -> ingest -> bus -> writer -> store, embedded and over Kafka.

Each test ends with a reconciliation: the (source, seq) keys stored equal the keys of
every stored-kind event the engine ingested, and no key is stored twice.
"""

from __future__ import annotations

import time

import pytest

from config import load_settings
from runtime.engine import Engine
from tests.conftest import unique_name
from tests.integration.pipeline import assert_stored_exactly_once, wait_until


def _record_ingest(engine: Engine) -> list:
    """Keep every event the engine ingests (the feed calls ``engine.ingest``)."""
    seen: list = []
    forward = engine.ingest

    def recording(events):
        forward(events)
        seen.extend(events)

    engine.ingest = recording
    return seen


def _symbols_with_trades(store) -> set[str]:
    return {s for (s,) in store.query(f"SELECT DISTINCT symbol FROM {store.table('trades')}")}


def _run_and_reconcile(settings, store) -> Engine:
    engine = Engine(settings, store=store)
    ingested = _record_ingest(engine)
    engine.start()
    try:
        wait_until(lambda: {"AAPL", "MSFT"} <= _symbols_with_trades(store), 60, "trades of AAPL and MSFT stored")
        spec = engine.start_symbol("NVDA", by="test-operator")
        assert spec.symbol == "NVDA"
        wait_until(lambda: "NVDA" in _symbols_with_trades(store), 30, "NVDA trades after starting it")
        engine.stop_symbol("MSFT", by="test-operator")
        wait_until(lambda: "MSFT" not in engine.feed.watched(), 10, "MSFT unwatched")
    finally:
        engine.stop()
    assert_stored_exactly_once(store, ingested)
    actions = [(e.action, e.subject) for e in engine.alert_store.audit_log()]
    assert ("start_symbol", "NVDA") in actions and ("stop_symbol", "MSFT") in actions
    return engine


@pytest.mark.timeout(180)
def test_embedded_engine_stores_simulator_data_in_chdb_exactly_once(chdb_store, tmp_path):
    settings = load_settings(
        data_dir=tmp_path,
        feed={"symbols": ["AAPL", "MSFT"], "simulator_rate": 300},
        storage={"database": chdb_store.database},
    )
    engine = _run_and_reconcile(settings, chdb_store)
    assert engine.status().backup.events_written > 0


@pytest.mark.timeout(180)
def test_engine_over_real_kafka_and_clickhouse_stores_exactly_once(kafka_bootstrap, server_store, tmp_path):
    prefix = unique_name("eng")
    settings = load_settings(
        data_dir=tmp_path,
        feed={"symbols": ["AAPL", "MSFT"], "simulator_rate": 300},
        bus={"kind": "kafka"},
        kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix, "consumer_group": prefix,
               "partitions": 2},
        storage={"backend": "server", "database": server_store.database},
    )
    engine = _run_and_reconcile(settings, server_store)
    producer = engine.status().producer
    assert producer.delivered >= producer.published - producer.spooled and producer.dropped == 0


@pytest.mark.timeout(120)
def test_unreachable_broker_spools_events_turns_health_degraded_and_raises_an_alert(chdb_store, tmp_path):
    from alerts.rules import evaluate_rules
    from bus.breaker import BreakerState
    from runtime.health import HealthCheck
    from tests.ports import free_port

    settings = load_settings(
        data_dir=tmp_path,
        feed={"symbols": ["AAPL"], "simulator_rate": 300},
        bus={"kind": "kafka"},
        kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}", "topic_prefix": unique_name("down"),
               "message_timeout_ms": 2000},
        storage={"database": chdb_store.database},
    )
    engine = Engine(settings, store=chdb_store).start()
    try:
        wait_until(lambda: engine.status().producer.spooled > 20, 60, "events spooled while the broker is down")
        status = engine.status()
        assert status.producer.breaker.state is not BreakerState.CLOSED and status.producer.dropped == 0
        health = HealthCheck()(status)
        assert health.state == "degraded" and any("bus unreachable" in r for r in health.reasons)
        observation = engine.observe()
        assert not observation.bus_reachable and observation.spool_bytes > 0
        now = time.time_ns()
        engine.alert_book.evaluate(evaluate_rules(observation, settings.alerts), now)
        fired = engine.alert_book.evaluate(evaluate_rules(observation, settings.alerts), now + 6 * 10**9)
        assert ("kafka_unreachable", "firing") in {(a.rule, a.state) for a in fired}
    finally:
        engine.stop(drain_timeout_s=2)


@pytest.mark.timeout(120)
def test_stop_drains_a_full_in_process_bus_into_storage_while_the_spool_replays(chdb_store, tmp_path):
    """The writer held back until the in-process bus is full and events spool: at stop, the spool
    replays only as fast as the writer makes room, so both must run together until both are empty."""
    from tests.integration._backfill_support import WriterSwitch

    settings = load_settings(
        data_dir=tmp_path, feed={"symbols": ["AAPL", "MSFT"], "simulator_rate": 2000},
        bus={"memory_capacity": 20}, storage={"database": chdb_store.database}, monitoring={"enabled": False},
    )
    engine = Engine(settings, store=chdb_store)
    ingested = _record_ingest(engine)
    writer = WriterSwitch(engine)
    engine.start()
    try:
        wait_until(lambda: engine.writer is not None and engine.writer.stats().stored > 0, 60, "first rows stored")
        writer.hold()
        wait_until(lambda: engine.producer.stats().spool.unsent > 500, 60, "events spooled behind a full bus")
    finally:
        engine.stop()
    assert engine.producer.stats().spool.unsent == 0, "events left in the spool for a next run"
    assert_stored_exactly_once(chdb_store, ingested)

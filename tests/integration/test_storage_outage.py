"""The engine lives through a ClickHouse outage: down at start, or stopped mid-run (docs/DELIVERY.md).

A PRIVATE ClickHouse server (scripts/services.sh on free ports, the fixture of
test_delivery_faults.py) is stopped and started under a running engine. While it is down
the feed, the backup, the bus and the alert rules keep running, notifications go out, and
operator actions are kept in memory; when it returns, migrations run, the writer stores
the bus backlog and the pending writes reach their tables. Each test ends with the
reconciliation: every event the engine ingested is stored exactly once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.store import AlertStore
from config import Settings, load_settings
from runtime.engine import Engine
from runtime.health import HealthCheck
from runtime.symbols import SymbolRegistry
from storage.server_store import ClickHouseServerStore
from tests.conftest import unique_name
from tests.integration.pipeline import assert_stored_exactly_once, stored_count, stored_kinds, wait_until
from tests.integration.test_delivery_faults import PrivateService, private_clickhouse  # noqa: F401 - fixture
from tests.integration.test_engine import _record_ingest
from tests.integration.test_notify_channels import webhook  # noqa: F401 - fixture


def outage_settings(tmp_path: Path, clickhouse: PrivateService, **changes: object) -> Settings:
    return load_settings(
        data_dir=tmp_path, instance_id=unique_name("outage"),
        feed={"symbols": ["AAPL", "MSFT"], "simulator_rate": 300},
        storage={"backend": "server", "port": clickhouse.port, "database": unique_name("outage"),
                 "retry_initial_ms": 50, "retry_max_ms": 1000},
        monitoring={"enabled": False}, **changes,
    )


def checking_store(settings: Settings) -> ClickHouseServerStore:
    """The test's own connection to the engine's database (short timeouts: the server comes and goes)."""
    return ClickHouseServerStore(port=settings.storage.port, database=settings.storage.database,
                                 connect_timeout_s=1.0, send_receive_timeout_s=5.0)


def firing(engine: Engine) -> set[str]:
    return {a.rule for a in engine.alert_book.active() if a.state in ("firing", "acknowledged")}


def store_everything(engine: Engine, store: ClickHouseServerStore, ingested: list) -> None:
    """Wait until storage holds every stored-kind event ingested so far (the feed keeps running)."""
    target = len(stored_kinds(list(ingested)))
    wait_until(lambda: stored_count(store) >= target, 90, f"{target} events stored")


@pytest.mark.timeout(300)
def test_engine_started_while_clickhouse_is_down_runs_and_catches_up_when_it_returns(private_clickhouse, tmp_path):
    private_clickhouse.down()
    settings = outage_settings(tmp_path, private_clickhouse)
    engine = Engine(settings)  # main: raised StorageUnavailable here (migrations, active alerts)
    ingested = _record_ingest(engine)
    engine.start()
    check = checking_store(settings)
    try:
        wait_until(lambda: engine.status().ingested > 300, 30, "the feed to run while storage is down")
        status = engine.status()
        assert status.backup.events_appended > 0 and status.backup.state == "ok"
        assert not status.storage.available and not status.storage.migrated and status.storage.down_since_ns
        assert engine.writer is None and status.producer.dropped == 0
        health = HealthCheck()(status)
        assert health.state == "degraded" and any("storage unavailable" in r for r in health.reasons), health
        wait_until(lambda: "storage_unavailable" in firing(engine), 30, "the storage_unavailable alert to fire")
        assert {s.symbol for s in engine.symbols.all() if s.level1} == {"AAPL", "MSFT"}  # configured, in memory

        private_clickhouse.up()
        wait_until(lambda: engine.status().storage.migrated and engine.writer is not None, 60,
                   "migrations to run and the writer to be built")
        store_everything(engine, check, ingested)
        wait_until(lambda: "storage_unavailable" not in firing(engine), 30, "the alert to resolve")
        assert HealthCheck()(engine.status()).state == "ok", HealthCheck()(engine.status())
    finally:
        engine.stop()
    try:
        assert_stored_exactly_once(check, ingested)
        registry = SymbolRegistry(check)
        registry.refresh()
        assert {(s.symbol, s.level1, s.updated_by) for s in registry.all()} == {
            ("AAPL", True, "config"), ("MSFT", True, "config")}
        states = {(a.rule, a.state) for a in AlertStore(check).history()}
        assert ("storage_unavailable", "resolved") in states
    finally:
        check.close()  # an open session would hold up the private server's shutdown


@pytest.mark.timeout(300)
def test_clickhouse_stopped_mid_run_alerts_through_the_webhook_and_operator_actions_persist_after_recovery(
    private_clickhouse, webhook, tmp_path  # noqa: F811 - fixtures
):
    receiver = webhook()
    settings = outage_settings(tmp_path, private_clickhouse,
                               notify={"webhook_url": receiver.url, "retry_initial_s": 0.1, "retry_max_s": 0.5})
    engine = Engine(settings)
    ingested = _record_ingest(engine)
    engine.start()
    check = checking_store(settings)
    try:
        wait_until(lambda: stored_count(check) > 100, 30, "the stream to reach storage")
        private_clickhouse.down()
        engine.evaluate_alerts()  # main: raised StorageUnavailable (observe read the symbols table)
        wait_until(lambda: any((b["rule"], b["state"]) == ("storage_unavailable", "firing")
                               for b in receiver.delivered()), 60, "the storage_unavailable webhook")
        acked = engine.acknowledge("storage_unavailable", "storage", by="ops-anna", note="restarting clickhouse")
        assert acked.state == "acknowledged"
        engine.start_symbol("NVDA", by="ops-anna")
        wait_until(lambda: "NVDA" in engine.feed.watched(), 10, "NVDA watched while storage is down")
        assert engine.status().storage.pending_writes >= 3  # the ack, its audit entry, the symbol and its audit

        private_clickhouse.up()
        wait_until(lambda: engine.status().storage.available and engine.status().storage.pending_writes == 0, 60,
                   "storage back and the pending writes flushed")
        wait_until(lambda: "storage_unavailable" not in firing(engine), 30, "the alert to resolve")
        store_everything(engine, check, ingested)
    finally:
        engine.stop()
    try:
        assert_stored_exactly_once(check, ingested)
        audit = {(e.actor, e.action, e.subject) for e in AlertStore(check).audit_log()}
        assert {("ops-anna", "acknowledge", "storage_unavailable/storage"),
                ("ops-anna", "start_symbol", "NVDA")} <= audit
        registry = SymbolRegistry(check)
        registry.refresh()
        nvda = {s.symbol: s for s in registry.all()}["NVDA"]
        assert nvda.level1 and nvda.updated_by == "ops-anna"
        (alert,) = [a for a in AlertStore(check).history() if a.rule == "storage_unavailable"]
        assert alert.acked_by == "ops-anna" and alert.ack_note == "restarting clickhouse"
        sent = [(b["rule"], b["state"]) for b in receiver.delivered()]
        assert ("storage_unavailable", "acknowledged") in sent and ("storage_unavailable", "resolved") in sent
    finally:
        check.close()

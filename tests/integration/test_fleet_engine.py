"""Engines in a fleet on the real broker: the sidebar's start and stop go to the assignment topic and are
refused beyond the fleet's capacity; an instance whose share exceeds its watch limit watches up to it,
critical symbols first, reports the rest and alerts under its own name; an instance that cannot reach
Kafka at start watches the stored desired set alone rather than nothing."""

from __future__ import annotations

import time

import pytest

from collectors.iqfeed.protocol import SymbolLimitReached
from config import load_settings
from runtime.engine import Engine
from runtime.health import HealthCheck
from tests.conftest import unique_name
from tests.ports import free_port
from tests.integration.pipeline import delete_topics, wait_until
from tests.integration.test_delivery_faults import PrivateService, private_kafka  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(180)
LIMIT = 5
CRITICAL = {"TSLA", "SPY"}
PLAIN = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "QQQ", "IWM"]


def _engine(name: str, prefix: str, bootstrap: str, store, tmp_path, **fleet: object) -> Engine:
    settings = load_settings(
        data_dir=tmp_path / name, instance_id=name,
        feed={"symbols": [], "watch_limit": LIMIT, "simulator_rate": 50},
        bus={"kind": "kafka"},
        kafka={"bootstrap_servers": bootstrap, "topic_prefix": prefix, "consumer_group": f"{prefix}-writer",
               "partitions": 2, "session_timeout_ms": 6000},
        fleet={"assignment_partitions": 8, "status_interval_s": 0.5, "stale_after_s": 4, **fleet},
        storage={"backend": "server", "database": store.database}, monitoring={"enabled": False},
    )
    return Engine(settings, store=store).start()


def _watched(*engines: Engine) -> list[str]:
    return sorted(s for engine in engines for s in engine.feed.watched())


def test_two_collectors_on_kafka_watch_each_desired_symbol_once_not_both_every_one(kafka_bootstrap, server_store,
                                                                                   tmp_path):
    """Before the fleet, two instances on one Kafka bus both watched every symbol and stored both copies."""
    prefix = unique_name("fltwo")
    symbols = ["AAPL", "MSFT", "SPY", "QQQ", "TSLA", "NVDA", "AMZN", "META"]
    engines = []
    try:
        for name in ("one", "two"):
            settings = load_settings(
                data_dir=tmp_path / name, instance_id=name, feed={"symbols": symbols, "simulator_rate": 50},
                bus={"kind": "kafka"}, kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix,
                                              "consumer_group": f"{prefix}-writer", "partitions": 2},
                storage={"backend": "server", "database": server_store.database}, monitoring={"enabled": False})
            engines.append(Engine(settings, store=server_store).start())
        time.sleep(3)  # both started, both watching what they will watch
        wait_until(lambda: _watched(*engines) == sorted(symbols), 60,
                   f"each symbol watched by one instance; watched: {_watched(*engines)}")
        assert all(engine.feed.watched() for engine in engines), "both instances got a share"
    finally:
        for engine in engines:
            engine.stop()
        delete_topics(kafka_bootstrap, prefix)


def test_an_instance_over_its_limit_watches_critical_symbols_first_and_alerts_under_its_own_name(
        kafka_bootstrap, server_store, tmp_path):
    prefix = unique_name("fleng")
    a = _engine("a", prefix, kafka_bootstrap, server_store, tmp_path)
    b = _engine("b", prefix, kafka_bootstrap, server_store, tmp_path)
    try:
        wait_until(lambda: len(a.fleet_view().live) == len(b.fleet_view().live) == 2, 60,
                   "both collectors on the fleet status topic, as each sees it")
        for symbol in PLAIN:
            a.start_symbol(symbol, by="ops")
        for symbol in sorted(CRITICAL):
            b.start_symbol(symbol, critical=True, by="ops")
        wanted = sorted(CRITICAL | set(PLAIN))
        wait_until(lambda: sorted(s.symbol for s in a.desired_symbols()) == wanted, 10, "b's starts read by a")
        with pytest.raises(SymbolLimitReached, match="2 responsive collectors' watch limits add up to 10"):
            a.start_symbol("IBM", by="ops")
        # Hashing, not the limit, splits the ten: a share over 5 is watched up to 5 and the rest reported.
        wait_until(lambda: sorted(_watched(a, b) + [s for e in (a, b) for s in e.status().unwatched]) == wanted, 30,
                   "each of the ten symbols watched or reported unwatched by exactly one collector")
        assert all(len(engine.feed.watched()) <= LIMIT for engine in (a, b))
        assert {s.symbol: s.critical for s in b.desired_symbols()} == {s: s in CRITICAL for s in wanted}

        b.stop()  # a clean leave: a owns every partition now, twice its limit
        wait_until(lambda: len(a.status().unwatched) == len(wanted) - LIMIT, 30, "a over its limit")
        assert CRITICAL <= a.feed.watched() and len(a.feed.watched()) == LIMIT
        a.evaluate_alerts()  # the alerts job runs it every second too
        active = {(x.rule, x.subject): x for x in a.alert_book.active()}
        assert active[("symbols_over_limit", "a/feed")].state == "firing"
        assert "fleet_capacity" in {rule for rule, _ in active}  # a is the rules owner now: the fleet is short
        assert not [key for key in active if key[1].startswith("b/")]
        assert a.fleet_view().capacity().short_by == len(wanted) - LIMIT

        a.stop_symbol("TSLA", by="ops")  # through the topic, back to the owner
        wait_until(lambda: "TSLA" not in a.feed.watched() and len(a.feed.watched()) == LIMIT, 30, "TSLA stopped")
        audit = {(e.actor if e.actor == "ops" else e.subject, e.action) for e in a.alert_store.audit_log(1000)}
        assert {("ops", "start_symbol"), ("ops", "stop_symbol"), ("a", "fleet_assigned"), ("b", "fleet_revoked")} \
            <= audit
    finally:
        a.stop()
        b.stop()
        delete_topics(kafka_bootstrap, prefix)


def test_an_instance_that_cannot_reach_kafka_at_start_watches_the_stored_set_alone_and_stops_in_time(
        chdb_store, tmp_path):
    settings = load_settings(
        data_dir=tmp_path, instance_id="lonely", feed={"symbols": ["AAPL", "MSFT"], "simulator_rate": 50},
        bus={"kind": "kafka"}, kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}", "message_timeout_ms": 2000},
        fleet={"join_timeout_s": 1}, storage={"database": chdb_store.database}, monitoring={"enabled": False},
    )
    engine = Engine(settings, store=chdb_store).start()
    try:
        wait_until(lambda: engine.feed.watched() == {"AAPL", "MSFT"}, 30, "the stored symbols watched alone")
        membership = engine.status().fleet.membership
        assert membership.standalone and membership.rules_owner and not membership.joined
        health = HealthCheck()(engine.status())
        assert health.state == "degraded" and any("not in the collector group" in r for r in health.reasons)
    finally:
        started = time.monotonic()
        engine.stop(drain_timeout_s=2)
        assert time.monotonic() - started < 20, "stopping with Kafka down took too long"


def test_an_instance_never_resolves_another_instances_alert_it_reads_from_storage(kafka_bootstrap, server_store,
                                                                                  tmp_path):
    """Alerts of all instances share one table; an instance that took in another's and did not find its
    condition itself resolved it there, while the condition still held on the other instance."""
    prefix = unique_name("flalert")
    symbols = ["AAPL", "MSFT", "SPY", "QQQ", "TSLA", "NVDA", "AMZN", "META"]

    def start(name: str, limit: int) -> Engine:
        settings = load_settings(
            data_dir=tmp_path / name, instance_id=name,
            feed={"symbols": symbols, "simulator_rate": 50, "watch_limit": limit},
            bus={"kind": "kafka"}, kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix,
                                          "consumer_group": f"{prefix}-writer", "partitions": 2},
            storage={"backend": "server", "database": server_store.database}, monitoring={"enabled": False})
        return Engine(settings, store=server_store).start()

    def stored(rule: str) -> list[tuple[str, str]]:
        return [(a.subject, a.state) for a in a_.alert_store.history() if a.rule == rule]

    a_ = start("a", 1)  # alone, every symbol is its share: over its limit of 1
    b_ = None
    try:
        wait_until(lambda: [state for _, state in stored("symbols_over_limit")] == ["firing"], 60,
                   "a's over-limit alert stored")
        b_ = start("b", 500)  # reads the stored alerts when it starts; it is not over any limit itself
        wait_until(lambda: b_.storage.ready and len(b_.feed.watched()) > 0, 60, "b running with a share")
        wait_until(lambda: len(a_.status().unwatched) > 0, 30, "a still over its limit with its share")
        time.sleep(4)  # b's storage job merged the stored alerts, its alerts job ran several times
        assert [state for _, state in stored("symbols_over_limit")] == ["firing"], stored("symbols_over_limit")
    finally:
        for engine in (a_, b_):
            if engine is not None:
                engine.stop()
        delete_topics(kafka_bootstrap, prefix)


def test_a_collector_keeps_watching_its_symbols_through_a_broker_outage_longer_than_its_session(
        private_kafka: PrivateService, chdb_store, tmp_path):  # noqa: F811 - fixture
    """Nobody can take a collector's symbols over while Kafka is down: the group session expires, and
    the collector keeps them (held) instead of stopping, then rejoins when the broker is back."""
    symbols = {"AAPL", "MSFT", "SPY", "QQQ"}
    settings = load_settings(
        data_dir=tmp_path, instance_id="steady", feed={"symbols": sorted(symbols), "simulator_rate": 50},
        bus={"kind": "kafka"}, kafka={"bootstrap_servers": f"127.0.0.1:{private_kafka.port}",
                                      "session_timeout_ms": 6000, "message_timeout_ms": 5000},
        storage={"database": chdb_store.database}, monitoring={"enabled": False},
    )
    engine = Engine(settings, store=chdb_store).start()
    try:
        wait_until(lambda: engine.feed.watched() == symbols and engine.status().fleet.membership.joined, 60,
                   "the configured symbols seeded and watched through the group")
        private_kafka.down()
        wait_until(lambda: engine.status().fleet.membership.held, 60, "the group session lost")
        assert engine.feed.watched() == symbols, "the collector stopped watching while nobody could take over"
        assert any("collector group session lost" in r for r in HealthCheck()(engine.status()).reasons)
        private_kafka.up()
        wait_until(lambda: not engine.status().fleet.membership.held and engine.status().fleet.membership.partitions,
                   90, "the group assigning again")
        wait_until(lambda: engine.feed.watched() == symbols, 30, "the symbols watched under the new assignment")
        assert ("steady", "fleet_lost") in {(e.subject, e.action) for e in engine.alert_store.audit_log(1000)}
    finally:
        engine.stop(drain_timeout_s=5)

"""The fleet as the Fleet page sees it, on the real broker and ClickHouse server: a writer process and an
embedded writer publish their partitions and lag on the fleet status channel next to the collectors, and
the rules owner resolves the alerts of an instance that left the fleet, once per departure, audited."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alerts.lifecycle import Alert
from alerts.store import AlertStore
from bus.factory import build_producer, open_bus
from bus.fleet_channel import status_topic
from bus.keyed_topic import KeyedTopicWriter
from bus.topics import TopicSet
from config import load_settings
from runtime.engine import Engine
from runtime.fleet import FleetControl
from runtime.fleet_status import InstanceStatus, encode_status
from storage.migrate import migrate
from storage.writer_status import WriterStatus
from tests.conftest import CLICKHOUSE_PORT, unique_name
from tests.integration.pipeline import delete_topics, make_events, stored_kinds, wait_until
from tests.integration.test_delivery_faults import PrivateService, private_kafka  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(150)
ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000


def _settings(prefix: str, bootstrap: str, store, tmp_path: Path, name: str, **fleet: object):
    return load_settings(
        data_dir=tmp_path / name, instance_id=name, feed={"symbols": [], "simulator_rate": 20},
        bus={"kind": "kafka"},
        kafka={"bootstrap_servers": bootstrap, "topic_prefix": prefix, "consumer_group": f"{prefix}-writer",
               "partitions": 2, "session_timeout_ms": 6000},
        fleet={"assignment_partitions": 4, "status_interval_s": 0.5, "stale_after_s": 3, **fleet},
        storage={"backend": "server", "database": store.database}, monitoring={"enabled": False},
    )


def _writers(control: FleetControl) -> dict[str, WriterStatus]:
    control.poll()
    return {w.instance_id: w for w in control.view().writers}


def test_a_writer_process_shows_its_partitions_and_lag_on_the_fleet_channel_then_stops_as_stopped(
        kafka_bootstrap, server_store, tmp_path):
    """Before, a writer process published nothing there: the Fleet page could not show writers at all."""
    prefix = unique_name("fvw")
    migrate(server_store)
    settings = _settings(prefix, kafka_bootstrap, server_store, tmp_path, "dash")
    bus = open_bus(settings)
    producer = build_producer(settings, bus)
    events = make_events(300)
    producer.publish_many(events)
    assert producer.flush(30)
    producer.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")}
    env.update({
        "TICKOPS_INSTANCE_ID": "w1", "TICKOPS_DATA_DIR": str(tmp_path / "w1"), "TICKOPS_BUS__KIND": "kafka",
        "TICKOPS_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap, "TICKOPS_KAFKA__TOPIC_PREFIX": prefix,
        "TICKOPS_KAFKA__CONSUMER_GROUP": f"{prefix}-writer", "TICKOPS_KAFKA__PARTITIONS": "2",
        "TICKOPS_STORAGE__BACKEND": "server", "TICKOPS_STORAGE__PORT": str(CLICKHOUSE_PORT),
        "TICKOPS_STORAGE__DATABASE": server_store.database, "TICKOPS_MONITORING__ENABLED": "false",
        # One batch that never comes due by itself: what the writer read stays its lag until it stops.
        "TICKOPS_STORAGE__BATCH_AGE_MS": "60000", "TICKOPS_STORAGE__BATCH_ROWS": "1000000",
        "TICKOPS_FLEET__STATUS_INTERVAL_S": "0.5", "TICKOPS_FLEET__STALE_AFTER_S": "3",
    })
    log = open(tmp_path / "w1.log", "ab")  # noqa: SIM115 - the child writes to it until it ends
    writer = subprocess.Popen([sys.executable, "-m", "storage.writer"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    control = FleetControl(settings, stored=list)
    try:
        wait_until(lambda: (w := _writers(control).get("w1")) is not None and w.partitions and w.lag == len(events),
                   60, f"w1's status with its lag of {len(events)} records; seen {_writers(control)}")
        status = _writers(control)["w1"]
        topics = TopicSet(prefix)
        assert set(status.partitions) == {f"{t}[{p}]" for t in topics.event_topics for p in (0, 1)}
        assert sum(status.lag_by_topic.values()) == len(events) and status.lag_by_topic[topics.trades] > 0
        assert (status.role, status.state, status.health, status.embedded, status.stored) == (
            "writer", "running", "ok", False, 0)
        assert control.view().responsive(status)
        writer.send_signal(signal.SIGTERM)
        assert writer.wait(30) == 0
        wait_until(lambda: _writers(control)["w1"].state == "stopped", 15, "w1's last status")
        last = _writers(control)["w1"]
        assert (last.lag, last.stored) == (0, len(stored_kinds(events))), "it flushed what it held, then said so"
        assert control.view().gone_since_ns(last) == last.updated_ns
        assert not control.view().instances, "a writer is not counted as a collector (capacity)"
    finally:
        if writer.poll() is None:
            writer.kill()
        log.close()
        control.close()
        delete_topics(kafka_bootstrap, prefix)


def test_an_embedded_writer_publishes_beside_its_collector_under_a_key_of_its_own(kafka_bootstrap, server_store,
                                                                                 tmp_path):
    prefix = unique_name("fve")
    engine = Engine(_settings(prefix, kafka_bootstrap, server_store, tmp_path, "c1")).start()
    try:
        wait_until(lambda: [w.instance_id for w in engine.fleet_view().writers] == ["c1"]
                   and [c.instance_id for c in engine.fleet_view().instances] == ["c1"], 60,
                   f"c1's collector and writer statuses; seen {engine.fleet_view()}")
        [status] = engine.fleet_view().writers
        assert status.embedded and status.health == "ok"
        wait_until(lambda: len(engine.fleet_view().writers[0].partitions) == 2 * len(TopicSet(prefix).event_topics),
                   30, "the writer holding every data partition")
    finally:
        engine.stop()
        delete_topics(kafka_bootstrap, prefix)


def _status(name: str, updated_ns: int) -> bytes:
    return encode_status(InstanceStatus(name, f"{name}@1", "running", "ok", (), (), 4, False, False, 500, 0, (), {},
                                        None, 0, updated_ns))


def _alert(subject: str, updated_ns: int, rule: str = "heartbeat_missing") -> Alert:
    return Alert(rule, subject, "critical", "firing", "no heartbeat for 30 s", updated_ns, updated_ns,
                 fired_ns=updated_ns)


def _active(store) -> set[str]:
    return {a.subject for a in AlertStore(store).active()}


def test_the_rules_owner_resolves_a_departed_instances_alerts_once_audited_and_not_a_live_ones(
        kafka_bootstrap, server_store, tmp_path):
    """Before, a killed collector's alerts stayed active in storage until an instance with its id started."""
    prefix = unique_name("fvd")
    engine = Engine(_settings(prefix, kafka_bootstrap, server_store, tmp_path, "owner", stale_after_s=3)).start()
    statuses = KeyedTopicWriter(kafka_bootstrap, client_id=unique_name("test"))
    alerts = AlertStore(server_store)
    try:
        wait_until(lambda: engine.fleet_view().membership.rules_owner, 60, "owner evaluating the fleet-wide rules")
        now = time.time_ns()
        # "ghost" was SIGKILLed a minute ago: its last status says running, its alerts were active then.
        statuses.put(status_topic(prefix), {"ghost": _status("ghost", now - 60 * S), "live": _status("live", now)})
        alerts.save([_alert("ghost/level1", now - 70 * S), _alert("live/level1", now - 70 * S)])

        def live_still_publishing() -> set[str]:
            statuses.put(status_topic(prefix), {"live": _status("live", time.time_ns())})
            return _active(server_store)

        wait_until(lambda: "ghost/level1" not in live_still_publishing(), 30, "ghost's alert resolved")
        assert "live/level1" in _active(server_store), "a responsive instance's alert is its own to resolve"
        [resolved] = [a for a in alerts.history() if a.subject == "ghost/level1"]
        assert resolved.state == "resolved" and resolved.summary.startswith("instance left the fleet (silent since ")
        audit = [(r.action, r.subject, r.details) for r in alerts.audit_log()]
        assert ("alert_resolved", "heartbeat_missing/ghost/level1", "instance left the fleet") in audit

        # Back: while it publishes, its new alert stands; silent again, it is resolved again.
        back = time.time_ns()
        statuses.put(status_topic(prefix), {"ghost": _status("ghost", back)})
        alerts.save([_alert("ghost/level1", back - S)])
        time.sleep(1.5)  # three sweeps while ghost is responsive
        assert "ghost/level1" in _active(server_store)
        wait_until(lambda: "ghost/level1" not in live_still_publishing(), 30, "ghost's new alert resolved")
        assert [r.subject for r in alerts.audit_log() if r.action == "alert_resolved"] == [
            "heartbeat_missing/ghost/level1"] * 2
    finally:
        statuses.close()
        engine.stop()
        delete_topics(kafka_bootstrap, prefix)


def test_the_sweep_never_resolves_the_rules_owners_own_alerts_and_sweeps_a_departure_once(server_store):
    """Its previous run's "stopped" record is on the topic until its first status is read back."""
    from runtime.fleet_departures import DepartureSweep
    from runtime.fleet_status import FleetView, decode_status

    migrate(server_store)
    now = time.time_ns()
    old = [decode_status(name, _status(name, now - 60 * S)) for name in ("ghost", "owner")]
    view = FleetView(None, tuple(old), None, now, 3.0)
    notified: list[Alert] = []
    sweep = DepartureSweep(AlertStore(server_store), "owner", actor="ops", notify=notified.extend)
    AlertStore(server_store).save([_alert("ghost/level1", now - 70 * S), _alert("owner/level1", now - 70 * S)])
    assert [a.subject for a in sweep.sweep(view)] == ["ghost/level1"]
    assert [(a.subject, a.state) for a in notified] == [("ghost/level1", "resolved")]
    assert _active(server_store) == {"owner/level1"}
    assert sweep.sweep(view) == [], "once per departure"


def test_an_instance_back_from_a_kafka_outage_stores_its_still_active_alerts_again(
        private_kafka: PrivateService, chdb_store, tmp_path):  # noqa: F811 - fixture
    """Cut off from Kafka it looked departed: the rules owner (elsewhere) resolved its alerts in storage.
    Back in the group, what still holds here is active in storage again."""
    from runtime.fleet_alerts import resolve_departed

    settings = load_settings(
        data_dir=tmp_path, instance_id="steady",
        feed={"symbols": ["AAPL", "MSFT", "SPY", "QQQ"], "watch_limit": 2, "simulator_rate": 20},
        bus={"kind": "kafka"}, kafka={"bootstrap_servers": f"127.0.0.1:{private_kafka.port}",
                                      "session_timeout_ms": 6000, "message_timeout_ms": 5000},
        fleet={"status_interval_s": 0.5, "stale_after_s": 3},
        storage={"database": chdb_store.database}, monitoring={"enabled": False},
    )
    engine = Engine(settings, store=chdb_store).start()
    alerts = AlertStore(chdb_store)
    try:
        wait_until(lambda: "steady/feed" in _active(chdb_store), 60, "its own symbols_over_limit alert stored")
        private_kafka.down()
        wait_until(lambda: engine.status().fleet.membership.held, 60, "the group session lost")
        [mine] = [a for a in alerts.active() if a.subject == "steady/feed"]
        alerts.save(resolve_departed([mine], {"steady": mine.updated_ns}, time.time_ns()))  # as the owner does
        wait_until(lambda: "steady/feed" not in _active(chdb_store), 10, "the resolution stored")
        private_kafka.up()
        wait_until(lambda: "steady/feed" in _active(chdb_store), 90, "its alert active in storage again")
        [again] = [a for a in alerts.active() if a.subject == "steady/feed"]
        assert again.rule == "symbols_over_limit" and again.started_ns == mine.started_ns, "the same alert, not new"
    finally:
        engine.stop(drain_timeout_s=5)

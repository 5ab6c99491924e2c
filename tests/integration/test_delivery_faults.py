"""The delivery guarantee under faults, against the real broker and server (docs/DELIVERY.md).

Each test runs a live stream through producer -> Kafka -> writer -> ClickHouse, injects
one fault, and ends with the reconciliation: the stored (source, seq) keys equal the
generated ones and ``count()`` without FINAL equals the number generated. Outage tests
stop and start a PRIVATE broker or server (scripts/services.sh with its own directory
and free ports), so the shared services other tests use are never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka import Producer as RawProducer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from bus.base import TopicPartition
from bus.breaker import BreakerState
from bus.codec import encode
from bus.factory import build_producer, open_bus
from bus.producer import EventProducer
from bus.topics import TopicSet
from events import Event, Quote
from config import Settings
from storage.migrate import migrate
from storage.positions import StoredPositions
from storage.server_store import ClickHouseServerStore
from storage.store import Store
from storage.writer import CRASH_HOOK_ENV, build_writer
from tests.conftest import CLICKHOUSE_PORT
from tests.ports import free_port
from tests.integration.pipeline import (
    assert_stored_exactly_once,
    delete_topics,
    make_events,
    stored_count,
    stored_kinds,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
OUTAGE_S = 20.0


@dataclass
class PrivateService:
    """One service of scripts/services.sh in its own directory on free ports."""

    which: str
    env: dict[str, str]
    port: int

    def _run(self, action: str) -> None:
        result = subprocess.run(["bash", str(REPO / "scripts/services.sh"), action, self.which], env=self.env,
                                capture_output=True, text=True, timeout=150)
        if result.returncode:
            pytest.fail(f"services.sh {action} {self.which} failed:\n{result.stderr[-3000:]}", pytrace=False)

    def up(self) -> None:
        self._run("up")

    def down(self) -> None:
        self._run("down")


def _private(which: str, directory: Path, ports: dict[str, int], main_port: str) -> Iterator[PrivateService]:
    env = {**os.environ, "TICKOPS_SERVICES_DIR": str(directory), **{k: str(v) for k, v in ports.items()}}
    service = PrivateService(which, env, ports[main_port])
    service.up()
    try:
        yield service
    finally:
        service.down()


@pytest.fixture
def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateService]:
    ports = {"TICKOPS_KAFKA_PORT": free_port(), "TICKOPS_KAFKA_CONTROLLER_PORT": free_port()}
    yield from _private("kafka", tmp_path_factory.mktemp("private-kafka"), ports, "TICKOPS_KAFKA_PORT")


@pytest.fixture
def private_clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateService]:
    ports = {"TICKOPS_CH_TCP_PORT": free_port(), "TICKOPS_CH_HTTP_PORT": free_port(),
             "TICKOPS_CH_INTERSERVER_PORT": free_port()}
    yield from _private("clickhouse", tmp_path_factory.mktemp("private-clickhouse"), ports, "TICKOPS_CH_TCP_PORT")


@pytest.fixture
def prefix() -> str:
    return f"fault-{uuid.uuid4().hex[:10]}"


def pipeline_settings(tmp_path: Path, bootstrap: str, prefix: str, **storage: object) -> Settings:
    return Settings(
        data_dir=tmp_path, instance_id=prefix, bus={"kind": "kafka"},
        kafka={"bootstrap_servers": bootstrap, "topic_prefix": prefix, "partitions": 3,
               "consumer_group": f"{prefix}-writer", "session_timeout_ms": 6000},
        storage={"batch_rows": 1000, "retry_initial_ms": 50, "retry_max_ms": 1000, **storage},
    )


class Feed:
    """Publishes a deterministic stream at a steady rate from its own thread, like a collector."""

    def __init__(self, producer: EventProducer, rate_per_s: float, source: str = "feed-1") -> None:
        self._producer, self._rate, self._source = producer, rate_per_s, source
        self._events: list[Event] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-feed", daemon=True)

    def _run(self) -> None:
        chunk = 25
        started = time.monotonic()
        while not self._stop.is_set():
            events = make_events(chunk, self._source, first_seq=len(self._events) + 1)
            self._producer.publish_many(events)
            self._events.extend(events)
            self._stop.wait(max(0.0, started + len(self._events) / self._rate - time.monotonic()))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[Event]:
        self._stop.set()
        self._thread.join()
        return self._events


def drain_and_reconcile(store: Store, events: list[Event], producer: EventProducer, writer, timeout_s: float = 120) -> None:
    assert producer.flush(timeout_s), f"producer could not deliver everything: {producer.stats()}"
    wait_until(lambda: stored_count(store) >= len(stored_kinds(events)), timeout_s, "every event to be stored")
    time.sleep(1.0)  # a doubled insert would land now
    writer.stop()
    producer.close()
    assert producer.stats().dropped == 0
    assert_stored_exactly_once(store, events)


@pytest.mark.timeout(240)
def test_broker_stopped_for_20_s_mid_stream_spools_and_replays_each_event_once(private_kafka, server_store, tmp_path, prefix):
    migrate(server_store)
    settings = pipeline_settings(tmp_path, f"127.0.0.1:{private_kafka.port}", prefix)
    bus = open_bus(settings)
    producer = build_producer(settings, bus)
    producer.start()
    writer = build_writer(settings, bus, server_store)
    writer.start()
    feed = Feed(producer, rate_per_s=400)
    feed.start()
    wait_until(lambda: stored_count(server_store) > 300, 30, "the stream to reach storage")

    private_kafka.down()
    stopped = time.monotonic()
    wait_until(lambda: producer.stats().breaker.state is not BreakerState.CLOSED, 15, "the breaker to open")
    wait_until(lambda: producer.stats().spooled > 0, 10, "events to go to the spool")
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
    during = producer.stats()
    private_kafka.up()
    time.sleep(2.0)  # the stream keeps flowing through the recovery
    events = feed.stop()

    drain_and_reconcile(server_store, events, producer, writer)
    after = producer.stats()
    assert during.spooled > 0 and during.breaker.opened_total >= 1
    assert after.replayed >= during.spooled and after.spool.unsent == 0 and after.breaker.state is BreakerState.CLOSED


@pytest.mark.timeout(200)
def test_clickhouse_stopped_then_restarted_keeps_batches_and_stores_each_event_once(
    private_clickhouse, kafka_bootstrap, tmp_path, prefix
):
    store = ClickHouseServerStore(port=private_clickhouse.port, database=prefix.replace("-", "_"),
                                  connect_timeout_s=1.0, send_receive_timeout_s=5.0)
    migrate(store)
    settings = pipeline_settings(tmp_path, kafka_bootstrap, prefix)
    bus = open_bus(settings)
    producer = build_producer(settings, bus)
    producer.start()
    writer = build_writer(settings, bus, store)
    writer.start()
    feed = Feed(producer, rate_per_s=400)
    feed.start()
    try:
        wait_until(lambda: stored_count(store) > 300, 30, "the stream to reach storage")
        private_clickhouse.down()
        wait_until(lambda: writer.stats().retrying, 15, "the writer to hold a failed batch")
        time.sleep(5.0)
        during = writer.stats()
        assert during.write_failures > 0 and during.retrying
        private_clickhouse.up()
        time.sleep(1.0)
        events = feed.stop()
        drain_and_reconcile(store, events, producer, writer)
        assert not writer.stats().retrying
    finally:
        feed.stop()
        store.close()  # an open session would hold up the private server's shutdown
        delete_topics(kafka_bootstrap, prefix)


def committed_offsets(bootstrap: str, group: str, topics: TopicSet, partitions: int) -> dict[TopicPartition, int]:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        asked = [KafkaTopicPartition(t, p) for t in topics.event_topics for p in range(partitions)]
        return {TopicPartition(tp.topic, tp.partition): tp.offset for tp in reader.committed(asked, timeout=10)}
    finally:
        reader.close()


@pytest.mark.timeout(200)
@pytest.mark.parametrize("batched", [False, True], ids=["one-per-message", "batches"])
def test_writer_sigkilled_between_insert_and_commit_then_restarted_stores_each_event_once(
    kafka_bootstrap, server_store, tmp_path, prefix, batched
):
    migrate(server_store)
    settings = pipeline_settings(tmp_path, kafka_bootstrap, prefix)
    topics = TopicSet(prefix)
    producer = build_producer(settings, open_bus(settings))
    if batched:
        producer.poll(0)  # partition counts known: up to 200 events a message, cut across the writer's batches
    events = make_events(4000)
    producer.publish_many(events)
    assert producer.flush(30)
    producer.close()
    env = {
        **os.environ,
        "TICKOPS_DATA_DIR": str(tmp_path), "TICKOPS_INSTANCE_ID": f"{prefix}-writer",
        "TICKOPS_BUS__KIND": "kafka", "TICKOPS_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TICKOPS_KAFKA__TOPIC_PREFIX": prefix, "TICKOPS_KAFKA__PARTITIONS": "3",
        "TICKOPS_KAFKA__CONSUMER_GROUP": settings.kafka.consumer_group, "TICKOPS_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "TICKOPS_STORAGE__BACKEND": "server", "TICKOPS_STORAGE__PORT": str(CLICKHOUSE_PORT),
        "TICKOPS_STORAGE__DATABASE": server_store.database, "TICKOPS_STORAGE__BATCH_ROWS": "500",
    }
    logs = tmp_path / "writer.log"
    try:
        with open(logs, "ab") as log_file:
            doomed = subprocess.Popen([sys.executable, "-m", "storage.writer"], cwd=REPO, stderr=log_file,
                                      env={**env, CRASH_HOOK_ENV: "3"})
            assert doomed.wait(60) == -signal.SIGKILL, logs.read_text()[-3000:]

            stored_before = stored_count(server_store)
            committed = committed_offsets(kafka_bootstrap, settings.kafka.consumer_group, topics, 3)
            stored_next = StoredPositions(server_store, topics).next_offsets(committed)
            assert 0 < stored_before < len(stored_kinds(events))
            assert any(offset > max(committed[tp], 0) for tp, offset in stored_next.items()), (
                "the kill should leave rows stored beyond the committed offsets"
            )

            successor = subprocess.Popen([sys.executable, "-m", "storage.writer"], cwd=REPO, stderr=log_file, env=env)
            try:
                wait_until(lambda: stored_count(server_store) >= len(stored_kinds(events)), 60, "the rest to be stored")
                time.sleep(1.0)
            finally:
                successor.send_signal(signal.SIGTERM)
                assert successor.wait(30) == 0, logs.read_text()[-3000:]
        assert_stored_exactly_once(server_store, events)
    finally:
        delete_topics(kafka_bootstrap, prefix)


@pytest.mark.timeout(90)
def test_a_burst_of_poison_messages_goes_to_the_dead_letter_topic_and_the_rest_is_stored(
    kafka_bootstrap, server_store, tmp_path, prefix
):
    migrate(server_store)
    settings = pipeline_settings(tmp_path, kafka_bootstrap, prefix)
    topics = TopicSet(prefix)
    bus = open_bus(settings)
    producer = build_producer(settings, bus)
    events = make_events(3000)
    misrouted = Quote(symbol="AAPL", bid=1.0, bid_size=1, ask=2.0, ask_size=1, ts_ns=1, source="x", seq=1)
    poison = [b"", b"\x01", b"\x09" + encode(events[0])[1:], b"\x01\x93\x01\x02\x03", b"\x01\xc1\xc1",
              encode(events[0])[:-4], encode(misrouted)] * 10
    producer.publish_many(events[:1500])
    assert producer.flush(30)
    raw = RawProducer({"bootstrap.servers": kafka_bootstrap})
    for index, payload in enumerate(poison):  # into live topics, on the keys real symbols use
        topic = topics.trades if payload == encode(misrouted) else (topics.trades, topics.quotes, topics.status)[index % 3]
        raw.produce(topic, key=b"AAPL" if index % 2 else b"MSFT", value=payload)
    assert raw.flush(30) == 0
    producer.publish_many(events[1500:])
    assert producer.flush(30)
    producer.close()

    writer = build_writer(settings, bus, server_store)
    writer.start()
    try:
        wait_until(lambda: writer.stats().consumed >= len(events) + len(poison)
                   and stored_count(server_store) >= len(stored_kinds(events)), 60, "every message to be handled")
        time.sleep(0.5)
    finally:
        writer.stop()
    assert writer.stats().dead_lettered == len(poison)
    assert_stored_exactly_once(server_store, events)

    reader = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"{prefix}-dlq",
                       "auto.offset.reset": "earliest", "enable.auto.commit": False})
    reader.subscribe([topics.deadletter])
    letters = []
    deadline = time.monotonic() + 30
    while len(letters) < len(poison) and time.monotonic() < deadline:
        message = reader.poll(0.5)
        if message is not None and message.error() is None:
            letters.append(message)
    time.sleep(1.0)
    extra = reader.poll(1.0)
    reader.close()
    delete_topics(kafka_bootstrap, prefix)
    assert extra is None, "more dead letters than poison messages"
    assert sorted(m.value() or b"" for m in letters) == sorted(poison)
    reasons = [dict(m.headers())["tickops.reason"].decode() for m in letters]
    assert sum(r.startswith("misrouted") for r in reasons) == 10
    assert all(dict(m.headers())["tickops.source_topic"].decode() in topics.event_topics for m in letters)

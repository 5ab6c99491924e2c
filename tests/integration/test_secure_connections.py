"""TLS and SASL to Kafka, TLS plus a password to ClickHouse: real servers that accept nothing else.

A private broker whose only client listener is SASL_SSL, and a private ClickHouse 18.16 whose
only native port is TLS with a password user (tests/integration/_secure_services.py). The
settings reach every client (producer, admin, consumer; the server store's pool), the wrong
CA or password is refused, and no secret shows in the settings' redacted view or a repr.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.base import BusError
from bus.factory import build_producer, open_bus
from bus.topics import TopicSet
from config import Settings, load_settings
from storage.factory import open_store
from storage.migrate import migrate
from storage.store import StorageError, StorageUnavailable
from tests.integration._secure_services import (
    CLICKHOUSE_PASSWORD,
    CLICKHOUSE_USER,
    KAFKA_PASSWORD,
    KAFKA_USER,
    Certificates,
    make_certificates,
    sasl_ssl_kafka,
    tls_clickhouse,
)
from tests.integration.pipeline import make_events, stored_kinds

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[str]:
    with sasl_ssl_kafka(tmp_path_factory.mktemp("sasl-kafka"), certs) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def secure_clickhouse(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[int]:
    with tls_clickhouse(tmp_path_factory.mktemp("tls-clickhouse"), certs) as port:
        yield port


def _kafka_settings(tmp_path: Path, bootstrap: str, ca: Path, password: str = KAFKA_PASSWORD) -> Settings:
    return load_settings(data_dir=tmp_path, bus={"kind": "kafka"}, kafka={
        "bootstrap_servers": bootstrap, "topic_prefix": f"sec-{uuid.uuid4().hex[:8]}", "partitions": 1,
        "security_protocol": "SASL_SSL", "ssl_ca_location": str(ca), "sasl_mechanism": "PLAIN",
        "sasl_username": KAFKA_USER, "sasl_password": password})


def _no_secret_shown(settings: Settings, *objects: object) -> None:
    shown = json.dumps(settings.redacted()) + repr(settings) + "".join(repr(o) for o in objects)
    assert KAFKA_PASSWORD not in shown and CLICKHOUSE_PASSWORD not in shown


def _ready(bus, timeout_s: float = 60) -> None:
    """The broker's SASL_SSL listener opens before the broker serves metadata: wait for the first answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            bus.ensure_topics([], 1)
            return
        except BusError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.mark.timeout(180)
def test_the_bus_publishes_and_consumes_over_sasl_ssl_with_the_configured_credentials(secure_kafka, certs, tmp_path):
    settings = _kafka_settings(tmp_path, secure_kafka, certs.ca)
    bus = open_bus(settings)
    _ready(bus)
    producer = build_producer(settings, bus)  # creates the topics through the admin client
    events = stored_kinds(make_events(300))
    producer.publish_many(events)
    assert producer.flush(30)
    assert producer.stats().delivered == len(events) and producer.stats().spooled == 0
    producer.close()
    consumer = bus.consumer(f"{settings.kafka.topic_prefix}-reader")
    consumer.subscribe(list(TopicSet(settings.kafka.topic_prefix).event_topics), lambda starts: {}, lambda tps: None)
    seen: list = []
    deadline = time.monotonic() + 60
    while len(seen) < len(events) and time.monotonic() < deadline:
        seen.extend(consumer.poll_batch(500, 0.5))
    consumer.close()
    assert sorted(r.event.seq for r in seen) == sorted(e.seq for e in events)
    _no_secret_shown(settings, bus, producer)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("what", ["wrong password", "untrusted CA"])
def test_the_broker_refuses_a_wrong_password_and_the_client_an_untrusted_certificate(secure_kafka, certs, tmp_path,
                                                                                     what):
    settings = (_kafka_settings(tmp_path, secure_kafka, certs.ca, password="not-the-password")
                if what == "wrong password" else _kafka_settings(tmp_path, secure_kafka, certs.other_ca))
    _ready(open_bus(_kafka_settings(tmp_path, secure_kafka, certs.ca)))
    with pytest.raises(BusError):
        open_bus(settings).ensure_topics([settings.kafka.topic_prefix + ".x"], 1)


def _storage_settings(tmp_path: Path, port: int, **storage: object) -> Settings:
    return load_settings(data_dir=tmp_path, storage={
        "backend": "server", "port": port, "database": f"sec_{uuid.uuid4().hex[:8]}", "user": CLICKHOUSE_USER,
        "password": CLICKHOUSE_PASSWORD, "secure": True, **storage})


@pytest.mark.timeout(120)
def test_storage_migrates_writes_and_reads_over_tls_with_a_password(secure_clickhouse, certs, tmp_path):
    settings = _storage_settings(tmp_path, secure_clickhouse, ca_certs=str(certs.ca))
    store = open_store(settings)
    try:
        migrate(store)
        store.insert_columns("symbols", ["symbol", "level1", "depth", "silent_after_s", "updated_ns", "updated_by"],
                             [["AAPL"], [1], [0], [0.0], [1], ["anna"]])
        assert store.query(f"SELECT symbol, updated_by FROM {store.table('symbols')}") == [("AAPL", "anna")]
        _no_secret_shown(settings, store)
    finally:
        store.execute(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


@pytest.mark.timeout(120)
def test_storage_refuses_an_untrusted_certificate_unless_told_not_to_verify_and_a_wrong_password(
        secure_clickhouse, certs, tmp_path):
    untrusted = open_store(_storage_settings(tmp_path, secure_clickhouse, ca_certs=str(certs.other_ca)))
    with pytest.raises(StorageUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        untrusted.query("SELECT 1")
    untrusted.close()
    unverified = open_store(_storage_settings(tmp_path, secure_clickhouse, verify=False))
    assert unverified.query("SELECT 1") == [(1,)]
    unverified.close()
    wrong = open_store(_storage_settings(tmp_path, secure_clickhouse, ca_certs=str(certs.ca), password="nope"))
    with pytest.raises(StorageError, match="Wrong password"):
        wrong.query("SELECT 1")
    wrong.close()
    plain = open_store(_storage_settings(tmp_path, secure_clickhouse, secure=False))
    with pytest.raises(StorageUnavailable):  # the server speaks TLS only
        plain.query("SELECT 1")
    plain.close()

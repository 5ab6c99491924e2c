"""On the real Kafka broker: one event the producer cannot encode is dead-lettered, and the rest of the read
is delivered in order."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Consumer

from bus.codec import decode
from bus.factory import build_producer
from events import Trade
from tests.integration.test_kafka_bus import kafka, settings_for, topics  # noqa: F401 - shared fixtures

pytestmark = pytest.mark.kafka


def read_topic(bootstrap: str, topic: str, count: int, timeout_s: float = 30.0) -> list:
    """The first ``count`` raw messages of ``topic`` (every partition, from the start)."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader",
                       "auto.offset.reset": "earliest", "enable.auto.commit": False})
    reader.subscribe([topic])
    messages: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < count and time.monotonic() < deadline:
            message = reader.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        reader.close()
    return messages


@pytest.mark.timeout(120)
def test_an_event_kafka_cannot_carry_is_dead_lettered_and_the_rest_of_the_read_is_delivered_in_order(
    kafka, kafka_bootstrap, topics, tmp_path  # noqa: F811
):
    producer = build_producer(settings_for(tmp_path, kafka_bootstrap, topics), kafka)
    read = [Trade(symbol="AAPL", price=100.0 + i, size=100, ts_ns=i, source="s", seq=i, recv_ns=1) for i in range(1, 21)]
    read[9] = Trade(symbol="AAPL", price=109.0, size=99999999999999999999, ts_ns=10, source="s", seq=10, recv_ns=1)
    producer.publish_many(read)
    assert producer.flush(30)
    stats = producer.stats()
    producer.close()
    assert (stats.published, stats.rejected, stats.delivered, stats.failed, stats.dropped) == (20, 1, 20, 0, 0)

    delivered = [decode(message.value()) for message in read_topic(kafka_bootstrap, topics.trades, 20, timeout_s=15)]
    assert [event.seq for event in delivered] == [event.seq for event in read if event.seq != 10]  # one key: in order
    (letter,) = read_topic(kafka_bootstrap, topics.deadletter, 1)
    body = json.loads(letter.value())
    assert letter.key() == b"AAPL" and body["kind"] == "Trade" and body["rejected_by"] == "producer"
    assert body["fields"]["seq"] == 10 and body["fields"]["size"] == 99999999999999999999
    assert "OverflowError" in body["reason"]

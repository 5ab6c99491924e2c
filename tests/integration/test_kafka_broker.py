"""The real Kafka broker: what we produce to a fresh topic comes back, in order per key."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer

pytestmark = pytest.mark.kafka


@pytest.mark.timeout(60)
def test_messages_produced_to_a_fresh_topic_are_consumed_back_in_order_per_key(kafka_bootstrap, kafka_topic):
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all"})
    delivered: list[tuple[int, int]] = []

    def on_delivery(err, msg) -> None:
        assert err is None, err
        delivered.append((msg.partition(), msg.offset()))

    sent = {f"SYM{k}": [f"SYM{k}-{i}".encode() for i in range(50)] for k in range(4)}
    for key, values in sent.items():
        for value in values:
            producer.produce(kafka_topic, key=key.encode(), value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert len(delivered) == 200

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"{kafka_topic}-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([kafka_topic])
    received: dict[str, list[bytes]] = {}
    try:
        while sum(map(len, received.values())) < 200:
            msg = consumer.poll(10)
            assert msg is not None, "broker returned nothing for 10 s"
            assert msg.error() is None, msg.error()
            received.setdefault(msg.key().decode(), []).append(msg.value())
    finally:
        consumer.close()
    assert received == sent

"""Read Kafka partitions between two offsets with a consumer that never commits.

Reconciliation (what the topics hold, counted) and the restore from Kafka (what the topics
hold, stored) both need the same read: every partition of some topics, from a start offset
to the high watermark seen when the read began, with a group id of its own so that no
writer's committed offsets move and the broker's group coordinator never waits on it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition


class KafkaReadError(RuntimeError):
    """A topic cannot be read (missing, broker unreachable, an error on a partition)."""


@dataclass
class PartitionRange:
    topic: str
    partition: int
    low: int
    high: int
    start: int

    @property
    def messages(self) -> int:
        return self.high - self.start


def throwaway_consumer(bootstrap: str, logger: logging.Logger, purpose: str,
                       security: Mapping[str, str] | None = None) -> Consumer:
    """A consumer in a group of its own (``tickops-<purpose>-<random>``) that never commits;
    ``security``: librdkafka's TLS/SASL settings (bus/security.py)."""
    return Consumer({
        **(security or {}),
        "bootstrap.servers": bootstrap,
        "group.id": f"tickops-{purpose}-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "logger": logger,
    })


def partition_ranges(consumer: Consumer, topics: Sequence[str],
                     start_offsets: dict[tuple[str, int], int]) -> list[PartitionRange]:
    """Every partition of ``topics`` with its watermarks now; reading starts at ``start_offsets`` or the low one."""
    ranges: list[PartitionRange] = []
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=10)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise KafkaReadError(f"Kafka topic {topic!r} does not exist ({described.error if described else 'absent'})")
        for partition in sorted(described.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            start = min(max(start_offsets.get((topic, partition), low), low), high)
            ranges.append(PartitionRange(topic, partition, low, high, start))
    return ranges


def read_ranges(consumer: Consumer, ranges: Sequence[PartitionRange], idle_timeout_s: float) -> Iterator[list[Message]]:
    """Batches of the messages in [start, high) of each range, in partition order; raises KafkaReadError
    on a partition error or when nothing arrives for ``idle_timeout_s`` while a range is unfinished."""
    remaining = {(r.topic, r.partition): r.high for r in ranges if r.start < r.high}
    consumer.assign([TopicPartition(r.topic, r.partition, r.start) for r in ranges if r.start < r.high])
    deadline = time.monotonic() + idle_timeout_s
    while remaining:
        messages = consumer.consume(num_messages=10_000, timeout=0.5)
        if messages:
            deadline = time.monotonic() + idle_timeout_s
        elif time.monotonic() > deadline:
            raise KafkaReadError(
                f"Kafka delivered nothing for {idle_timeout_s:.0f} s with {len(remaining)} partition(s) "
                f"not read to their end: {sorted(remaining)}"
            )
        wanted: list[Message] = []
        for message in messages:
            where = (message.topic(), message.partition())
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    remaining.pop(where, None)
                    continue
                raise KafkaReadError(f"Kafka error on {where}: {error}")
            high = remaining.get(where)
            if high is None or message.offset() >= high:
                continue
            wanted.append(message)
            if message.offset() >= high - 1:
                del remaining[where]
        if wanted:
            yield wanted

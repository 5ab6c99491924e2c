"""Build the configured bus and the event producer from settings: the one place that knows both buses."""

from __future__ import annotations

import logging
from pathlib import Path

from bus.base import Bus, BusError
from bus.breaker import CircuitBreaker
from bus.producer import EventProducer
from bus.security import librdkafka_security
from bus.spool import Spool
from bus.topics import Retention, TopicSet
from config import Settings

log = logging.getLogger(__name__)


def open_bus(settings: Settings) -> Bus:
    """``bus.kind=kafka``: the broker in ``kafka.bootstrap_servers``; else an in-process :class:`MemoryBus`
    (share the returned object between the producer and the writer)."""
    kafka = settings.kafka
    retention = {
        TopicSet(kafka.topic_prefix).deadletter: Retention(
            ms=kafka.deadletter_retention_ms, partition_bytes=kafka.deadletter_retention_mb << 20
        )
    }
    if settings.bus.kind == "kafka":
        from bus.kafka import KafkaBus

        return KafkaBus(
            kafka.bootstrap_servers,
            replication_factor=kafka.replication_factor,
            compression=kafka.compression,
            linger_ms=kafka.linger_ms,
            message_timeout_ms=kafka.message_timeout_ms,
            queue_max_messages=kafka.queue_max_messages,
            session_timeout_ms=kafka.session_timeout_ms,
            client_id=settings.instance_id,
            retention=retention,
            security=librdkafka_security(kafka),
        )
    from bus.memory import MemoryBus

    return MemoryBus(capacity=settings.bus.memory_capacity, max_bytes=settings.bus.memory_max_mb << 20,
                     retention=retention)


def spool_directory(settings: Settings) -> Path:
    """One spool per instance: two producers must never share one (the spool locks it)."""
    return settings.data_dir / "spool" / settings.instance_id


def build_producer(settings: Settings, bus: Bus) -> EventProducer:
    """An :class:`EventProducer` on ``bus`` with its spool and breaker; creates the topics when it can.

    A broker that is down at start is not an error: the breaker starts open and events
    go to the spool until a probe (which also creates missing topics) succeeds.
    """
    kafka = settings.kafka
    topics = TopicSet(kafka.topic_prefix)
    spool = Spool(
        spool_directory(settings),
        budget_bytes=kafka.spool_budget_mb << 20,
        segment_bytes=kafka.spool_segment_mb << 20,
        fsync_interval_s=kafka.spool_fsync_ms / 1000,
    )
    breaker = CircuitBreaker(
        f"producer:{bus!r}", reset_timeout_s=kafka.breaker_reset_s, max_reset_timeout_s=kafka.breaker_reset_max_s
    )

    def probe() -> None:
        bus.ensure_topics(topics.all_topics, kafka.partitions)

    producer = EventProducer(bus.producer(), topics, spool, breaker, probe=probe,
                             events_per_message=settings.bus.events_per_message)
    try:
        probe()
    except BusError as exc:
        breaker.record_failure()
        log.warning("bus unreachable at start; events go to the spool until it answers",
                    extra={"bus": repr(bus), "error": str(exc)})
    return producer

"""Kafka behind the bus interfaces (confluent-kafka / librdkafka).

Producer: ``enable.idempotence`` + ``acks=all`` (librdkafka retries without duplicates or
reordering), compression and a small linger; delivery reports go to the caller's
callback, "all brokers down" and fatal errors to its error listener (the circuit
breaker). A fatal error (the idempotent producer lost its sequence state) makes the
wrapper purge the old handle into failed delivery reports (the caller spools them) and
start a fresh one.

Consumer: a group member with auto-commit and auto offset store off; assignment is
eager (``range``), so a revoke always covers the whole assignment and the writer can
drop its buffer wholesale. On assignment the caller is told each partition's committed
offset and log end and chooses where to start, which is how the writer resumes right
after what storage holds. librdkafka's own log lines go to the ``bus.kafka.librdkafka``
logger.

Topics with a :class:`Retention` (the dead letters, which nobody consumes) are created
with ``retention.ms``/``retention.bytes``; where such a topic already exists with other
values, the first :meth:`KafkaBus.ensure_topics` of the process alters them, so a limit
changed in the settings reaches a topic created long ago.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from bus.base import (
    AssignHandler,
    Bus,
    BusConsumer,
    BusError,
    BusQueueFull,
    BusUnavailable,
    DeliveryCallback,
    DeliveryFailed,
    MessageProducer,
    PartitionStart,
    Record,
    RevokeHandler,
    TopicPartition,
    to_records,
)
from bus.topics import Retention

log = logging.getLogger(__name__)
_WATERMARK_ATTEMPTS = 10


class RepeatThrottle(logging.Filter):
    """librdkafka logs every failed reconnect (dozens a second per client while a broker is down):
    pass the first line of each (facility, client) per ``interval_s`` and report how many were held back."""

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[object, float] = {}
        self._held: dict[object, int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        key = args[:2] if isinstance(args, tuple) and len(args) >= 2 else record.msg
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            record.suppressed = held
        return True


_LIBRDKAFKA_LOG = logging.getLogger("bus.kafka.librdkafka")
_LIBRDKAFKA_LOG.addFilter(RepeatThrottle())


class KafkaBus(Bus):
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        replication_factor: int = 1,
        compression: str = "lz4",
        linger_ms: int = 5,
        message_timeout_ms: int = 60_000,
        queue_max_messages: int = 100_000,
        session_timeout_ms: int = 10_000,
        admin_timeout_s: float = 3.0,
        client_id: str = "tickops",
        retention: Mapping[str, Retention] | None = None,
        security: Mapping[str, str] | None = None,
    ) -> None:
        """``security``: librdkafka's TLS/SASL settings for every client (bus/security.py); may hold a password."""
        self.bootstrap_servers = bootstrap_servers
        self._security = dict(security or {})
        self._retention = dict(retention or {})
        self._retention_checked: set[str] = set()  # topics whose retention this process has verified
        self._replication_factor = replication_factor
        self._admin_timeout_s = admin_timeout_s
        self._session_timeout_ms = session_timeout_ms
        self._client_id = client_id
        self._producer_config: dict[str, Any] = {
            **self._security,
            "bootstrap.servers": bootstrap_servers,
            "client.id": f"{client_id}-producer",
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": compression,
            "linger.ms": linger_ms,
            "message.timeout.ms": message_timeout_ms,
            "queue.buffering.max.messages": queue_max_messages,
            # CRC-32 of the key modulo the partition count: the producer groups events into batch messages
            # by that same function (bus/producer.py), so it is pinned rather than left to the default.
            "partitioner": "consistent_random",
        }
        self._admin_client: AdminClient | None = None

    def __repr__(self) -> str:
        return f"KafkaBus({self.bootstrap_servers})"

    def _admin(self) -> AdminClient:
        if self._admin_client is None:
            self._admin_client = AdminClient(
                {**self._security, "bootstrap.servers": self.bootstrap_servers,
                 "client.id": f"{self._client_id}-admin", "logger": _LIBRDKAFKA_LOG}
            )
        return self._admin_client

    def ensure_topics(self, topics: Sequence[str], partitions: int) -> list[str]:
        admin = self._admin()
        try:
            existing = admin.list_topics(timeout=self._admin_timeout_s).topics
        except KafkaException as exc:
            raise BusUnavailable(f"Kafka at {self.bootstrap_servers} did not answer a metadata request: {exc}") from exc
        missing = [topic for topic in topics if topic not in existing]
        self._check_retention(admin, [t for t in topics if t in existing and t in self._retention
                                      and t not in self._retention_checked])
        if not missing:
            return []
        futures = admin.create_topics(
            [
                NewTopic(topic, num_partitions=partitions, replication_factor=self._replication_factor,
                         config=self._retention[topic].kafka_configs() if topic in self._retention else {})
                for topic in missing
            ],
            operation_timeout=self._admin_timeout_s,
        )
        created: list[str] = []
        for topic, future in futures.items():
            try:
                future.result(timeout=self._admin_timeout_s * 3)
            except KafkaException as exc:
                if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # another process created it first
                raise BusUnavailable(f"could not create topic {topic!r} on {self.bootstrap_servers}: {exc}") from exc
            created.append(topic)
            self._retention_checked.add(topic)
        log.info("topics created", extra={"topics": ",".join(created), "partitions": partitions,
                                          "replication_factor": self._replication_factor})
        return created

    def _check_retention(self, admin: AdminClient, topics: Sequence[str]) -> None:
        """Bring existing topics' retention configs to the settings.

        A failure here (a broker policy or ACL refusing the change, a timeout) is logged and tried
        again on the next call, but never blocks the pipeline: an untrimmed dead-letter topic costs
        broker disk, refusing to publish would cost events.
        """
        for topic in topics:
            wanted = self._retention[topic].kafka_configs()
            resource = ConfigResource(ResourceType.TOPIC, topic)
            try:
                current = admin.describe_configs([resource], request_timeout=self._admin_timeout_s)[resource].result(
                    timeout=self._admin_timeout_s * 3
                )
                differing = {name: value for name, value in wanted.items()
                             if name not in current or current[name].value != value}
                if differing:
                    change = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
                        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                        for name, value in differing.items()
                    ])
                    admin.incremental_alter_configs([change], request_timeout=self._admin_timeout_s)[change].result(
                        timeout=self._admin_timeout_s * 3
                    )
                    log.info("topic retention updated", extra={"topic": topic, "changes": ", ".join(
                        f"{name}={value} (was {current[name].value if name in current else 'unset'})"
                        for name, value in differing.items()
                    )})
            except (KafkaException, TimeoutError) as exc:
                log.error("could not check or set a topic's retention; its oldest messages may never be deleted "
                          "(set them with kafka-configs.sh --alter, or allow this client to alter topic configs)",
                          extra={"topic": topic, "wanted": ", ".join(f"{n}={v}" for n, v in wanted.items()),
                                 "error": str(exc)})
                continue
            self._retention_checked.add(topic)

    def producer(self) -> KafkaMessageProducer:
        return KafkaMessageProducer(self._producer_config)

    def consumer(self, group_id: str) -> KafkaEventConsumer:
        return KafkaEventConsumer(
            {
                **self._security,
                "bootstrap.servers": self.bootstrap_servers,
                "client.id": f"{self._client_id}-consumer",
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "range",  # eager: a revoke covers the whole assignment
                "session.timeout.ms": self._session_timeout_ms,
                "heartbeat.interval.ms": max(1000, self._session_timeout_ms // 5),
            }
        )


def _failure(error: KafkaError) -> DeliveryFailed:
    return DeliveryFailed(f"{error.name()}: {error.str()}")


class KafkaMessageProducer(MessageProducer):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = dict(config)
        self._listener: Callable[[BusError], None] | None = None
        self._fatal = False
        self._producer = self._create()

    def _create(self) -> Producer:
        return Producer({**self._config, "error_cb": self._on_error, "logger": _LIBRDKAFKA_LOG})

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = True
            log.critical("Kafka producer fatal error; replacing the producer", extra={"error": error.str()})
        down = error.fatal() or error.code() == KafkaError._ALL_BROKERS_DOWN
        if not down:
            log.warning("Kafka producer error", extra={"error": error.str(), "code": error.name()})
        if self._listener is not None:
            self._listener((BusUnavailable if down else BusError)(f"{error.name()}: {error.str()}"))

    def set_error_listener(self, listener: Callable[[BusError], None]) -> None:
        self._listener = listener

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        on_delivery: DeliveryCallback,
        headers: Mapping[str, bytes] | None = None,
    ) -> None:
        if self._fatal:
            raise BusUnavailable("Kafka producer is being replaced after a fatal error")

        def report(error: KafkaError | None, message: Any) -> None:
            on_delivery(None if error is None else _failure(error), message.partition(), message.offset())

        try:
            self._producer.produce(
                topic, value=value, key=key, headers=list(headers.items()) if headers else None, on_delivery=report
            )
        except BufferError as exc:
            raise BusQueueFull(f"librdkafka queue full: {exc}") from exc
        except KafkaException as exc:
            raise BusUnavailable(f"Kafka refused the message: {exc}") from exc

    def poll(self, timeout_s: float = 0.0) -> int:
        served = self._producer.poll(timeout_s)
        if self._fatal:
            self._fail_pending()
            self._producer, self._fatal = self._create(), False
        return served

    def _fail_pending(self) -> None:
        """Turn everything the current handle still holds into failed delivery reports."""
        self._producer.purge(in_queue=True, in_flight=True, blocking=True)
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> int:
        return self._producer.flush(timeout_s)

    def in_flight(self) -> int:
        return len(self._producer)

    def partitions(self, topic: str, timeout_s: float) -> int | None:
        try:
            described = self._producer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        except KafkaException:
            return None
        if described is None or described.error is not None or not described.partitions:
            return None
        return len(described.partitions)

    def close(self, timeout_s: float = 10.0) -> None:
        if self._producer.flush(timeout_s):
            self._fail_pending()


class KafkaEventConsumer(BusConsumer):
    def __init__(self, config: Mapping[str, Any]) -> None:
        self._consumer = Consumer({**config, "error_cb": self._on_error, "logger": _LIBRDKAFKA_LOG})
        self._on_assign: AssignHandler | None = None
        self._on_revoke: RevokeHandler | None = None

    def _on_error(self, error: KafkaError) -> None:
        log.warning("Kafka consumer error", extra={"error": error.str(), "code": error.name(), "fatal": error.fatal()})

    def subscribe(self, topics: Sequence[str], on_assign: AssignHandler, on_revoke: RevokeHandler) -> None:
        self._on_assign, self._on_revoke = on_assign, on_revoke
        self._consumer.subscribe(list(topics), on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked)

    def _assigned(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        tps = [TopicPartition(p.topic, p.partition) for p in partitions]
        committed = self._committed(partitions)
        ranges = self._ranges(partitions)
        known = {tp: PartitionStart(committed.get(tp), *ranges.get(tp, (None, None))) for tp in tps}
        starts = self._on_assign(known) if self._on_assign else {}
        for partition, tp in zip(partitions, tps, strict=True):
            if tp in starts:
                partition.offset = starts[tp]
        consumer.assign(partitions)
        consumer.resume(partitions)  # a new assignment reads; a pause belonged to the revoked one

    def _committed(self, partitions: list[KafkaTopicPartition]) -> dict[TopicPartition, int]:
        try:
            result = self._consumer.committed(partitions, timeout=10)
        except KafkaException as exc:
            log.warning("could not read committed offsets; starting from storage positions", extra={"error": str(exc)})
            return {}
        return {TopicPartition(p.topic, p.partition): p.offset for p in result if p.offset >= 0}

    def _ranges(self, partitions: list[KafkaTopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        """(low, high) watermarks; a just-created partition may need a moment to elect its leader."""
        ranges: dict[TopicPartition, tuple[int, int]] = {}
        for p in partitions:
            for attempt in range(_WATERMARK_ATTEMPTS):
                try:
                    low, high = self._consumer.get_watermark_offsets(KafkaTopicPartition(p.topic, p.partition), timeout=5)
                except KafkaException as exc:
                    if attempt == _WATERMARK_ATTEMPTS - 1:
                        log.warning("could not read a partition's offset range",
                                    extra={"partition": f"{p.topic}[{p.partition}]", "error": str(exc)})
                    time.sleep(0.1)
                    continue
                ranges[TopicPartition(p.topic, p.partition)] = (low, high)
                break
        return ranges

    def _revoked(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        if self._on_revoke is not None:
            self._on_revoke([TopicPartition(p.topic, p.partition) for p in partitions])

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        """Wait for the first message only, then take what is already fetched: ``consume(n, timeout)``
        alone would hold a lone message for the whole timeout, adding it to every event's latency."""
        try:
            first = self._consumer.poll(timeout_s)
            messages = [] if first is None else [first]
            if first is not None and max_records > 1:
                messages += self._consumer.consume(num_messages=max_records - 1, timeout=0)
        except KafkaException as exc:
            raise BusUnavailable(f"Kafka consume failed: {exc}") from exc
        records: list[Record] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise BusUnavailable(f"Kafka consumer fatal error: {error.str()}")
                log.warning("Kafka consume error", extra={"error": error.str(), "code": error.name()})
                continue
            records += to_records(message.topic(), message.partition(), message.offset(), message.key(), message.value())
        return records

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            self._consumer.commit(
                offsets=[KafkaTopicPartition(tp.topic, tp.partition, offset) for tp, offset in offsets.items()],
                asynchronous=False,
            )
        except KafkaException as exc:
            raise BusError(f"offset commit failed: {exc}") from exc

    def pause(self) -> None:
        self._consumer.pause(self._consumer.assignment())

    def resume(self) -> None:
        self._consumer.resume(self._consumer.assignment())

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(p.topic, p.partition) for p in self._consumer.assignment()]

    def high_watermarks(self) -> dict[TopicPartition, int]:
        marks: dict[TopicPartition, int] = {}
        for p in self._consumer.assignment():
            watermarks = self._consumer.get_watermark_offsets(p, cached=True)
            if watermarks and watermarks[1] >= 0:
                marks[TopicPartition(p.topic, p.partition)] = watermarks[1]
        return marks

    def close(self) -> None:
        self._consumer.close()

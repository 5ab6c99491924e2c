"""Compacted, keyed Kafka topics used as small replicated tables (the fleet's desired symbols and statuses).

A record's key names a row and its value is the row (None, a tombstone, deletes it). Compaction keeps
the latest record of each key, so reading a partition from its beginning to its end gives that
partition's current table, and reading on keeps it current. Three views of such a topic:

    KeyedTopicWriter   put(): write and wait for the broker's acknowledgement (an operator's change: the
                       caller must know whether it landed); send(): write without waiting (statuses)
    KeyedTopicReader   every partition, outside any group: the whole table (dashboard, capacity, seeding)
    KeyedTopicMember   a consumer-group member: only the partitions the group assigns it, each read from
                       its beginning and served once read to its end (a collector's share of the symbols)

Keys go to partitions by librdkafka's ``murmur2_random`` partitioner, the Java client's, so a record that
any Kafka tool writes with the same key lands in the same partition as ours (one key, one partition, one
latest value); another partitioner would split a key's history over two partitions.

The member uses the cooperative-sticky assignor: a join, leave or crash moves only the partitions that
must move, and the other members keep serving theirs throughout. When the group session is lost (the
coordinator unreachable for the session timeout), its partitions are *held*, still served, until the
next assignment: while Kafka is down nobody can take them over, and a collector that stopped watching
then would lose data for nothing. Held partitions the next assignment gives to another member are
dropped then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bus.base import BusUnavailable
from bus.kafka import RepeatThrottle

log = logging.getLogger(__name__)
_CLIENT_ERRORS = logging.getLogger(f"{__name__}.client")
_CLIENT_ERRORS.addFilter(RepeatThrottle(30.0))  # a broker that is down makes every client report it every second
_LIBRDKAFKA_LOG = logging.getLogger("bus.kafka.librdkafka")
PARTITIONER = "murmur2_random"
_MAX_RECORDS = 1000


def _client_error(error: KafkaError) -> None:
    _CLIENT_ERRORS.warning("Kafka client error on a keyed topic", extra={"error": error.str(), "code": error.name()})


def ensure_compacted_topic(bootstrap_servers: str, topic: str, partitions: int, *,
                           configs: Mapping[str, str] | None = None, replication_factor: int = 1,
                           timeout_s: float = 5.0, security: Mapping[str, str] | None = None) -> int:
    """Create ``topic`` (compacted, ``partitions`` partitions) unless it exists; return its partition count.

    An existing topic keeps its count, logged when it differs from ``partitions``: adding partitions
    would send keys to new partitions while their older records stay in the old ones. Raises
    :class:`BusUnavailable` when the broker does not answer. ``security``: librdkafka's TLS/SASL settings
    (bus/security.py), which every client here takes.
    """
    admin = AdminClient({**(security or {}), "bootstrap.servers": bootstrap_servers, "logger": _LIBRDKAFKA_LOG})
    created = False
    deadline = time.monotonic() + timeout_s * 3
    while True:
        try:
            found = admin.list_topics(timeout=timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise BusUnavailable(f"Kafka at {bootstrap_servers} did not answer a metadata request: {exc}") from exc
        if found is not None and found.error is None and found.partitions:
            count = len(found.partitions)
            if count != partitions and not created:
                log.warning("topic exists with another partition count; keeping it (re-partitioning would move keys)",
                            extra={"topic": topic, "partitions": count, "configured": partitions})
            return count
        if created and time.monotonic() > deadline:
            raise BusUnavailable(f"topic {topic!r} was created on {bootstrap_servers} but its metadata did not "
                                 f"appear within {timeout_s * 3:.0f} s")
        if not created:
            _create(admin, bootstrap_servers, topic, partitions, replication_factor,
                    {"cleanup.policy": "compact", **(configs or {})}, timeout_s)
            created = True
        time.sleep(0.1)


def _create(admin: AdminClient, bootstrap_servers: str, topic: str, partitions: int, replication_factor: int,
            configs: dict[str, str], timeout_s: float) -> None:
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor,
                                           config=configs)], operation_timeout=timeout_s)[topic]
    try:
        future.result(timeout=timeout_s * 3)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # else another process created it first
            raise BusUnavailable(f"could not create topic {topic!r} on {bootstrap_servers}: {exc}") from exc
    else:
        log.info("topic created", extra={"topic": topic, "partitions": partitions, "configs": configs})


class KeyedTopicWriter:
    """Writes rows of keyed topics; thread-safe (the dashboard writes while the fleet job sends statuses)."""

    def __init__(self, bootstrap_servers: str, *, client_id: str, message_timeout_ms: int = 30_000,
                 security: Mapping[str, str] | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._producer = Producer({
            **(security or {}), "bootstrap.servers": bootstrap_servers, "client.id": f"{client_id}-keyed",
            "partitioner": PARTITIONER, "enable.idempotence": True, "acks": "all", "linger.ms": 0,
            "message.timeout.ms": message_timeout_ms, "error_cb": _client_error, "logger": _LIBRDKAFKA_LOG,
        })
        self._lock = threading.Lock()
        self.failed = 0  # sends the broker never acknowledged

    def put(self, topic: str, rows: Mapping[str, bytes | None], timeout_s: float = 5.0) -> None:
        """Write ``rows`` (key -> value, None deletes) and wait until the broker acknowledged every one.

        Raises :class:`BusUnavailable` naming what did not land; a row still on its way then is
        withdrawn from the local queue, but one already sent may still apply.
        """
        failures: list[str] = []
        acknowledged: list[str] = []

        def report(error: KafkaError | None, message: Message) -> None:
            key = (message.key() or b"").decode("utf-8", "replace")
            (acknowledged if error is None else failures).append(key if error is None else f"{key}: {error.str()}")

        with self._lock:
            try:
                for key, value in rows.items():
                    self._producer.produce(topic, key=key.encode(), value=value, on_delivery=report)
                    self._producer.poll(0)
            except (BufferError, KafkaException) as exc:
                failures.append(f"local queue refused a row: {exc}")
            left = self._producer.flush(timeout_s)
            if left:
                self._producer.purge(in_queue=True)
                self._producer.poll(0)
        if failures or left or len(acknowledged) < len(rows):
            missing = len(rows) - len(acknowledged)
            raise BusUnavailable(
                f"Kafka at {self.bootstrap_servers} did not acknowledge {missing} of {len(rows)} rows of {topic} "
                f"within {timeout_s:g} s ({'; '.join(failures[:3]) or 'no answer'}); nothing was confirmed for them: "
                "try again once Kafka answers (a row already sent may still apply)")

    def send(self, topic: str, key: str, value: bytes | None) -> None:
        """Write one row without waiting; a failure is counted in :attr:`failed` and logged."""

        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self.failed += 1
                _CLIENT_ERRORS.warning("keyed topic row not delivered", extra={"topic": topic, "error": error.str()})

        with self._lock:
            try:
                self._producer.produce(topic, key=key.encode(), value=value, on_delivery=report)
            except (BufferError, KafkaException) as exc:
                self.failed += 1
                _CLIENT_ERRORS.warning("keyed topic row not queued", extra={"topic": topic, "error": str(exc)})
            self._producer.poll(0)

    def close(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            self._producer.flush(timeout_s)


class _Consumed(NamedTuple):
    """What one consumed message means for a table: a row (value None deletes it) or the partition's end."""

    partition: int
    offset: int
    end: bool
    key: str = ""
    value: bytes | None = None


def _consumed(messages: list[Message], topic: str) -> tuple[list[_Consumed], int]:
    """The rows and partition ends among ``messages`` (transport errors logged), and how many records had
    no key: those are not rows of a table and are skipped, counted and logged."""
    items: list[_Consumed] = []
    keyless = 0
    for message in messages:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                items.append(_Consumed(message.partition(), message.offset(), True))
            else:
                _client_error(error)
            continue
        key = message.key()
        if key is None:
            keyless += 1
            log.warning("keyless record on a keyed topic skipped", extra={"topic": topic, "offset": message.offset()})
            continue
        items.append(_Consumed(message.partition(), message.offset(), False, key.decode("utf-8", "replace"),
                               message.value()))
    return items, keyless


def _apply(table: dict[str, bytes], row: _Consumed) -> None:
    if row.value is None:
        table.pop(row.key, None)
    else:
        table[row.key] = row.value


class KeyedTopicReader:
    """Every partition of a keyed topic from its beginning, outside any consumer group: the whole table.

    :meth:`poll` (one thread) applies what arrived; :meth:`entries` may be read from any thread.
    """

    def __init__(self, bootstrap_servers: str, topic: str, *, client_id: str,
                 security: Mapping[str, str] | None = None) -> None:
        self.topic = topic
        # A group id is required by the client; nothing joins a group or commits under it.
        self._consumer = Consumer({
            **(security or {}), "bootstrap.servers": bootstrap_servers, "group.id": f"{client_id}-reader", "client.id": f"{client_id}-reader",
            "enable.auto.commit": False, "enable.partition.eof": True, "error_cb": _client_error,
            "logger": _LIBRDKAFKA_LOG,
        })
        self._lock = threading.Lock()
        self._table: dict[str, bytes] = {}
        self._unread: set[int] | None = None  # partitions not yet read to their end; None before start
        self._ends: dict[int, int] = {}  # offset each partition's end was last seen at
        self.keyless = 0  # records without a key: not rows of the table, counted and skipped

    def start(self, partitions: int) -> None:
        self._unread = set(range(partitions))
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(partitions)])

    def poll(self, timeout_s: float) -> bool:
        """Apply the records that arrive within ``timeout_s``; True when the table changed."""
        if self._unread is None:
            return False
        items, keyless = _consumed(self._consumer.consume(_MAX_RECORDS, timeout_s), self.topic)
        self.keyless += keyless
        changed = False
        with self._lock:
            for item in items:
                if item.end:
                    changed |= item.partition in self._unread
                    self._unread.discard(item.partition)
                    self._ends[item.partition] = item.offset
                else:
                    _apply(self._table, item)
                    changed = True
        return changed

    @property
    def caught_up(self) -> bool:
        """Every partition was read to its end at least once."""
        return self._unread is not None and not self._unread

    def note(self, key: str, value: bytes | None) -> None:
        """Show a row this process wrote (and the broker acknowledged) before it is read back, so a caller
        that checks the table right after writing sees its own write."""
        with self._lock:
            if value is None:
                self._table.pop(key, None)
            else:
                self._table[key] = value

    def ever_written(self) -> bool:
        """Some partition's end lies beyond offset 0: the topic held records, even if all are deleted now."""
        return any(end > 0 for end in self._ends.values())

    def entries(self) -> dict[str, bytes]:
        with self._lock:
            return dict(self._table)

    def close(self) -> None:
        self._consumer.close()


@dataclass
class _Share:
    """One partition of a member: the table read since its assignment, and the table it serves."""

    reading: dict[str, bytes] = field(default_factory=dict)
    served: dict[str, bytes] | None = None  # ``reading`` once read to its end; before that a held table, or None
    assigned: bool = True  # False: held after a lost session, served until the next assignment


RebalanceListener = Callable[[str, Sequence[int]], None]
"""Told ("assigned" | "revoked" | "lost" | "dropped", partitions) as the group moves partitions."""


class KeyedTopicMember:
    """A member of a consumer group over one keyed topic: serves the tables of the partitions it owns.

    Call :meth:`poll` from one thread (the rebalance callbacks run inside it); the other methods may be
    called from any thread. Offsets are never committed: every assignment reads from the beginning.
    """

    def __init__(self, bootstrap_servers: str, topic: str, group_id: str, *, client_id: str,
                 session_timeout_ms: int, on_rebalance: RebalanceListener | None = None,
                 security: Mapping[str, str] | None = None) -> None:
        self.topic = topic
        self.group_id = group_id
        self._consumer = Consumer({
            **(security or {}), "bootstrap.servers": bootstrap_servers, "group.id": group_id, "client.id": f"{client_id}-member",
            "partition.assignment.strategy": "cooperative-sticky", "enable.auto.commit": False,
            "enable.partition.eof": True, "auto.offset.reset": "earliest",
            "session.timeout.ms": session_timeout_ms,
            # a survivor learns of a rebalance at its next heartbeat: keep that short against the timeout
            "heartbeat.interval.ms": max(300, session_timeout_ms // 10),
            "error_cb": _client_error, "logger": _LIBRDKAFKA_LOG,
        })
        self._on_rebalance = on_rebalance
        self._lock = threading.Lock()
        self._shares: dict[int, _Share] = {}
        self._subscribed = False
        self.joined = False  # an assignment (possibly empty) arrived at least once
        self.keyless = 0

    def subscribe(self) -> None:
        if not self._subscribed:
            self._consumer.subscribe([self.topic], on_assign=self._assigned, on_revoke=self._revoked,
                                     on_lost=self._lost)
            self._subscribed = True

    def _tell(self, what: str, partitions: Sequence[int]) -> None:
        if partitions and self._on_rebalance is not None:
            self._on_rebalance(what, sorted(partitions))

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        with self._lock:
            dropped = [p for p, share in self._shares.items() if not share.assigned and p not in numbers]
            for p in dropped:
                del self._shares[p]
            for p in numbers:
                held = self._shares.get(p)
                self._shares[p] = _Share(served=held.served if held else None)
            self.joined = True
        consumer.incremental_assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(numbers)])
        self._tell("dropped", dropped)
        self._tell("assigned", sorted(numbers))

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            for tp in partitions:
                self._shares.pop(tp.partition, None)
        consumer.incremental_unassign(partitions)
        self._tell("revoked", [tp.partition for tp in partitions])

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            for tp in partitions:
                if tp.partition in self._shares:
                    self._shares[tp.partition].assigned = False
        consumer.incremental_unassign(partitions)
        self._tell("lost", [tp.partition for tp in partitions])

    def poll(self, timeout_s: float) -> bool:
        """Serve rebalances and apply records arriving within ``timeout_s``; True when what is served changed."""
        self.subscribe()
        served_before = self._served_partitions()
        try:
            items, keyless = _consumed(self._consumer.consume(_MAX_RECORDS, timeout_s), self.topic)
        except KafkaException as exc:
            raise BusUnavailable(f"consuming {self.topic} failed: {exc}") from exc
        self.keyless += keyless
        changed = False
        with self._lock:
            for item in items:
                share = self._shares.get(item.partition)
                if share is None or not share.assigned:
                    continue  # revoked meanwhile
                if item.end:
                    changed |= share.served is not share.reading
                    share.served = share.reading
                else:
                    _apply(share.reading, item)
                    changed |= share.served is share.reading
        return changed or self._served_partitions() != served_before

    def _served_partitions(self) -> frozenset[int]:
        with self._lock:
            return frozenset(p for p, share in self._shares.items() if share.served is not None)

    def owned(self) -> frozenset[int]:
        """Partitions assigned to this member, or held since a lost session."""
        with self._lock:
            return frozenset(self._shares)

    def unread(self) -> frozenset[int]:
        """Owned partitions not yet read to their end (nothing of them is served yet)."""
        with self._lock:
            return frozenset(p for p, share in self._shares.items() if share.served is None)

    def held(self) -> frozenset[int]:
        with self._lock:
            return frozenset(p for p, share in self._shares.items() if not share.assigned)

    def partition_of(self, key: str) -> int | None:
        """The owned partition whose served table holds ``key`` (None: none does)."""
        with self._lock:
            for partition, share in self._shares.items():
                if share.served is not None and key in share.served:
                    return partition
        return None

    def entries(self) -> dict[str, bytes]:
        """The served rows of every owned partition."""
        with self._lock:
            rows: dict[str, bytes] = {}
            for share in self._shares.values():
                if share.served is not None:
                    rows.update(share.served)
            return rows

    def close(self) -> None:
        """Leave the group (the others rebalance at once, without waiting for the session timeout)."""
        try:
            self._consumer.close()
        except KafkaException as exc:
            log.warning("leaving the group failed; the others take over after the session timeout",
                        extra={"group": self.group_id, "error": str(exc)})

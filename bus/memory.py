"""In-process bus, the embedded default: Kafka's model (partitioned logs, offsets, consumer groups
with committed offsets, delivery reports) without a broker, so the writer and the producer run
the same code over it as over Kafka.

Messages are the same encoded bytes Kafka would carry, so the codec, dead-lettering and
the writer's resume logic are exercised identically. Offsets of a new bus start at the
wall clock in nanoseconds: a process restart therefore never reuses offsets that an
earlier process already stored in chDB, and the writer's "resume after max(bus_offset)"
stays correct across restarts. Retention follows consumption: messages below the
lowest committed offset of the groups reading a topic are dropped. Memory is bounded
twice, because message sizes vary: a partition holding ``capacity`` messages, or a bus
whose unconsumed messages take ``max_bytes``, refuses more with :class:`BusQueueFull`
(the producer then spools to disk) instead of growing without bound. Topics nobody
consumes (the dead letters) would never be trimmed that way and must never refuse (the
writer cannot commit past a poison message it could not set aside), so they get a
:class:`Retention` instead: their oldest messages are deleted, as a broker would. Every
refusal and deletion is counted in :meth:`MemoryBus.stats` and the first of each kind
is logged with its bound. One consumer per group (the embedded engine runs one writer).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bus.base import (
    AssignHandler,
    Bus,
    BusConsumer,
    BusError,
    BusQueueFull,
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

_TRIM_BATCH = 4096  # drop consumed messages in chunks: deleting a list prefix is O(n)
# What Python spends on a held message besides its key, value and headers (the _Message,
# two bytes objects, the list slot), measured with tracemalloc: without it a bus of small
# messages would take about twice its byte budget.
_MESSAGE_OVERHEAD = 128


@dataclass(frozen=True, slots=True)
class _Message:
    key: bytes | None
    value: bytes
    headers: Mapping[str, bytes] | None


def _footprint(message: _Message) -> int:
    """Bytes ``message`` holds in memory, as counted against the budgets."""
    size = _MESSAGE_OVERHEAD + len(message.value) + (len(message.key) if message.key else 0)
    if message.headers:
        size += sum(len(name) + len(value) for name, value in message.headers.items())
    return size


@dataclass(eq=False)
class _Log:
    base: int  # offset of messages[0]
    messages: list[_Message] = field(default_factory=list)
    bytes: int = 0  # footprint of messages

    @property
    def end(self) -> int:
        return self.base + len(self.messages)


class MemoryBus(Bus):
    """``capacity``: messages per partition; ``max_bytes``: unconsumed bytes over every topic without
    a ``retention`` (which bounds its topic per partition, by ``partition_bytes`` and ``capacity``)."""

    def __init__(
        self,
        *,
        capacity: int = 1_000_000,
        max_bytes: int = 512 << 20,
        retention: Mapping[str, Retention] | None = None,
        first_offset: int | None = None,
    ) -> None:
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._retention = dict(retention or {})
        self._bytes = 0  # footprint of every topic without a retention
        self._refused_capacity = 0
        self._refused_bytes = 0
        self._retention_deleted = 0
        self._limits_logged: set[str] = set()
        self._first_offset = time.time_ns() if first_offset is None else first_offset
        self._cond = threading.Condition()
        self._logs: dict[str, list[_Log]] = {}
        self._committed: dict[str, dict[TopicPartition, int]] = {}
        self._members: dict[str, tuple[str, ...]] = {}  # group -> subscribed topics
        self._round_robin = itertools.count()

    def __repr__(self) -> str:
        return f"MemoryBus(topics={len(self._logs)})"

    def ensure_topics(self, topics: Sequence[str], partitions: int) -> list[str]:
        created: list[str] = []
        with self._cond:
            for topic in topics:
                if topic not in self._logs:
                    self._logs[topic] = [_Log(self._first_offset) for _ in range(partitions)]
                    created.append(topic)
        return created

    def producer(self) -> MemoryProducer:
        return MemoryProducer(self)

    def consumer(self, group_id: str) -> MemoryConsumer:
        return MemoryConsumer(self, group_id)

    # ------------------------------------------------------------ used by the producer and consumer
    def partition_count(self, topic: str) -> int | None:
        with self._cond:
            logs = self._logs.get(topic)
            return len(logs) if logs else None

    def _append(self, topic: str, key: bytes | None, value: bytes, headers: Mapping[str, bytes] | None) -> tuple[int, int]:
        with self._cond:
            logs = self._logs.get(topic)
            if logs is None:
                raise DeliveryFailed(f"unknown topic {topic!r}: create it with ensure_topics first")
            index = zlib.crc32(key) % len(logs) if key else next(self._round_robin) % len(logs)
            partition = logs[index]
            message = _Message(key, value, headers)
            size = _footprint(message)
            retention = self._retention.get(topic)
            if retention is None:
                self._admit(TopicPartition(topic, index), partition, size)
                self._bytes += size
            partition.messages.append(message)
            partition.bytes += size
            offset = partition.end - 1
            if retention is not None:
                self._apply_retention(TopicPartition(topic, index), partition, retention)
            self._cond.notify_all()
            return index, offset

    def _admit(self, tp: TopicPartition, partition: _Log, size: int) -> None:
        """Refuse a message over the partition's message cap or the bus's byte budget (lock held)."""
        if len(partition.messages) >= self._capacity:
            self._refused_capacity += 1
            self._limit_hit("capacity", "messages per partition (bus.memory_capacity)", self._capacity, tp)
            raise BusQueueFull(f"in-memory partition {tp} holds {self._capacity} unconsumed messages")
        if self._bytes + size > self._max_bytes:
            self._refused_bytes += 1
            self._limit_hit("bytes", "bytes of unconsumed messages (bus.memory_max_mb)", self._max_bytes, tp)
            raise BusQueueFull(
                f"in-memory bus holds {self._bytes} bytes of unconsumed messages, its budget is "
                f"{self._max_bytes} (bus.memory_max_mb)"
            )

    def _apply_retention(self, tp: TopicPartition, partition: _Log, retention: Retention) -> None:
        """Delete the oldest messages beyond the retention, always keeping the newest one (lock held)."""
        messages = partition.messages
        drop = freed = 0
        while drop < len(messages) - 1 and (
            len(messages) - drop > self._capacity or partition.bytes - freed > retention.partition_bytes
        ):
            freed += _footprint(messages[drop])
            drop += 1
        if drop:
            del messages[:drop]
            partition.base += drop
            partition.bytes -= freed
            self._retention_deleted += drop
            self._limit_hit("retention", "bytes per partition (kafka.deadletter_retention_mb) or messages "
                            "per partition (bus.memory_capacity), oldest deleted", retention.partition_bytes, tp)

    def _limit_hit(self, kind: str, bound_name: str, bound: int, tp: TopicPartition) -> None:
        """Log the first hit of each kind of limit (lock held); later ones are only counted in stats()."""
        if kind not in self._limits_logged:
            self._limits_logged.add(kind)
            log.warning("in-memory bus limit reached; further hits are only counted in its stats",
                        extra={"limit": kind, "bound": bound, "bound_name": bound_name, "partition": str(tp)})

    def stats(self) -> dict[str, int]:
        """Held messages and bytes, and how often each limit was hit."""
        with self._cond:
            logs = [log_ for logs in self._logs.values() for log_ in logs]
            return {
                "messages": sum(len(log_.messages) for log_ in logs),
                "bytes": self._bytes,
                "max_bytes": self._max_bytes,
                "retained_bytes": sum(log_.bytes for log_ in logs) - self._bytes,
                "refused_capacity": self._refused_capacity,
                "refused_bytes": self._refused_bytes,
                "retention_deleted": self._retention_deleted,
            }

    def _partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        with self._cond:
            return [TopicPartition(t, p) for t in topics if t in self._logs for p in range(len(self._logs[t]))]

    def _join(self, group_id: str, topics: Sequence[str]) -> None:
        with self._cond:
            if group_id in self._members:
                raise BusError(f"MemoryBus allows one consumer per group and {group_id!r} already has one")
            self._members[group_id] = tuple(topics)
            self._committed.setdefault(group_id, {})

    def _leave(self, group_id: str) -> None:
        with self._cond:
            self._members.pop(group_id, None)

    def _start(self, group_id: str, tp: TopicPartition) -> PartitionStart:
        with self._cond:
            log_ = self._logs[tp.topic][tp.partition]
            return PartitionStart(self._committed[group_id].get(tp), log_.base, log_.end)

    def _read(self, tp: TopicPartition, offset: int, limit: int) -> tuple[list[Record], int]:
        """Records from ``offset`` (reset to the earliest retained one when trimmed away) and the next offset."""
        with self._cond:
            partition = self._logs[tp.topic][tp.partition]
            if offset < partition.base:
                log.warning("offset below retained messages; resetting to the earliest",
                            extra={"partition": str(tp), "offset": offset, "earliest": partition.base})
                offset = partition.base
            start = offset - partition.base
            chunk = partition.messages[start:start + limit]
        records = [record for i, m in enumerate(chunk) for record in to_records(tp.topic, tp.partition, offset + i,
                                                                                   m.key, m.value)]
        return records, offset + len(chunk)

    def _wait(self, timeout_s: float) -> None:
        with self._cond:
            self._cond.wait(timeout_s)

    def _commit(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        with self._cond:
            committed = self._committed[group_id]
            committed.update(offsets)
            for tp in offsets:
                self._trim(tp)

    def _trim(self, tp: TopicPartition) -> None:
        readers = [g for g, topics in self._members.items() if tp.topic in topics]
        floors = [self._committed[g].get(tp) for g in readers]
        if not floors or None in floors:
            return
        partition = self._logs[tp.topic][tp.partition]
        drop = min(min(floors), partition.end) - partition.base  # type: ignore[type-var]
        if drop >= _TRIM_BATCH or (drop > 0 and drop == len(partition.messages)):
            freed = sum(map(_footprint, partition.messages[:drop]))
            del partition.messages[:drop]
            partition.base += drop
            partition.bytes -= freed
            if tp.topic not in self._retention:
                self._bytes -= freed

    def end_offset(self, tp: TopicPartition) -> int:
        with self._cond:
            return self._logs[tp.topic][tp.partition].end

    def committed(self, group_id: str, tp: TopicPartition) -> int | None:
        with self._cond:
            return self._committed.get(group_id, {}).get(tp)

    def messages(self, topic: str) -> list[tuple[int, int, bytes | None, bytes, Mapping[str, bytes] | None]]:
        """Every retained message of ``topic`` as (partition, offset, key, value, headers): for inspection."""
        with self._cond:
            return [
                (p, log_.base + i, m.key, m.value, m.headers)
                for p, log_ in enumerate(self._logs.get(topic, []))
                for i, m in enumerate(log_.messages)
            ]


class MemoryProducer(MessageProducer):
    """Appends synchronously; delivery reports wait for :meth:`poll`, as with librdkafka."""

    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus
        self._reports: deque[tuple[DeliveryCallback, BusError | None, int, int]] = deque()
        self._ready = threading.Condition()

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        on_delivery: DeliveryCallback,
        headers: Mapping[str, bytes] | None = None,
    ) -> None:
        try:
            partition, offset = self._bus._append(topic, key, value, headers)
            report: tuple[DeliveryCallback, BusError | None, int, int] = (on_delivery, None, partition, offset)
        except DeliveryFailed as exc:
            report = (on_delivery, exc, -1, -1)
        with self._ready:
            self._reports.append(report)
            self._ready.notify()

    def poll(self, timeout_s: float = 0.0) -> int:
        """Run pending delivery callbacks, waiting up to ``timeout_s`` for the first."""
        if not self._reports and timeout_s > 0:
            with self._ready:
                self._ready.wait_for(lambda: bool(self._reports), timeout_s)
        served = 0
        while True:
            try:
                callback, error, partition, offset = self._reports.popleft()
            except IndexError:
                return served
            callback(error, partition, offset)
            served += 1

    def flush(self, timeout_s: float) -> int:
        self.poll()
        return len(self._reports)

    def in_flight(self) -> int:
        return len(self._reports)

    def partitions(self, topic: str, timeout_s: float) -> int | None:
        return self._bus.partition_count(topic)

    def set_error_listener(self, listener: Callable[[BusError], None]) -> None:
        """An in-process bus has no transport to fail."""

    def close(self, timeout_s: float = 10.0) -> None:
        self.poll()


class MemoryConsumer(BusConsumer):
    def __init__(self, bus: MemoryBus, group_id: str) -> None:
        self._bus = bus
        self._group = group_id
        self._topics: tuple[str, ...] = ()
        self._on_assign: AssignHandler | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._assigned = False
        self._paused = False
        self._next_partition = 0

    def subscribe(self, topics: Sequence[str], on_assign: AssignHandler, on_revoke: RevokeHandler) -> None:
        self._bus._join(self._group, topics)
        self._topics, self._on_assign = tuple(topics), on_assign

    def _assign(self) -> None:
        partitions = self._bus._partitions(self._topics)
        starts = {tp: self._bus._start(self._group, tp) for tp in partitions}
        chosen = self._on_assign(starts) if self._on_assign else {}
        for tp, start in starts.items():
            default = start.committed if start.committed is not None else start.begin
            self._positions[tp] = chosen.get(tp, default)
        self._assigned, self._paused = True, False

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        if not self._assigned:
            self._assign()
        deadline = time.monotonic() + timeout_s
        while True:
            records = [] if self._paused else self._read(max_records)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            self._bus._wait(min(remaining, 0.05))

    def _read(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        partitions = list(self._positions)
        for step in range(len(partitions)):
            if len(out) >= max_records:
                break
            tp = partitions[(self._next_partition + step) % len(partitions)]
            records, self._positions[tp] = self._bus._read(tp, self._positions[tp], max_records - len(out))
            out.extend(records)
        self._next_partition += 1
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._bus._commit(self._group, offsets)

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def assignment(self) -> list[TopicPartition]:
        return list(self._positions)

    def high_watermarks(self) -> dict[TopicPartition, int]:
        return {tp: self._bus.end_offset(tp) for tp in self._positions}

    def close(self) -> None:
        self._bus._leave(self._group)
        self._positions.clear()
        self._assigned = False

"""What the producer and the writer need from a message bus, and the bus's errors.

Two implementations sit behind these interfaces: :mod:`bus.kafka` (the real broker) and
:mod:`bus.memory` (in-process, the embedded default). The producer side moves raw
bytes and reports each delivery through a callback, like librdkafka; the consumer side
returns decoded :class:`BusRecord` s, or :class:`PoisonRecord` s for payloads that do not
decode, so one bad message never stops a partition. Offsets are "next offset to read",
Kafka's convention, everywhere (commits, positions, assignment starts).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bus.codec import CodecError, decode_many
from events import Event


class BusError(RuntimeError):
    """A bus operation failed; the message says what to check."""


class BusUnavailable(BusError):
    """The broker cannot be reached; spool or retry, never drop."""


class BusQueueFull(BusError):
    """The local send queue is full (librdkafka BufferError, MemoryBus capacity); spool and retry later."""


class DeliveryFailed(BusError):
    """A message accepted by the producer was not acknowledged by the broker."""


@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


@dataclass(frozen=True, slots=True)
class BusRecord:
    """One decoded event and where it sat on the bus: the message's offset, the event's ``index`` within
    the message (0 for a single-event message), and whether it is the message's ``last`` event (a
    consumer may move its committed offset past the message only after that one)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    event: Event
    index: int = 0
    last: bool = True

    @property
    def position(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class PoisonRecord:
    """A message that cannot be stored (undecodable or misrouted); it goes to the dead-letter topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    payload: bytes
    reason: str
    index: int = 0  # the event's place in its message, for one row set aside from a multi-event message

    @property
    def position(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


Record = BusRecord | PoisonRecord


@dataclass(frozen=True, slots=True)
class PartitionStart:
    """What the bus knows about a partition at assignment: the group's committed offset and the range
    of offsets it holds (None where it could not tell)."""

    committed: int | None
    begin: int | None
    end: int | None


DeliveryCallback = Callable[[BusError | None, int, int], None]
"""Called once per produced message with (error or None, partition, offset)."""

AssignHandler = Callable[[Mapping[TopicPartition, PartitionStart]], Mapping[TopicPartition, int]]
"""Told what the bus knows about newly assigned partitions; returns the offset to start each at
(partitions left out start at the committed offset, else the earliest)."""

RevokeHandler = Callable[[Sequence[TopicPartition]], None]


def to_records(topic: str, partition: int, offset: int, key: bytes | None, payload: bytes | None) -> list[Record]:
    """Decode one message into a record per event; an undecodable payload becomes one :class:`PoisonRecord`
    (the whole message), never an exception."""
    try:
        events = decode_many(payload)
    except CodecError as exc:
        return [PoisonRecord(topic, partition, offset, key, payload or b"", str(exc))]
    if len(events) == 1:
        return [BusRecord(topic, partition, offset, key, events[0])]
    end = len(events) - 1
    return [BusRecord(topic, partition, offset, key, event, index, index == end) for index, event in enumerate(events)]


class MessageProducer(ABC):
    """Sends raw messages; delivery reports arrive through callbacks served by :meth:`poll`/:meth:`flush`."""

    @abstractmethod
    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        on_delivery: DeliveryCallback,
        headers: Mapping[str, bytes] | None = None,
    ) -> None:
        """Queue one message; raises :class:`BusQueueFull` or :class:`BusUnavailable` when it cannot."""

    @abstractmethod
    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports and transport errors; return how many callbacks ran."""

    @abstractmethod
    def flush(self, timeout_s: float) -> int:
        """Wait for outstanding deliveries; return how many are still outstanding."""

    @abstractmethod
    def in_flight(self) -> int:
        """Messages queued or sent but not yet reported."""

    def partitions(self, topic: str, timeout_s: float) -> int | None:
        """How many partitions ``topic`` has (may wait up to ``timeout_s``); None when that is unknown, and
        then the producer sends one event per message."""
        return None

    @abstractmethod
    def set_error_listener(self, listener: Callable[[BusError], None]) -> None:
        """Receive transport-level errors (e.g. all brokers down) from :meth:`poll`."""

    @abstractmethod
    def close(self, timeout_s: float = 10.0) -> None:
        """Flush for up to ``timeout_s``, then fail what is left through its delivery callbacks."""


class BusConsumer(ABC):
    """A member of a consumer group; used from one thread."""

    @abstractmethod
    def subscribe(self, topics: Sequence[str], on_assign: AssignHandler, on_revoke: RevokeHandler) -> None:
        """Join the group; the handlers run inside :meth:`poll_batch`."""

    @abstractmethod
    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout_s`` for the first."""

    @abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Synchronously commit next-offsets-to-read; raises :class:`BusError` when it fails."""

    @abstractmethod
    def pause(self) -> None:
        """Stop returning records for the current assignment (rebalance callbacks still run)."""

    @abstractmethod
    def resume(self) -> None:
        """Undo :meth:`pause`; reading continues after the last record returned."""

    @abstractmethod
    def assignment(self) -> list[TopicPartition]:
        """Partitions currently assigned to this member."""

    @abstractmethod
    def high_watermarks(self) -> dict[TopicPartition, int]:
        """Log end offsets of the assignment as last seen (non-blocking); unknown ones are left out."""

    @abstractmethod
    def close(self) -> None:
        """Leave the group without committing."""


class Bus(ABC):
    """A message bus: creates topics, producers and consumers."""

    @abstractmethod
    def ensure_topics(self, topics: Sequence[str], partitions: int) -> list[str]:
        """Create the topics that do not exist; return the ones created. Raises :class:`BusUnavailable`."""

    @abstractmethod
    def producer(self) -> MessageProducer:
        """A new producer."""

    @abstractmethod
    def consumer(self, group_id: str) -> BusConsumer:
        """A new consumer in ``group_id`` (auto-commit off)."""

    def stats(self) -> dict[str, int]:
        """Counters of the bus's own bounds (the in-process bus's memory); empty when it keeps none."""
        return {}

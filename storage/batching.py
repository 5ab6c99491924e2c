"""The writer's buffer: bus records in, one :class:`InsertBatch` out when it is big or old enough.

Pure logic, clock values passed in. Routing happens here, once: a record becomes a row
of its topic's table, a dead letter (undecodable, or an event on the wrong topic, which
would break resuming from ``max(bus_offset)`` of that topic's table), or is skipped
(heartbeats and other kinds that are not stored). Whatever happens to a record, its
offset is covered by the batch, so the commit after the write moves past it.

A bus message may hold several events (bus/codec.py): a batch always takes a message's records
together, so the commit after the write never moves past a message part of which is unwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bus.base import BusRecord, PoisonRecord, Record, TopicPartition
from bus.codec import encode
from bus.topics import TopicSet
from storage.rows import table_for


@dataclass(eq=False)
class InsertBatch:
    """Everything one write needs; travels from the buffer to the inserter to the committer.

    ``rows`` keeps bus order per partition; the inserter removes records as they are
    stored, so a retry after a partial failure sends only what is missing.
    ``dead_letters`` holds those not yet acknowledged by the dead-letter topic; rows the
    inserter finds to be poison move there from ``rows``. ``unchecked`` holds (table, record) of rows that
    may repeat one stored long ago (:mod:`storage.dedup`): looked up in storage before the insert.
    """

    rows: dict[str, list[BusRecord]]
    dead_letters: list[PoisonRecord]
    offsets: dict[TopicPartition, int]  # next offset per partition once this batch is written
    skipped: int = 0
    attempts: int = 0
    stored: int = 0
    unchecked: list[tuple[str, BusRecord]] = field(default_factory=list)
    row_count: int = field(init=False)

    def __post_init__(self) -> None:
        self.row_count = sum(map(len, self.rows.values()))

    @property
    def pending_rows(self) -> int:
        return sum(map(len, self.rows.values()))


class BatchBuffer:
    def __init__(self, topics: TopicSet, max_records: int, max_age_s: float,
                 records_per_message: float = 1.0) -> None:
        """``records_per_message``: the first guess of how many events a bus message holds (the producers'
        ``bus.events_per_message``); later guesses come from what the bus returns."""
        self._topics = topics
        self._max_records = max_records
        self._max_age_s = max_age_s
        self._per_message = max(1.0, records_per_message)
        self._records: list[Record] = []
        self._first_at: float | None = None

    def __len__(self) -> int:
        return len(self._records)

    def add(self, records: Sequence[Record], now: float) -> None:
        if not records:
            return
        if self._first_at is None:
            self._first_at = now
        self._records.extend(records)
        messages = sum(1 for record in records if getattr(record, "last", True))  # a poison record is a message
        self._per_message = 0.7 * self._per_message + 0.3 * (len(records) / max(1, messages))

    def room(self) -> int:
        """How many bus messages to ask for: the records there is room for over the records a message has
        held lately (a poll of messages of 200 events each asked for as many messages as records would
        bring 200 times the batch). At least one, so polling still waits."""
        return max(1, int((self._max_records - len(self._records)) / self._per_message))

    def time_left(self, now: float) -> float | None:
        """Seconds until the oldest record is due; None when empty."""
        return None if self._first_at is None else max(0.0, self._first_at + self._max_age_s - now)

    def due(self, now: float) -> bool:
        if not self._records:
            return False
        return len(self._records) >= self._max_records or now - self._first_at >= self._max_age_s  # type: ignore[operator]

    def take(self) -> InsertBatch:
        """About ``max_records`` of the oldest records as a batch (the rest stay buffered), ending at a
        message's end: the records of a multi-event message go together."""
        cut = min(self._max_records, len(self._records))
        while cut < len(self._records) and not _ends_message(self._records[cut - 1]):
            cut += 1
        taken, self._records = self._records[:cut], self._records[cut:]
        self._first_at = self._first_at if self._records else None
        return route(taken, self._topics)

    def clear(self) -> int:
        """Forget everything buffered (partitions were revoked; the next owner re-reads it)."""
        dropped = len(self._records)
        self._records, self._first_at = [], None
        return dropped


def _ends_message(record: Record) -> bool:
    return isinstance(record, PoisonRecord) or record.last


def route(records: Sequence[Record], topics: TopicSet) -> InsertBatch:
    rows: dict[str, list[BusRecord]] = {}
    dead: list[PoisonRecord] = []
    next_offsets: dict[tuple[str, int], int] = {}
    topic_tables: dict[str, str | None] = {}
    skipped = 0
    for record in records:  # per record: tens of thousands a second, so no per-record objects here
        next_offsets[(record.topic, record.partition)] = record.offset + 1
        if isinstance(record, PoisonRecord):
            dead.append(record)
            continue
        table = table_for(record.event)
        if table is None:
            skipped += 1
            continue
        if record.topic not in topic_tables:
            topic_tables[record.topic] = topics.table_for_topic(record.topic)
        if table == topic_tables[record.topic]:
            rows.setdefault(table, []).append(record)
        else:
            dead.append(PoisonRecord(record.topic, record.partition, record.offset, record.key, encode(record.event),
                                     f"misrouted: a {type(record.event).__name__} does not belong on {record.topic}",
                                     record.index))
    offsets = {TopicPartition(topic, partition): offset for (topic, partition), offset in next_offsets.items()}
    return InsertBatch(rows, dead, offsets, skipped)

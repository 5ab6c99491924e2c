"""Restore from Kafka: the events the topics still hold, stored once each, with their bus position.

A rebuilt database gets what Kafka still holds first (retention decides how far back that
reaches), then the backup segments fill in the older part (storage/rebuild.py). Reading
goes through a consumer that never commits (storage/kafka_read.py), from each event
partition's low watermark to its high watermark at the start.

Rows keep their ``bus_partition``/``bus_offset`` as the writer would have stored them, so a
writer that starts afterwards resumes each partition after them (storage/positions.py)
and re-reads nothing. Like the segment restore, events whose identity is already stored
(a trade by content, whoever stored it; other events by source and seq) are skipped (the
identities of each chunk are read back first), so running it twice stores nothing twice. What the writer would have set aside as a dead letter is set aside here too, not
stored: undecodable payloads, events on the wrong topic, values their column cannot hold;
they are counted and listed in the report (the dead-letter topic already holds them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bus.codec import CodecError, decode_many
from bus.topics import TopicSet
from events import Event
from storage.kafka_read import PartitionRange, partition_ranges, read_ranges, throwaway_consumer
from storage.identity import stored_identities
from storage.rows import Identity, TableBatch, identity_of, out_of_range, table_for, to_batches
from storage.store import Store

log = logging.getLogger(__name__)

# librdkafka logs every reconnect attempt; a failed read reaches the operator as KafkaReadError instead.
_LIBRDKAFKA = logging.getLogger(f"{__name__}.librdkafka")
_LIBRDKAFKA.addHandler(logging.NullHandler())
_LIBRDKAFKA.propagate = False

_Positioned = tuple[Event, int, int]  # event, bus partition, bus offset


@dataclass
class KafkaReplayReport:
    partitions: list[PartitionRange]
    messages: int = 0
    inserted: int = 0
    already_stored: int = 0
    skipped: int = 0  # kinds that are never stored (heartbeats)
    set_aside: list[str] = field(default_factory=list)  # "topic[partition]@offset: why", as the writer would

    @property
    def held(self) -> int:
        """Messages the topics held between their watermarks when the replay began."""
        return sum(p.messages for p in self.partitions)


def replay_kafka(store: Store, bootstrap: str, topics: TopicSet, *, chunk_events: int = 50_000,
                 idle_timeout_s: float = 30.0, clock: Callable[[], int] = time.time_ns,
                 security: Mapping[str, str] | None = None) -> KafkaReplayReport:
    """Store what the event topics of ``topics`` hold and ``store`` (migrated) lacks; raises KafkaReadError
    or StorageError (nothing stored is lost: run it again)."""
    consumer = throwaway_consumer(bootstrap, _LIBRDKAFKA, "replay", security)
    try:
        report = KafkaReplayReport(partition_ranges(consumer, list(topics.event_topics), {}))
        chunk: list[_Positioned] = []
        for messages in read_ranges(consumer, report.partitions, idle_timeout_s):
            for message in messages:
                report.messages += 1
                for event in _routable(message.topic(), message.partition(), message.offset(), message.value(),
                                       topics, report):
                    chunk.append((event, message.partition(), message.offset()))
            if len(chunk) >= chunk_events:
                _store_new(store, chunk, report, clock())
                chunk = []
        _store_new(store, chunk, report, clock())
    finally:
        consumer.close()
    log.info("kafka replayed into storage", extra={
        "messages": report.messages, "inserted": report.inserted, "already_stored": report.already_stored,
        "set_aside": len(report.set_aside)})
    return report


def _routable(topic: str, partition: int, offset: int, payload: bytes | None, topics: TopicSet,
              report: KafkaReplayReport) -> list[Event]:
    """The events to store from one message (one, or a batch's); the others are counted as skipped or set aside."""
    where = f"{topic}[{partition}]@{offset}"
    try:
        events = decode_many(payload)
    except CodecError as exc:
        report.set_aside.append(f"{where}: {exc}")
        return []
    wanted = topics.table_for_topic(topic)
    routable: list[Event] = []
    for index, event in enumerate(events):
        table = table_for(event)
        if table is None:
            report.skipped += 1
        elif table != wanted:
            at = where if len(events) == 1 else f"{where}#{index}"
            report.set_aside.append(f"{at}: misrouted: a {type(event).__name__} does not belong on {topic}")
        else:
            routable.append(event)
    return routable


def _store_new(store: Store, chunk: list[_Positioned], report: KafkaReplayReport, stored_ns: int) -> None:
    """Insert, per table, the events of ``chunk`` whose identity storage does not hold yet (each once)."""
    per_table: dict[str, dict[Identity, _Positioned]] = {}
    for item in chunk:
        table = table_for(item[0]) or ""  # _routable let only stored kinds through
        per_table.setdefault(table, {}).setdefault(identity_of(table, item[0]), item)
    for table, by_key in per_table.items():
        present = stored_identities(store, table, [event for event, _, _ in by_key.values()])
        fresh = [item for key, item in by_key.items() if key not in present]
        report.already_stored += sum(1 for item in chunk if table_for(item[0]) == table) - len(fresh)
        if not fresh:
            continue
        batch = to_batches([e for e, _, _ in fresh], stored_ns, [(p, o) for _, p, o in fresh])[table]
        for index, reason in sorted(out_of_range(batch).items(), reverse=True):
            _, partition, offset = fresh[index]
            report.set_aside.append(f"partition {partition}@{offset} ({table}): {reason}")
            _drop_row(batch, index)
        report.inserted += store.insert_columns(table, batch.columns, batch.data)


def _drop_row(batch: TableBatch, index: int) -> None:
    for column in batch.data:
        del column[index]

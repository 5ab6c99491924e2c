"""Where storage says each bus partition ends: ``max(bus_offset) + 1`` per partition of a topic's table.

This is the writer's source of truth for "what is stored": on assignment it starts each
partition after it (so a crash between insert and commit re-reads nothing that is
stored, and queries need no FINAL), and before retrying a failed write it drops the
rows an earlier attempt already stored. Both rely on the inserter's guarantee that what
is stored of a partition is always a prefix of its offsets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from bus.base import TopicPartition
from bus.topics import TopicSet
from storage.batching import InsertBatch
from storage.store import Store


class StoredPositions:
    def __init__(self, store: Store, topics: TopicSet) -> None:
        self._store = store
        self._topics = topics

    def next_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """``max(bus_offset) + 1`` for each partition that has rows; raises :class:`StorageError`."""
        by_topic: dict[str, set[int]] = defaultdict(set)
        for tp in partitions:
            by_topic[tp.topic].add(tp.partition)
        positions: dict[TopicPartition, int] = {}
        for topic, numbers in by_topic.items():
            table = self._topics.table_for_topic(topic)
            if table is None:
                continue
            listed = ", ".join(map(str, sorted(numbers)))
            rows = self._store.query(
                f"SELECT bus_partition, max(bus_offset) FROM {self._store.table(table)} "
                f"WHERE bus_partition IN ({listed}) GROUP BY bus_partition"
            )
            for partition, offset in rows:
                positions[TopicPartition(topic, int(partition))] = int(offset) + 1
        return positions

    def drop_stored(self, batch: InsertBatch) -> int:
        """Remove from ``batch`` the rows storage already has (an earlier attempt's outcome was unknown)."""
        partitions = {record.position for records in batch.rows.values() for record in records}
        stored = self.next_offsets(partitions)
        dropped = 0
        for table, records in batch.rows.items():
            keep = [r for r in records if r.offset >= stored.get(r.position, r.offset)]
            dropped += len(records) - len(keep)
            batch.rows[table] = keep
        batch.stored += dropped
        return dropped

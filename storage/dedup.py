"""Drop a row whose event is already stored or already in its batch, before it is inserted.

Why: a message whose delivery timed out may already be on the broker; the producer
spools it and sends it again, so the same event sits at two offsets of its partition
(the key, the symbol, picks the partition). ReplacingMergeTree removes the copy only
when parts merge, and the 1-minute bars count every inserted row, so the copy must
never be inserted. The writer remembers the identities of the last ``capacity`` rows
of each assigned bus partition: loaded from storage when the partition is assigned
(the rows in its last ``capacity`` offsets), then extended as batches are taken. A
batch is only ever stored, set aside as dead letters, or dropped with its partition's
keys on a revoke, so a key remembered at take time is the key of a row that is (or is
about to be) stored. A copy further back than ``capacity`` rows is not caught; it is the
ReplacingMergeTree backstop's (docs/DELIVERY.md).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from bus.base import TopicPartition
from bus.topics import TopicSet
from events import Event
from storage.batching import InsertBatch
from storage.store import Store

# An event's identity, from events and from a stored row. Change the three together.
IDENTITY_COLUMNS = ("source", "seq")


def identities(events: Iterable[Event]) -> list[Hashable]:
    """What makes two rows the same event, for each event. The source is interned: a few strings shared by
    every key. List-wise, because it runs for every row the writer stores."""
    intern = sys.intern
    return [(intern(event.source), event.seq) for event in events]


def stored_identity(row: Sequence[Any]) -> Hashable:
    """The identity (as :func:`identities` makes it) of a row read as ``SELECT IDENTITY_COLUMNS``."""
    return sys.intern(str(row[0])), int(row[1])


class RecentKeys:
    """The identities of one partition's last ``capacity`` rows; the oldest are forgotten first, in bulk by
    :meth:`trim` (once a batch: a cut in C costs less than one eviction per row)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.evicted = 0
        self._order: list[Hashable] = []
        self._keys: set[Hashable] = set()

    def __len__(self) -> int:
        return len(self._keys)

    def admit(self, key: Hashable) -> bool:
        """Remember ``key``; False when it is already remembered (a duplicate)."""
        size = len(self._keys)
        self._keys.add(key)  # one hash of the key instead of two ("in", then "add")
        if len(self._keys) == size:
            return False
        self._order.append(key)
        return True

    def trim(self) -> None:
        """Forget the oldest keys beyond ``capacity``."""
        excess = len(self._order) - self.capacity
        if excess > 0:
            self._keys.difference_update(self._order[:excess])
            del self._order[:excess]
            self.evicted += excess


def recent_keys(store: Store, topics: TopicSet, stored_next: Mapping[TopicPartition, int],
                capacity: int) -> dict[TopicPartition, list[Hashable]]:
    """The identities of the rows storage holds in each partition's last ``capacity`` offsets before
    ``stored_next`` (max(bus_offset) + 1), oldest first; raises :class:`StorageError`."""
    by_topic: dict[str, list[str]] = defaultdict(list)
    for tp, end in stored_next.items():
        by_topic[tp.topic].append(f"(bus_partition = {tp.partition} AND bus_offset >= {end - capacity})")
    keys: dict[TopicPartition, list[Hashable]] = defaultdict(list)
    for topic, ranges in by_topic.items():
        table = topics.table_for_topic(topic)
        if table is None:
            continue
        rows = store.query(f"SELECT bus_partition, {', '.join(IDENTITY_COLUMNS)} FROM {store.table(table)} "
                           f"WHERE {' OR '.join(ranges)} ORDER BY bus_partition, bus_offset")
        for partition, *key in rows:
            keys[TopicPartition(topic, int(partition))].append(stored_identity(key))
    return dict(keys)


class DuplicateFilter:
    """Per assigned partition, the :class:`RecentKeys` a batch's rows are checked against. Pure: the keys
    storage holds come in through :meth:`load`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: dict[str, dict[int, RecentKeys]] = {}  # topic -> partition -> keys
        self._evicted_before = 0  # by caches since forgotten
        self.duplicates = 0

    @property
    def evicted(self) -> int:
        return self._evicted_before + sum(k.evicted for parts in self._keys.values() for k in parts.values())

    def load(self, partitions: Iterable[TopicPartition], stored: Mapping[TopicPartition, Iterable[Hashable]]) -> None:
        """Start remembering ``partitions`` afresh, each from the keys storage holds (oldest first)."""
        self.forget()
        for tp in partitions:
            keys = self._keys.setdefault(tp.topic, {})[tp.partition] = RecentKeys(self.capacity)
            for key in stored.get(tp, ()):
                keys.admit(key)
            keys.trim()

    def forget(self) -> None:
        """Drop every partition's keys (revoked: the next owner loads them from storage)."""
        self._evicted_before = self.evicted
        self._keys.clear()

    def drop_duplicates(self, batch: InsertBatch) -> int:
        """Remove from ``batch`` the rows whose event is remembered or came earlier in the batch; return how many."""
        dropped = 0
        for table, records in batch.rows.items():
            if not records:
                continue
            partitions = self._keys.setdefault(records[0].topic, {})  # a table's rows all come from its topic
            kept = []
            partition, admit = None, None
            for record, key in zip(records, identities([r.event for r in records])):
                if record.partition != partition:  # the bus hands out a partition's records together
                    partition = record.partition
                    keys = partitions.get(partition)
                    if keys is None:
                        keys = partitions[partition] = RecentKeys(self.capacity)
                    admit = keys.admit
                if admit(key):  # type: ignore[misc]
                    kept.append(record)
            if len(kept) != len(records):
                dropped += len(records) - len(kept)
                batch.rows[table] = kept
            for keys in partitions.values():
                keys.trim()
        self.duplicates += dropped
        return dropped

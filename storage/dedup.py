"""Drop a row whose event is already stored or already in its batch, before it is inserted.

Why: ReplacingMergeTree removes a copy only when parts merge, and the 1-minute bars count
every inserted row, so a copy must never be inserted. Copies come two ways:

- a message whose delivery timed out may already be on the broker; the producer spools it
  and sends it again, so the same event sits at two offsets of its partition;
- a trade is identified by content (:mod:`events.kinds`), and two collectors watching the
  same symbol, or a backfill, deliver the same print under other sources. The bus key is
  the symbol, so every copy of a trade reaches the same partition.

The writer remembers the identities of the last ``capacity`` rows of each assigned bus
partition: loaded from storage when the partition is assigned (the rows in its last
``capacity`` offsets), then extended as batches are taken. A batch is only ever stored, set
aside as dead letters, or dropped with its partition's keys on a revoke, so a key remembered
at take time is the key of a row that is (or is about to be) stored.

A trade may also repeat one stored long before (a backfill of an hour ago). For tables keyed
by content each partition keeps a horizon, the newest ``ts_ns`` among the stored rows it no
longer remembers; a new trade at or before it is looked up in storage before the insert
(:func:`stored_copies`), one query for the batch. Live trades come after it, so the live path
asks storage nothing. A copy of an event identified by (source, seq) further back than
``capacity`` rows is not caught; it is the ReplacingMergeTree backstop's (docs/DELIVERY.md).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter

from bus.base import BusRecord, TopicPartition
from bus.topics import TopicSet
from events import Event
from events.kinds import TABLES
from storage.batching import InsertBatch
from storage.identity import stored_identities
from storage.rows import IDENTITY_COLUMNS, Identity, by_content, stored_identity
from storage.store import Store

_TIME = {table: columns.index("ts_ns") if by_content(table) else None for table, columns in IDENTITY_COLUMNS.items()}
"""Where an identity holds the event's time, for tables keyed by content (those get a horizon)."""


def identities(table: str, events: Iterable[Event]) -> list[Hashable]:
    """The identity of each event of ``table``. A source is interned: a few strings shared by every key.
    List-wise, because it runs for every row the writer stores."""
    if by_content(table):
        return list(map(TABLES[table].identity_of, events))
    intern = sys.intern
    return [(intern(event.source), event.seq) for event in events]


class RecentKeys:
    """The identities of one partition's last ``capacity`` rows; the oldest are forgotten first, in bulk by
    :meth:`trim` (once a batch: a cut in C costs less than one eviction per row).

    With ``time_index`` (content keys) it keeps ``horizon``: the newest time among the stored rows it does
    not remember, forgotten or never loaded; a new key whose ``time_of`` (the event's ``ts_ns``) is at or before
    it may be stored."""

    def __init__(self, capacity: int, time_index: int | None = None, horizon: int | None = None) -> None:
        self.capacity = capacity
        self.evicted = 0
        self.horizon = horizon
        self.time_of = None if time_index is None else itemgetter(time_index)
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

    def newest(self, since: int) -> list[Hashable]:
        """The keys remembered after the first ``since`` (those admitted since :meth:`trim` last ran)."""
        return self._order[since:]

    def trim(self) -> None:
        """Forget the oldest keys beyond ``capacity``."""
        excess = len(self._order) - self.capacity
        if excess > 0:
            forgotten = self._order[:excess]
            if self.time_of is not None:
                newest = max(map(self.time_of, forgotten))
                self.horizon = newest if self.horizon is None else max(self.horizon, newest)
            self._keys.difference_update(forgotten)
            del self._order[:excess]
            self.evicted += excess


@dataclass
class StoredTail:
    """What storage holds of one partition for its duplicate filter: the identities of its newest rows, at most
    ``capacity`` within its last ``capacity`` offsets (oldest first), and, for content keys, the newest time
    of the rows before them."""

    keys: list[Hashable] = field(default_factory=list)
    horizon: int | None = None


def recent_keys(store: Store, topics: TopicSet, stored_next: Mapping[TopicPartition, int],
                capacity: int) -> dict[TopicPartition, StoredTail]:
    """The :class:`StoredTail` of each partition that has rows (``stored_next`` is max(bus_offset) + 1);
    raises :class:`StorageError`."""
    by_topic: dict[str, dict[int, int]] = defaultdict(dict)
    for tp, end in stored_next.items():
        by_topic[tp.topic][tp.partition] = end - capacity
    tails: dict[TopicPartition, StoredTail] = defaultdict(StoredTail)
    for topic, starts in by_topic.items():
        table = topics.table_for_topic(topic)
        if table is None:
            continue
        recent = " OR ".join(f"(bus_partition = {p} AND bus_offset >= {start})" for p, start in starts.items())
        # A message may hold many rows (bus/codec.py's batches): the newest ``capacity`` rows, not offsets.
        rows = store.query(f"SELECT bus_partition, bus_offset, {', '.join(IDENTITY_COLUMNS[table])} "
                           f"FROM {store.table(table)} WHERE {recent} "
                           f"ORDER BY bus_partition, bus_offset DESC LIMIT {capacity} BY bus_partition")
        newest_first: dict[int, list[tuple[int, Hashable]]] = defaultdict(list)
        for partition, offset, *key in rows:
            newest_first[int(partition)].append((int(offset), stored_identity(table, key)))
        for partition, loaded in newest_first.items():
            if len(loaded) >= capacity:  # cut inside the window: the oldest loaded message may be partial
                oldest = loaded[-1][0]
                loaded = [item for item in loaded if item[0] != oldest]
                starts[partition] = oldest + 1  # what is older than the loaded rows counts in the horizon
            tails[TopicPartition(topic, partition)].keys.extend(key for _, key in reversed(loaded))
        if _TIME[table] is None:
            continue
        before = " OR ".join(f"(bus_partition = {p} AND bus_offset < {start})" for p, start in starts.items())
        for partition, newest in store.query(f"SELECT bus_partition, max(ts_ns) FROM {store.table(table)} "
                                             f"WHERE {before} GROUP BY bus_partition"):
            tails[TopicPartition(topic, int(partition))].horizon = int(newest)
    return dict(tails)


def stored_copies(store: Store, batch: InsertBatch) -> dict[str, set[Identity]]:
    """The identities of the batch's unchecked rows (:attr:`InsertBatch.unchecked`) that storage holds."""
    by_table: dict[str, list[Event]] = defaultdict(list)
    for table, record in batch.unchecked:
        by_table[table].append(record.event)  # type: ignore[arg-type]
    return {table: stored_identities(store, table, events) for table, events in by_table.items()}


class DuplicateFilter:
    """Per assigned partition, the :class:`RecentKeys` a batch's rows are checked against. Pure: what
    storage holds comes in through :meth:`load` and :meth:`drop_stored`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: dict[str, dict[int, RecentKeys]] = {}  # topic -> partition -> keys
        self._evicted_before = 0  # by caches since forgotten
        self.duplicates = 0

    @property
    def evicted(self) -> int:
        return self._evicted_before + sum(k.evicted for parts in self._keys.values() for k in parts.values())

    def load(self, partitions: Iterable[TopicPartition], stored: Mapping[TopicPartition, StoredTail],
             tables: Mapping[str, str | None]) -> None:
        """Start remembering ``partitions`` afresh, each from what storage holds; ``tables`` maps a topic to
        its table."""
        self.forget()
        for tp in partitions:
            tail = stored.get(tp, StoredTail())
            keys = self._keys.setdefault(tp.topic, {})[tp.partition] = self._new_keys(tables.get(tp.topic),
                                                                                      tail.horizon)
            for key in tail.keys:
                keys.admit(key)
            keys.trim()

    def _new_keys(self, table: str | None, horizon: int | None = None) -> RecentKeys:
        return RecentKeys(self.capacity, _TIME.get(table) if table else None, horizon)

    def forget(self) -> None:
        """Drop every partition's keys (revoked: the next owner loads them from storage)."""
        self._evicted_before = self.evicted
        self._keys.clear()

    def drop_duplicates(self, batch: InsertBatch) -> int:
        """Remove from ``batch`` the rows whose event is remembered or came earlier in the batch; return how
        many. New rows that may repeat a forgotten one go to ``batch.unchecked`` for :meth:`drop_stored`.

        A backfilled trade whose identity is remembered from an earlier batch goes there too rather than
        being dropped: a backfill is sent because storage lacks the trade (a row deleted, a row
        dead-lettered after its key was remembered), and only storage can say whether it still does."""
        dropped = 0
        for table, records in batch.rows.items():
            if not records:
                continue
            partitions = self._keys.setdefault(records[0].topic, {})  # a table's rows all come from its topic
            keys = identities(table, [r.event for r in records])
            kept = []
            recheck: list[tuple[BusRecord, Hashable]] = []
            batch_start: dict[int, int] = {}  # partition -> its remembered keys before this batch
            partition, admit = None, None
            for record, key in zip(records, keys):
                if record.partition != partition:  # the bus hands out a partition's records together
                    partition = record.partition
                    recent = partitions.get(partition)
                    if recent is None:
                        recent = partitions[partition] = self._new_keys(table)
                    batch_start.setdefault(partition, len(recent))
                    admit = recent.admit
                if admit(key):  # type: ignore[misc]
                    kept.append(record)
                elif getattr(record.event, "backfilled", False):
                    recheck.append((record, key))
            self._mark_late(table, partitions, keys, kept, batch)
            if recheck:
                again = self._remembered_before(table, partitions, batch_start, recheck, batch)
                kept = sorted([*kept, *again], key=attrgetter("partition", "offset"))  # bus order, as taken
            if len(kept) != len(records):
                dropped += len(records) - len(kept)
                batch.rows[table] = kept
            for recent in partitions.values():
                recent.trim()
        self.duplicates += dropped
        return dropped

    @staticmethod
    def _remembered_before(table: str, partitions: Mapping[int, RecentKeys], batch_start: Mapping[int, int],
                           recheck: list[tuple[BusRecord, Hashable]], batch: InsertBatch) -> list[BusRecord]:
        """Of the backfilled trades whose identity was remembered, those remembered from an earlier batch
        (so stored, or dead-lettered): put in ``batch.unchecked`` and returned, to be kept unless storage has
        them. A copy of a row of this very batch, or of another such trade, stays dropped."""
        in_batch = {key for partition, start in batch_start.items() for key in partitions[partition].newest(start)}
        again = []
        for record, key in recheck:
            if key not in in_batch:
                in_batch.add(key)  # one copy per identity is enough
                again.append(record)
        batch.unchecked.extend((table, record) for record in again)
        return again

    @staticmethod
    def _mark_late(table: str, partitions: Mapping[int, RecentKeys], keys: list[Hashable], kept: list[BusRecord],
                   batch: InsertBatch) -> None:
        """Put the kept rows no newer than their partition's horizon in ``batch.unchecked``. The live path
        costs one pass at C speed: its rows are all newer than every horizon."""
        index = _TIME[table]
        horizons = [recent.horizon for recent in partitions.values() if recent.horizon is not None]
        if index is None or not horizons or min(map(itemgetter(index), keys)) > max(horizons):
            return
        for record in kept:
            horizon = partitions[record.partition].horizon
            if horizon is not None and record.event.ts_ns <= horizon:  # type: ignore[union-attr]
                batch.unchecked.append((table, record))

    def drop_stored(self, batch: InsertBatch, stored: Mapping[str, set[Identity]]) -> int:
        """Remove the unchecked rows whose identity ``stored`` holds (:func:`stored_copies`); return how many."""
        doomed = {id(record) for table, record in batch.unchecked
                  if TABLES[table].identity_of(record.event) in stored.get(table, ())}
        batch.unchecked = []
        if not doomed:
            return 0
        for table, records in batch.rows.items():
            batch.rows[table] = [r for r in records if id(r) not in doomed]
        self.duplicates += len(doomed)
        return len(doomed)

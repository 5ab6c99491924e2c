"""The duplicate filter's memory of a partition, loaded from storage on assignment, stays within its
capacity in rows when bus messages hold many events (bus/codec.py's batches): the newest rows are
remembered, a message cut by the limit is not half-remembered, and what is not remembered counts in
the horizon that sends older trades to a storage lookup. Both backends."""

from __future__ import annotations

import pytest

from bus.base import TopicPartition
from bus.topics import TopicSet
from events import Trade
from storage.dedup import recent_keys
from storage.migrate import migrate
from storage.rows import identity_of, to_batches

TOPICS = TopicSet("dedup")
BASE = 1_764_000_000_000_000_000


def store_messages(store, sizes: list[int]) -> list[list[Trade]]:
    """Trades stored as messages of ``sizes`` events at offsets 0, 1, ... of partition 0."""
    messages: list[list[Trade]] = []
    seq = 0
    for offset, size in enumerate(sizes):
        batch = []
        for _ in range(size):
            seq += 1
            batch.append(Trade(symbol="AAPL", price=100.0, size=1, ts_ns=BASE + seq, total_volume=seq,
                               source="s", seq=seq))
        messages.append(batch)
    events = [event for batch in messages for event in batch]
    positions = [(0, offset) for offset, batch in enumerate(messages) for _ in batch]
    columns = to_batches(events, BASE, positions)["trades"]
    store.insert_columns("trades", columns.columns, columns.data)
    return messages


@pytest.mark.timeout(120)
def test_a_batched_partition_loads_at_most_capacity_rows_whole_messages_only_and_the_rest_in_the_horizon(store):
    migrate(store)
    messages = store_messages(store, [50, 50, 50, 50])  # 200 rows in 4 offsets
    tp = TopicPartition(TOPICS.trades, 0)
    [tail] = recent_keys(store, TOPICS, {tp: 4}, capacity=120).values()
    # The newest 120 rows reach into offset 1; offset 1 is then only partly loaded, so it is left out whole.
    # Rows of one message come in no particular order (storage keeps its offset, not its index); messages
    # come oldest first.
    assert [set(tail.keys[:50]), set(tail.keys[50:])] == [{identity_of("trades", e) for e in messages[2]},
                                                         {identity_of("trades", e) for e in messages[3]}]
    assert len(tail.keys) == 100
    assert tail.horizon == messages[1][-1].ts_ns  # the newest time of what is not remembered

    [whole] = recent_keys(store, TOPICS, {tp: 4}, capacity=1000).values()
    assert len(whole.keys) == 200 and whole.horizon is None

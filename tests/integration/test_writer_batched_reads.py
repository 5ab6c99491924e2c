"""A writer catching up on messages of many events asks the bus for as many messages as its batch has room
for in events, not in messages: asked in records, one poll of a backlog brought up to
``bus.events_per_message`` times its batch into memory. Real Kafka, both stores."""

from __future__ import annotations

import pytest

from bus.factory import build_producer, open_bus
from storage.migrate import migrate
from storage.writer import build_writer
from tests.integration.pipeline import make_events, stored_count, stored_kinds
from tests.integration.test_writer_poison import settings  # noqa: F401 - fixture

BATCH_ROWS = 500


@pytest.mark.timeout(120)
def test_a_backlog_of_batched_messages_is_read_a_batch_at_a_time_and_stored_once(settings, store):  # noqa: F811
    migrate(store)
    producer = build_producer(settings, open_bus(settings))
    producer.poll(0)  # partition counts known: the backlog goes out as messages of up to 200 events
    events = make_events(6000)
    producer.publish_many(events)
    assert producer.flush(30)
    producer.close()

    small = settings.model_copy(update={"storage": settings.storage.model_copy(update={"batch_rows": BATCH_ROWS})})
    writer = build_writer(small, open_bus(small), store)
    largest_read = 0
    try:
        while stored_count(store) < len(stored_kinds(events)):
            largest_read = max(largest_read, writer.step(0.5))
        for _ in range(5):  # anything read twice would be stored now
            writer.step(0.2)
    finally:
        writer.close()
    assert 0 < largest_read <= 2 * BATCH_ROWS, largest_read  # asked in records it was the whole backlog
    assert stored_count(store) == len(stored_kinds(events))

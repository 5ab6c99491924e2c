"""Poison rows over the real broker and each store (ClickHouse 18.16, chDB): a row that cannot be stored is
dead-lettered alone with its reason while every other row is stored once and the commit moves past it; a
batch in which every row fails is kept and retried with nothing committed; a crash around setting a poison
row aside resumes exactly."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from bus.base import BusRecord, PoisonRecord, TopicPartition
from bus.codec import decode
from bus.deadletter import DeadLetterSink
from bus.factory import build_producer, open_bus
from bus.topics import TopicSet
from events import Depth, Event, Quote, Trade
from config import Settings
from storage.batching import InsertBatch
from storage import rows, schema
from storage.migrate import migrate
from storage.positions import StoredPositions
from storage.probe import PoisonProbe
from storage.store import Store
from storage.writer import Writer
from tests.integration.pipeline import (
    EVENT_TABLES,
    assert_stored_exactly_once,
    delete_topics,
    make_events,
    stored_count,
    stored_kinds,
    wait_until,
)
from tests.integration.test_writer_table_faults import CheckedCommits, WrappedStore, writer_settings


class RecordedDeadLetters(DeadLetterSink):
    """The real dead-letter sink, remembering what the broker acknowledged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acknowledged: list[PoisonRecord] = []

    def send(self, records: Sequence[PoisonRecord]) -> None:
        super().send(records)
        self.acknowledged.extend(records)

    def positions(self) -> set[tuple[TopicPartition, int]]:
        return {(r.position, r.offset) for r in self.acknowledged}


class RefusesSymbol(WrappedStore):
    """The real store, except that any insert (into a table or its probe twin) holding a row of ``symbol``
    raises what a driver that cannot encode a value raises: an error we did not foresee."""

    def __init__(self, inner: Store, symbol: str, passing: bool = False) -> None:
        """``passing``: the error passes (a busy server): such a row inserted alone is refused only once."""
        super().__init__(inner)
        self._symbol, self._passing = symbol, passing
        self.refused_alone: set[int] = set()
        self.probes = 0

    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> int:
        self.probes += table.endswith("_probe")
        if "symbol" in columns and self._symbol in data[list(columns).index("symbol")]:
            seqs = data[list(columns).index("seq")]
            if not (self._passing and len(seqs) == 1 and seqs[0] in self.refused_alone):
                self.refused_alone.update(seqs if len(seqs) == 1 else ())
                raise ValueError(f"injected: cannot encode a {self._symbol} row")
        return self._inner.insert_columns(table, columns, data)


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    made = writer_settings("kafka", tmp_path, kafka_bootstrap)
    yield made
    delete_topics(kafka_bootstrap, made.kafka.topic_prefix)


def publish(settings: Settings, events: Sequence[Event]) -> None:
    producer = build_producer(settings, open_bus(settings))
    producer.publish_many(events)
    assert producer.flush(30)
    producer.close()


def start_writer(settings: Settings, store: Store, **options: Any) -> tuple[Writer, CheckedCommits, RecordedDeadLetters]:
    bus = open_bus(settings)
    topics = TopicSet(settings.kafka.topic_prefix)
    bus.ensure_topics(topics.all_topics, settings.kafka.partitions)
    letters = RecordedDeadLetters(bus.producer(), topics.deadletter)
    consumer = CheckedCommits(bus.consumer(settings.kafka.consumer_group), store, topics, letters.positions)
    writer = Writer(consumer, store, topics, letters, **{"batch_rows": 120, "batch_age_s": 0.02,
                                                         "retry_initial_s": 0.02, "retry_max_s": 0.2, **options})
    return writer, consumer, letters


def settle(writer: Writer, condition: Callable[[], bool], what: str) -> None:
    wait_until(condition, 60, what)
    wait_until(lambda: not writer.stats().retrying and writer.stats().total_lag == 0, 30, "the writer to settle")
    time.sleep(0.3)  # a doubled insert would land now


def settle_with_poison_aside(writer: Writer, store: Store, mixed: Sequence[Event], poison: Sequence[Event]) -> None:
    settle(writer, lambda: stored_count(store) >= len(stored_kinds(mixed)) - len(poison)
           and writer.stats().dead_lettered >= len(poison), "every good row stored and the poison set aside")


def read_dead_letters(settings: Settings, at_least: int) -> list[tuple[Event, dict[str, str]]]:
    """Every message on the dead-letter topic (waiting for ``at_least``, then for stragglers)."""
    reader = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": f"{settings.kafka.topic_prefix}-dlq",
                       "auto.offset.reset": "earliest", "enable.auto.commit": False})
    reader.subscribe([TopicSet(settings.kafka.topic_prefix).deadletter])
    letters: list[tuple[Event, dict[str, str]]] = []
    deadline, quiet_until = time.monotonic() + 30, float("inf")
    while time.monotonic() < min(deadline, quiet_until):
        message = reader.poll(0.2)
        if message is not None and message.error() is None:
            headers = {k: v.decode() for k, v in message.headers() or []}
            letters.append((decode(message.value()), headers))
        if len(letters) >= at_least and quiet_until == float("inf"):
            quiet_until = time.monotonic() + 1.5
    reader.close()
    return letters


def with_poison(events: list[Event], poison: dict[int, Callable[[Event], Event]]) -> tuple[list[Event], list[Event]]:
    """``events`` with the event at each index replaced; returns (every event, the poison ones)."""
    mixed = list(events)
    for index, spoil in poison.items():
        mixed[index] = spoil(events[index])
    return mixed, [mixed[index] for index in poison]


def first_index(events: Sequence[Event], kind: type, after: int) -> int:
    return next(i for i, event in enumerate(events) if isinstance(event, kind) and i > after)


def assert_resumes_at_the_end(settings: Settings, store: Store, consumer: CheckedCommits) -> None:
    """No commit ever passed a row that was neither stored nor dead-lettered, and a writer starting now would
    start every partition at its end: at the larger of the group's committed offset (as the broker has it) and
    ``max(bus_offset) + 1``, as the writer chooses on assignment."""
    assert consumer.violations == []
    topics = TopicSet(settings.kafka.topic_prefix)
    reader = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": settings.kafka.consumer_group,
                       "enable.auto.commit": False})
    partitions = [KafkaTopicPartition(topic, number) for topic in topics.event_topics
                  for number in range(settings.kafka.partitions)]
    stored = StoredPositions(store, topics).next_offsets(TopicPartition(tp.topic, tp.partition) for tp in partitions)
    behind = []
    for tp in reader.committed(partitions, timeout=10):
        end = reader.get_watermark_offsets(tp, timeout=10)[1]
        start = max(tp.offset, stored.get(TopicPartition(tp.topic, tp.partition), -1))
        if end > 0 and start != end:
            behind.append(f"{tp.topic}[{tp.partition}] would start at {start} of {end}")
    reader.close()
    assert not behind, f"a restart would not resume at the end: {behind}"


@pytest.mark.timeout(180)
def test_values_their_columns_cannot_hold_are_dead_lettered_alone_and_every_other_row_is_stored_once(settings, store):
    """A Level 1 size in [2**63, 2**64) used to stop its partition on the server (every retry failed) and was
    stored negative on chDB; a NaN bid was stored as 0 on chDB."""
    migrate(store)
    events = make_events(900)
    mixed, poison = with_poison(events, {
        first_index(events, Trade, 300): lambda e: msgspec.structs.replace(e, size=2**63 + 5),
        first_index(events, Quote, 500): lambda e: msgspec.structs.replace(e, bid=float("nan")),
        first_index(events, Depth, 100): lambda e: msgspec.structs.replace(e, size=2**64 - 1),
    })
    publish(settings, mixed)
    writer, consumer, _ = start_writer(settings, store)
    writer.start()
    try:
        settle_with_poison_aside(writer, store, mixed, poison)
    finally:
        writer.stop()
    assert_stored_exactly_once(store, [event for event in mixed if all(event is not p for p in poison)])
    letters = read_dead_letters(settings, len(poison))
    assert sorted((e.source, e.seq) for e, _ in letters) == sorted((e.source, e.seq) for e in poison)
    reasons = sorted(headers["tickops.reason"] for _, headers in letters)
    assert [r.split(" = ")[0] for r in reasons] == ["depth.size", "quotes.bid", "trades.size"]
    assert "9223372036854775813 does not fit its column type Int64" in reasons[2]
    assert writer.stats().dead_lettered == len(poison)
    assert_resumes_at_the_end(settings, store, consumer)


@pytest.mark.timeout(180)
def test_a_row_the_store_refuses_alone_is_found_on_the_probe_table_and_dead_lettered_with_the_error(
    settings, store
):
    """An error nobody foresaw: rows that fail alone (also a lone one in a quiet moment, its batch of one)
    are dead-lettered with the driver's message; the rest of their batches is stored once."""
    migrate(store)
    events = make_events(900)
    spoil: Callable[[Event], Event] = lambda e: msgspec.structs.replace(e, symbol="POISON")  # noqa: E731
    mixed, poison = with_poison(events, {first_index(events, Trade, 200): spoil, first_index(events, Trade, 201): spoil,
                                         first_index(events, Quote, 600): spoil})
    refusing = RefusesSymbol(store, "POISON")
    publish(settings, mixed)
    writer, consumer, _ = start_writer(settings, refusing)
    writer.start()
    try:
        settle_with_poison_aside(writer, store, mixed, poison)
        lone = Trade(symbol="POISON", price=1.0, size=1, ts_ns=events[-1].ts_ns, source="late", seq=1)  # type: ignore[attr-defined]
        publish(settings, [lone])
        settle(writer, lambda: writer.stats().dead_lettered >= len(poison) + 1, "the lone poison row set aside")
    finally:
        writer.stop()
    poison.append(lone)
    assert_stored_exactly_once(store, [event for event in mixed if all(event is not p for p in poison)])
    letters = read_dead_letters(settings, len(poison))
    assert sorted((e.source, e.seq) for e, _ in letters) == sorted((e.source, e.seq) for e in poison)
    for _, headers in letters:
        assert "fails for this row alone" in headers["tickops.reason"]
        assert "ValueError: injected: cannot encode a POISON row" in headers["tickops.reason"]
    assert refusing.probes > 0
    assert_resumes_at_the_end(settings, store, consumer)


@pytest.mark.timeout(180)
def test_a_value_the_driver_refuses_is_found_by_the_split_when_no_range_check_catches_it(
    settings, server_store, monkeypatch
):
    """The split does not depend on the range check: with it switched off, clickhouse-driver's own refusal of a
    size beyond Int64 is found on the probe table and dead-lettered with the driver's message."""
    monkeypatch.setattr("storage.inserter.out_of_range", lambda batch: {}, raising=False)  # absent before the fix
    migrate(server_store)
    events = make_events(600)
    mixed, poison = with_poison(events, {first_index(events, Trade, 250): lambda e: msgspec.structs.replace(e, size=2**63)})
    publish(settings, mixed)
    writer, consumer, _ = start_writer(settings, server_store)
    writer.start()
    try:
        settle(writer, lambda: writer.stats().dead_lettered >= 1, "the poison row set aside")
    finally:
        writer.stop()
    assert_stored_exactly_once(server_store, [event for event in mixed if event is not poison[0]])
    ((letter, headers),) = read_dead_letters(settings, 1)
    assert letter == poison[0] and "Column size: argument out of range" in headers["tickops.reason"]
    assert_resumes_at_the_end(settings, server_store, consumer)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("broken", ["the table", "the table and its probe twin"])
def test_a_batch_in_which_every_row_fails_is_kept_and_retried_and_nothing_is_committed_past_it(
    settings, store, broken
):
    """Our bug or the server's, not a row's: nothing is dead-lettered, the trades stop, and once the table is
    repaired every event is stored exactly once."""
    migrate(store)
    trades = store.table("trades")
    events = make_events(1200)
    publish(settings, events[:600])
    writer, consumer, letters = start_writer(settings, store)
    writer.start()
    try:
        settle(writer, lambda: stored_count(store) >= len(stored_kinds(events[:600])), "the first half to be stored")
        stored_trades = store.query(f"SELECT count() FROM {trades}")[0][0]
        store.execute(f"ALTER TABLE {trades} DROP COLUMN basis")
        if broken != "the table":
            store.execute(f"DROP TABLE {store.table(schema.probe_table('trades'))}")
        failures = writer.stats().write_failures
        publish(settings, events[600:])
        wait_until(lambda: writer.stats().write_failures >= failures + 4, 60, "the batch to be retried")
        assert writer.stats().retrying
        assert store.query(f"SELECT count() FROM {trades}")[0][0] == stored_trades
        assert writer.stats().dead_lettered == 0 and letters.acknowledged == []
        assert consumer.violations == []

        store.execute(f"ALTER TABLE {trades} ADD COLUMN basis String AFTER total_volume")
        if broken != "the table":
            store.execute(schema.MIGRATIONS[3].statements[0].format(db=store.database))
        settle(writer, lambda: stored_count(store) >= len(stored_kinds(events)), "every row once the table is repaired")
    finally:
        writer.stop()
    assert "basis" in writer.stats().last_error
    assert writer.stats().dead_lettered == 0
    assert_stored_exactly_once(store, events)
    assert_resumes_at_the_end(settings, store, consumer)


class Killed(BaseException):
    """The writer process dies here (BaseException: nothing in the writer catches it)."""


class DiesBeforeInsertingAfter(WrappedStore):
    """The real store, except that the process 'dies' at the first trades insert once ``ready()``."""

    def __init__(self, inner: Store, ready: Callable[[], bool]) -> None:
        super().__init__(inner)
        self._ready = ready

    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> int:
        if table == "trades" and self._ready():
            raise Killed
        return self._inner.insert_columns(table, columns, data)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("dies", ["after the dead letter, before the insert", "after the insert, before the commit"])
def test_a_writer_killed_around_setting_a_poison_row_aside_resumes_exactly(settings, store, dies):
    migrate(store)
    events = make_events(900)
    mixed, poison = with_poison(events, {first_index(events, Trade, 400): lambda e: msgspec.structs.replace(e, size=2**63)})
    publish(settings, mixed)

    holder: list[RecordedDeadLetters] = []
    ready = lambda: bool(holder and holder[0].acknowledged)  # noqa: E731

    def crash_after_insert(batch: InsertBatch) -> None:
        if ready():
            raise Killed

    doomed_store = DiesBeforeInsertingAfter(store, ready) if dies.startswith("after the dead") else store
    doomed, consumer, letters = start_writer(settings, doomed_store, batch_rows=200,
                                             after_insert=None if doomed_store is not store else crash_after_insert)
    holder.append(letters)
    deadline = time.monotonic() + 60
    with pytest.raises(Killed):
        while time.monotonic() < deadline:
            doomed.step()
    consumer.close()  # gone without committing what it was writing
    letters.close()
    assert len(letters.acknowledged) == 1

    successor, successor_consumer, _ = start_writer(settings, store)
    successor.start()
    try:
        settle(successor, lambda: stored_count(store) >= len(stored_kinds(mixed)) - 1, "the rest to be stored")
    finally:
        successor.stop()
    assert_stored_exactly_once(store, [event for event in mixed if event is not poison[0]])
    letters_on_topic = read_dead_letters(settings, 1)
    assert {(e.source, e.seq) for e, _ in letters_on_topic} == {(poison[0].source, poison[0].seq)}
    assert_resumes_at_the_end(settings, store, successor_consumer)


def test_the_probe_blames_a_row_only_when_it_fails_alone_twice_while_another_row_gets_in(store):
    """Probing stores nothing; a row is blamed only with evidence that rows get in (a neighbour in the run, or
    for a lone row the last stored one), and only when it fails alone a second time."""
    migrate(store)
    rows_ = [BusRecord("t.trades", 0, offset, b"A", Trade(symbol="POISON" if offset in (3, 7) else "A", price=1.0,
                                                           size=1, ts_ns=1, source="s", seq=offset)) for offset in range(10)]
    probe = PoisonProbe(RefusesSymbol(store, "POISON"))
    blamed = probe.rows_failing_alone("trades", rows_, None)
    assert sorted(blamed) == [3, 7] and all("injected: cannot encode" in error for error in blamed.values())
    assert probe.rows_failing_alone("trades", rows_[3:4], None) == {}  # lone, and nothing known to get in
    assert list(probe.rows_failing_alone("trades", rows_[3:4], rows_[0])) == [0]
    assert probe.rows_failing_alone("trades", [rows_[3], rows_[7]], rows_[0]) == {}  # every row of the run fails
    passing = RefusesSymbol(store, "POISON", passing=True)
    assert PoisonProbe(passing).rows_failing_alone("trades", rows_, None) == {}
    assert passing.refused_alone == {3, 7}  # each was refused alone once, then taken
    assert store.query(f"SELECT count() FROM {store.table('trades')}") == [(0,)]
    assert store.query(f"SELECT count() FROM {store.table('bars_1m')}") == [(0,)]


def test_every_numeric_column_that_events_fill_is_range_checked_for_its_type(store):
    """The range check and the schema cannot drift apart, and each probe twin has its table's columns."""
    migrate(store)
    ours = {"stored_ns", "bus_partition", "bus_offset", "backfilled", "connected"}  # filled by storage.rows
    for table in EVENT_TABLES:
        types = dict(store.query(f"SELECT name, type FROM system.columns WHERE database = '{store.database}' "
                                 f"AND table = '{table}'"))
        numeric = {name for name, kind in types.items() if "Int" in kind or "Float" in kind}
        assert set(rows.COLUMN_RANGES[table]) == numeric - ours
        for name, checked in rows.COLUMN_RANGES[table].items():
            assert checked.type_name.split(" ")[0] == types[name], (table, name)
        twin = store.query(f"SELECT name, type FROM system.columns WHERE database = '{store.database}' "
                           f"AND table = '{schema.probe_table(table)}'")
        assert dict(twin) == types, f"{schema.probe_table(table)} differs from {table}: recreate it in a migration"

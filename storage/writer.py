"""The ClickHouse writer: consume a batch, insert it, then commit its offsets. Nothing lost, nothing doubled.

    BusConsumer ──poll──► BatchBuffer ──due (rows or age)──► InsertBatch ──► DuplicateFilter
                                                                                 │ drops events already stored
                            Inserter: dead letters, then atomic runs per table ◄─┘ or earlier in the batch
                                                                                   (old trades: asks storage)
                                │ ok          │ poison rows set aside      │ any other failure
                                ▼             ▼                            ▼
                      OffsetCommitter   dead-letter them, then     keep the batch, pause the partitions,
                          .commit       write the rest at once     retry with backoff (only rows not yet stored)

Where to start: on assignment each partition starts at the larger of the group's
committed offset and ``max(bus_offset) + 1`` of its table (:mod:`storage.positions`);
a crash between insert and commit therefore re-reads nothing that is stored.
Rebalance: eager, so a revoke drops everything buffered or pending; the next owner
re-reads it from the same positions. docs/DELIVERY.md lists every fault and its test.

Run it with :meth:`Writer.run` (or :meth:`start` / :meth:`stop`) or drive :meth:`step`
from a scheduler; one thread at a time. ``python -m storage.writer`` runs it as a
process over Kafka.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bus.base import Bus, BusConsumer, BusError, PartitionStart, Record, TopicPartition
from bus.deadletter import DeadLetterSink
from bus.latency import HistogramSnapshot, LatencyHistogram
from bus.topics import TopicSet
from config import Settings
from storage.batching import BatchBuffer, InsertBatch
from storage.committer import OffsetCommitter
from storage.dedup import DuplicateFilter, recent_keys, stored_copies
from storage.inserter import Inserter
from storage.positions import StoredPositions
from storage.store import StorageError, StorageUnavailable, Store

log = logging.getLogger(__name__)

CRASH_HOOK_ENV = "TICKOPS_WRITER_CRASH_AFTER_INSERT"
_T = TypeVar("_T")


@dataclass(frozen=True)
class WriterStats:
    consumed: int  # records read from the bus
    stored: int  # rows inserted
    batches: int  # batches written and committed
    skipped: int  # records of kinds that are not stored (heartbeats...)
    dead_lettered: int  # undecodable, misrouted, or poison rows (a value out of range, an insert failing alone)
    duplicates: int  # rows dropped because their event was already stored or earlier in the batch
    dedup_evicted: int  # keys the duplicate filter forgot to stay within storage.dedup_keys per partition
    write_failures: int  # failed attempts (storage or dead-letter topic); alert on a rising count
    commit_failures: int
    retrying: bool  # a batch is waiting for storage to come back
    lag: dict[str, int]  # "topic[partition]" -> messages on the bus not yet stored
    latency: HistogramSnapshot  # recv_ns -> stored_ns
    last_error: str

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


@dataclass(frozen=True)
class WriterProgress:
    """Where storage stands on the bus, per assigned partition: ``next`` is the first offset not stored
    yet, ``ends`` the partition's end at the ``refreshes``-th lag refresh (about once a second). A catch-up
    after a restart waits until ``next`` reaches an ``ends`` seen after it asked (runtime/catchup.py)."""

    next: dict[TopicPartition, int]
    ends: dict[TopicPartition, int]
    refreshes: int


class Writer:
    def __init__(
        self,
        consumer: BusConsumer,
        store: Store,
        topics: TopicSet,
        dead_letters: DeadLetterSink,
        *,
        batch_rows: int = 20_000,
        batch_age_s: float = 0.05,
        events_per_message: int = 1,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
        dedup_keys: int = 20_000,
        lag_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
        after_insert: Callable[[InsertBatch], None] | None = None,
    ) -> None:
        """``after_insert`` runs between a successful insert and its commit (the crash test hook)."""
        self._consumer = consumer
        self._topics = topics
        self._dead_letters = dead_letters
        self._buffer = BatchBuffer(topics, batch_rows, batch_age_s, events_per_message)
        self._latency = LatencyHistogram()
        self._inserter = Inserter(store, dead_letters, self._latency, wall_ns)
        self._positions = StoredPositions(store, topics)
        self._store = store
        self._duplicates = DuplicateFilter(dedup_keys)
        self._committer = OffsetCommitter(consumer)
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._lag_interval_s = lag_interval_s
        self._clock = clock
        self._after_insert = after_insert
        self._pending: InsertBatch | None = None
        self._retry_at = 0.0
        self._next: dict[TopicPartition, int] = {}  # first offset not yet stored, per assigned partition
        self._lag: dict[str, int] = {}
        self._lag_at = float("-inf")
        self._ends: dict[TopicPartition, int] = {}
        self._lag_refreshes = 0
        self._subscribed = False
        self._closed = False
        self._halted = False  # stopped while positions were unknown: never write what was read after
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumed = self._stored = self._batches = self._skipped = 0
        self._write_failures = 0
        self._last_error = ""

    # ------------------------------------------------------------------ rebalance
    def _on_assign(self, starts: Mapping[TopicPartition, PartitionStart]) -> dict[TopicPartition, int]:
        self._buffer.clear()
        stored = self._ask_storage(lambda: self._positions.next_offsets(list(starts)), "reading stored positions", {})
        chosen: dict[TopicPartition, int] = {}
        for tp, start in starts.items():
            stored_next = stored.get(tp)
            if stored_next is not None and start.end is not None and stored_next > start.end:
                log.error(
                    "storage holds offsets beyond the end of this partition (topic recreated?); ignoring them",
                    extra={"partition": str(tp), "stored_next": stored_next, "end": start.end},
                )
                stored_next = None
                del stored[tp]
            candidates = [offset for offset in (start.committed, stored_next) if offset is not None]
            if candidates:
                chosen[tp] = max(candidates)
        self._next = {}  # where reading starts (the log's first offset when nothing is known): the base of the lag
        for tp, start in starts.items():
            first = chosen.get(tp, start.begin)
            if first is not None:
                self._next[tp] = first
        keys = self._ask_storage(lambda: recent_keys(self._store, self._topics, stored, self._duplicates.capacity),
                                 "reading the keys of recently stored rows", {})
        self._duplicates.load(starts, keys, {tp.topic: self._topics.table_for_topic(tp.topic) for tp in starts})
        positions = ", ".join(f"{tp}@{offset}" for tp, offset in sorted(chosen.items(), key=str))
        log.info("partitions assigned", extra={"count": len(starts), "positions": positions})
        return chosen

    def _ask_storage(self, question: Callable[[], _T], doing: str, halted: _T) -> _T:
        """Ask storage about an assignment, retrying while it is down; stopping meanwhile halts the writer."""
        delay = self._retry_initial_s
        while True:
            try:
                return question()
            except StorageError as exc:
                self._record_failure(exc, f"{doing} for an assignment")
            if self._stop.wait(delay):
                self._halted = True
                return halted
            delay = min(delay * 2, self._retry_max_s)

    def _on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        dropped = self._buffer.clear() + (self._pending.pending_rows if self._pending else 0)
        self._pending = None
        self._committer.forget()  # never commit here: lost partitions may mean the broker is unreachable
        self._duplicates.forget()
        self._next.clear()
        log.info("partitions revoked; unwritten records are left for the next owner",
                 extra={"count": len(partitions), "dropped": dropped})

    # ------------------------------------------------------------------ loop
    def open(self) -> None:
        """Join the consumer group (the first :meth:`step` does it when not called)."""
        if not self._subscribed:
            self._consumer.subscribe(self._topics.event_topics, self._on_assign, self._on_revoke)
            self._subscribed = True

    def step(self, timeout_s: float = 0.1) -> int:
        """One iteration: read what is there (waiting up to ``timeout_s``), write a due batch; return records read."""
        self.open()
        now = self._clock()
        if self._pending is not None:
            wait = min(timeout_s, self._retry_at - now)
            if wait > 0:
                self._absorb(self._consumer.poll_batch(1, wait))  # paused: keeps the group membership alive
                return 0
            self._write(self._pending)
            return 0
        left = self._buffer.time_left(now)
        records = self._consumer.poll_batch(self._buffer.room(), timeout_s if left is None else min(timeout_s, left))
        self._absorb(records)
        if self._pending is None and self._buffer.due(self._clock()):
            self._write(self._take())
        if self._clock() - self._lag_at >= self._lag_interval_s:
            self._refresh_lag()
        return len(records)

    def _absorb(self, records: list[Record]) -> None:
        if self._halted or not records:
            return
        self._consumed += len(records)
        self._buffer.add(records, self._clock())

    def _take(self) -> InsertBatch:
        batch = self._buffer.take()
        self._duplicates.drop_duplicates(batch)
        return batch

    def _write(self, batch: InsertBatch) -> bool:
        try:
            if batch.unchecked:  # trades older than the duplicate filter remembers: ask storage
                self._duplicates.drop_stored(batch, stored_copies(self._store, batch))
            if batch.attempts:
                self._positions.drop_stored(batch)
            while not self._inserter.write(batch):  # poison rows were set aside: dead-letter them, write the rest
                self._positions.drop_stored(batch)  # a run longer than a block may have been stored in part
        except Exception as exc:  # noqa: BLE001 - any failure keeps the batch: dropping it would let later commits skip it
            batch.attempts += 1
            self._record_failure(exc, "writing a batch", rows=batch.pending_rows, attempt=batch.attempts)
            self._retry_at = self._clock() + min(self._retry_initial_s * 2 ** (batch.attempts - 1), self._retry_max_s)
            if self._pending is None:
                self._pending = batch
                self._consumer.pause()
            return False
        if self._pending is not None:
            self._pending = None
            self._consumer.resume()
        if self._after_insert is not None:
            self._after_insert(batch)
        self._committer.commit(batch.offsets)
        self._next.update(batch.offsets)
        self._stored += batch.stored
        self._batches += 1
        self._skipped += batch.skipped
        return True

    def _record_failure(self, exc: Exception, doing: str, **fields: int) -> None:
        self._write_failures += 1
        self._last_error = f"{doing}: {exc}"
        level = logging.WARNING if isinstance(exc, StorageUnavailable) else logging.ERROR
        log.log(level, "write failed; keeping the batch and retrying",
                extra={"doing": doing, "error": str(exc), "write_failures": self._write_failures, **fields})

    def _refresh_lag(self) -> None:
        marks = self._consumer.high_watermarks()
        self._lag = {str(tp): max(0, marks[tp] - offset) for tp, offset in self._next.items() if tp in marks}
        self._lag_at = self._clock()
        self._ends = marks
        self._lag_refreshes += 1

    def flush(self, timeout_s: float) -> bool:
        """Write everything buffered or pending within ``timeout_s``; True when nothing is left."""
        deadline = self._clock() + timeout_s
        while not self._halted and (self._pending is not None or len(self._buffer)):
            if self._pending is not None:
                wait = self._retry_at - self._clock()
                if wait > deadline - self._clock():
                    break
                if wait > 0:
                    time.sleep(wait)
                self._write(self._pending)
            else:
                self._write(self._take())
        return self._pending is None and not len(self._buffer)

    def run(self, stop: threading.Event | None = None) -> None:
        """Step until ``stop`` (or :meth:`stop`) is set, then flush and close."""
        if stop is not None:
            self._stop = stop
        try:
            while not self._stop.is_set():
                self.step()
        finally:
            self.close()

    def start(self) -> None:
        """Run in a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self.run, name="clickhouse-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def close(self, flush_timeout_s: float = 5.0) -> None:
        """Write what is buffered (when storage allows), leave the group, close the dead-letter producer.
        Idempotent."""
        self._stop.set()
        if self._closed:
            return
        self._closed = True
        if not self.flush(flush_timeout_s):
            log.warning("closing with unwritten records; they stay uncommitted on the bus for the next start",
                        extra={"count": len(self._buffer) + (self._pending.pending_rows if self._pending else 0)})
        self._refresh_lag()
        self._consumer.close()
        self._dead_letters.close()
        self._inserter.close()
        stats = self.stats()
        log.info("writer closed", extra={"stored": stats.stored, "batches": stats.batches,
                                         "dead_lettered": stats.dead_lettered, "write_failures": stats.write_failures})

    @property
    def latency(self) -> LatencyHistogram:
        """Receive -> stored, with its sliding windows (read it, never observe into it)."""
        return self._latency

    def progress(self) -> WriterProgress:
        """Safe from another thread: copies of dicts the writer's thread replaces or updates."""
        return WriterProgress(dict(self._next), dict(self._ends), self._lag_refreshes)

    def stats(self) -> WriterStats:
        return WriterStats(
            self._consumed, self._stored, self._batches, self._skipped, self._inserter.dead_lettered,
            self._duplicates.duplicates, self._duplicates.evicted, self._write_failures,
            self._committer.failures, self._pending is not None, dict(self._lag), self._latency.snapshot(),
            self._last_error,
        )


def build_writer(
    settings: Settings,
    bus: Bus,
    store: Store,
    *,
    after_insert: Callable[[InsertBatch], None] | None = None,
) -> Writer:
    """A :class:`Writer` from settings; creates the topics (raises :class:`bus.base.BusUnavailable` when
    the broker is down: retry). ``store`` must be migrated."""
    kafka, storage = settings.kafka, settings.storage
    topics = TopicSet(kafka.topic_prefix)
    bus.ensure_topics(topics.all_topics, kafka.partitions)
    return Writer(
        bus.consumer(kafka.consumer_group),
        store,
        topics,
        DeadLetterSink(bus.producer(), topics.deadletter),
        batch_rows=storage.batch_rows,
        batch_age_s=storage.batch_age_ms / 1000,
        events_per_message=settings.bus.events_per_message,
        retry_initial_s=storage.retry_initial_ms / 1000,
        retry_max_s=storage.retry_max_ms / 1000,
        dedup_keys=storage.dedup_keys,
        after_insert=after_insert,
    )


def _crash_after_insert(n: int) -> Callable[[InsertBatch], None]:
    """Test hook (``TICKOPS_WRITER_CRASH_AFTER_INSERT=N``): SIGKILL this process after the N-th insert, before
    its commit, to prove a restart stores each event once."""
    inserts = itertools.count(1)

    def crash(batch: InsertBatch) -> None:
        if next(inserts) >= n:
            log.critical("crash hook: killing the writer between insert and commit",
                         extra={"env": CRASH_HOOK_ENV, "rows": batch.row_count})
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    return crash


def _retry(what: str, action: Callable[[], object], stop: threading.Event,
           failed: Callable[[str, str], None] = lambda doing, error: None) -> bool:
    """Run ``action`` until it succeeds (True) or ``stop`` is set (False); the services may still be starting.
    ``failed(what, error)`` hears of each failed attempt (the health endpoint shows it)."""
    delay = 0.2
    while not stop.is_set():
        failed(what, "")
        try:
            action()
            return True
        except (StorageError, BusError) as exc:
            failed(what, str(exc))
            log.warning("not ready, retrying", extra={"doing": what, "error": str(exc), "delay_s": delay})
        stop.wait(delay)
        delay = min(delay * 2, 5.0)
    return False


def main() -> int:
    """``python -m storage.writer``: the writer as a process over Kafka; SIGTERM/SIGINT stop it cleanly.

    With ``monitoring.enabled`` it serves ``/healthz`` and ``/metrics`` on ``monitoring.port`` from the
    start (degraded until storage is migrated and the topics exist). Exit code 2 for bad configuration.
    """
    from bus.factory import open_bus
    from monitoring.logs import start_process
    from storage.factory import open_store
    from storage.migrate import migrate
    from storage.writer_health import WriterProcessState, writer_monitoring
    from storage.writer_status import WriterStatusLoop

    settings = start_process("writer")
    if settings.bus.kind != "kafka":
        log.error("the writer process needs bus.kind=kafka (the in-process bus lives inside the engine)")
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    state = WriterProcessState()
    monitoring = None
    if settings.monitoring.enabled:
        try:
            monitoring = writer_monitoring(state, settings.monitoring.host, settings.monitoring.port)
            monitoring.start()
        except OSError as exc:  # the pipeline matters more than its endpoint
            log.error("monitoring endpoint not started", extra={"port": settings.monitoring.port, "error": str(exc)})
    store = open_store(settings)
    bus = open_bus(settings)
    crash_after = os.environ.get(CRASH_HOOK_ENV)
    hook = _crash_after_insert(int(crash_after)) if crash_after else None
    topics = TopicSet(settings.kafka.topic_prefix)
    # On the fleet status channel from the start, so the Fleet page shows a writer waiting for storage too.
    status = WriterStatusLoop(settings, state.status_sample) if settings.fleet.enabled else None
    if status is not None:
        status.start()
    try:
        if not (_retry("migrate", lambda: migrate(store), stop, state.preparing)
                and _retry("create topics", lambda: bus.ensure_topics(topics.all_topics, settings.kafka.partitions),
                           stop, state.preparing)):
            return 0
        log.info("writer process started", extra={"settings": repr(settings.redacted())})
        writer = build_writer(settings, bus, store, after_insert=hook)
        state.writing(writer)
        writer.run(stop)
    finally:
        if status is not None:
            status.stop()
        store.close()
        if monitoring is not None:
            monitoring.stop()
    return 0


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: its loggers are then named storage.writer (the
    # Logs page's component) and its classes are the ones storage.writer_health knows.
    from storage.writer import main as _main

    raise SystemExit(_main())

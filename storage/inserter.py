"""Write one :class:`InsertBatch`: dead letters first, then each table in atomic pieces.

Atomic pieces: ClickHouse writes an insert as one part per table partition, and a part
appears whole or not at all. Rows are therefore inserted in runs that stay in bus order
and share one 15-minute time bucket: every timezone offset in use is a multiple of 15
minutes, so a run falls in one day partition whatever the server's timezone, and lands
as one part (or, for runs longer than a block, as consecutive parts in order). A bus
message of several events never spans two buckets (bus/producer.py cuts it there), so a
run holds whole messages. After a crash or an outage at any point, what is stored of each
bus partition is a prefix of its offsets, which is what makes "resume at max(bus_offset) + 1"
exact.

Poison rows: a row with a value its column cannot hold (:func:`storage.rows.out_of_range`),
or one that fails alone on the probe table after an insert failed
(:class:`storage.probe.PoisonProbe`), is set aside: :meth:`Inserter.write` stops that
table before the row's run, moves the row to the batch's dead letters and returns False.
The next call sends the dead letters, and only once the broker has acknowledged them
inserts the rows after them, so a crash never leaves a row behind a stored one unless it
is in the dead-letter topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bus.base import BusRecord, PoisonRecord
from bus.codec import encode
from bus.deadletter import DeadLetterSink
from bus.producer import TIME_BUCKET_NS
from bus.latency import LatencyHistogram
from storage.batching import InsertBatch
from storage.probe import PoisonProbe
from storage.rows import out_of_range, to_batches
from storage.store import StorageUnavailable, Store

log = logging.getLogger(__name__)

_BUCKET_NS = TIME_BUCKET_NS  # the producer cuts bus messages at the same bounds

_Poison = list[tuple[BusRecord, str]]
_Outcome = tuple[int, Exception | None, _Poison]  # rows stored, the error that stopped the table, rows to set aside


def _leading_run(records: list[BusRecord]) -> int:
    """How many leading records share the first record's 15-minute bucket."""
    bucket = records[0].event.ts_ns // _BUCKET_NS  # type: ignore[union-attr]
    for index, record in enumerate(records):
        if record.event.ts_ns // _BUCKET_NS != bucket:  # type: ignore[union-attr]
            return index
    return len(records)


class Inserter:
    def __init__(
        self,
        store: Store,
        dead_letters: DeadLetterSink,
        latency: LatencyHistogram,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._store = store
        self._dead_letters = dead_letters
        self._latency = latency
        self._wall_ns = wall_ns
        self._probe = PoisonProbe(store, wall_ns)
        self._last_stored: dict[str, BusRecord] = {}  # per table: the probe's evidence that rows get in
        self.dead_lettered = 0  # acknowledged by the dead-letter topic
        # Tables are written concurrently: an insert costs a part on the server (tens of ms on
        # 18.16), so a batch touching four tables would otherwise pay four in a row.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="inserter")

    def write(self, batch: InsertBatch) -> bool:
        """Store what is left of ``batch``: True when done; False when poison rows were set aside as dead
        letters (call again for the rest); raises StorageError/BusError (or what an insert raised) with
        the rest kept in it."""
        if batch.dead_letters:
            self._dead_letters.send(batch.dead_letters)
            self.dead_lettered += len(batch.dead_letters)
            batch.dead_letters = []
        pending = [(table, records) for table, records in batch.rows.items() if records]
        futures = []
        inline = pending if len(pending) == 1 else []
        for index, (table, records) in enumerate(pending if not inline else []):
            try:
                futures.append(self._pool.submit(self._write_table, table, records))
            except RuntimeError:  # interpreter shutting down (a final flush from atexit): no new threads
                inline = pending[index:]
                break
        outcomes = [future.result() for future in futures] + [self._write_table(t, r) for t, r in inline]
        batch.stored += sum(stored for stored, _, _ in outcomes)
        poison = [row for _, _, rows in outcomes for row in rows]
        if poison:
            self._set_aside(batch, poison)
        error = next((error for _, error, _ in outcomes if error is not None), None)
        if error is not None:
            raise error
        return not poison

    def _write_table(self, table: str, records: list[BusRecord]) -> _Outcome:
        """Insert ``records`` run by run, removing each stored run, until done, an error, or poison."""
        stored = 0
        while records:
            run = records[: _leading_run(records)]
            columns = to_batches([r.event for r in run], self._wall_ns(), [(r.partition, r.offset) for r in run])[table]
            bad = out_of_range(columns)
            if bad:
                return stored, None, [(run[index], reason) for index, reason in sorted(bad.items())]
            try:
                self._store.insert_columns(table, columns.columns, columns.data)
            except StorageUnavailable as exc:
                return stored, exc, []
            except Exception as exc:  # noqa: BLE001 - one row's fault or everyone's: the probe tells
                return (stored, *self._blame(table, run, exc))
            done_ns = self._wall_ns()
            self._last_stored[table] = run[-1]
            del records[: len(run)]
            stored += len(run)
            self._latency.observe_many(done_ns - r.event.recv_ns for r in run if r.event.recv_ns)
        return stored, None, []

    def _blame(self, table: str, run: list[BusRecord], error: Exception) -> tuple[Exception | None, _Poison]:
        """The rows of a failed run that fail alone (to set aside), else the insert's error (to retry)."""
        try:
            alone = self._probe.rows_failing_alone(table, run, self._last_stored.get(table))
        except StorageUnavailable as exc:
            return exc, []
        if not alone:
            return error, []
        return None, [(run[index], f"insert into {table} fails for this row alone while other rows get in: {reason}")
                      for index, reason in sorted(alone.items())]

    def _set_aside(self, batch: InsertBatch, poison: _Poison) -> None:
        """Move ``poison`` from the batch's rows to its dead letters (sent before anything else is inserted)."""
        doomed = {id(record) for record, _ in poison}
        for table, records in batch.rows.items():
            batch.rows[table] = [r for r in records if id(r) not in doomed]
        for record, reason in poison:
            log.warning("row set aside as a dead letter", extra={
                "partition": str(record.position), "offset": record.offset, "reason": reason})
            batch.dead_letters.append(
                PoisonRecord(record.topic, record.partition, record.offset, record.key, encode(record.event), reason,
                             record.index))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

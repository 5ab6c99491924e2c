"""Write one :class:`InsertBatch`: dead letters first, then each table in atomic pieces.

Atomic pieces: ClickHouse writes an insert as one part per table partition, and a part
appears whole or not at all. Rows are therefore inserted in runs that stay in bus order
and share one 15-minute time bucket: every timezone offset in use is a multiple of 15
minutes, so a run falls in one day partition whatever the server's timezone, and lands
as one part (or, for runs longer than a block, as consecutive parts in order). After a
crash or an outage at any point, what is stored of each bus partition is a prefix of
its offsets, which is what makes "resume at max(bus_offset) + 1" exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bus.base import BusRecord
from bus.deadletter import DeadLetterSink
from bus.latency import LatencyHistogram
from storage.batching import InsertBatch
from storage.rows import to_batches
from storage.store import Store

_BUCKET_NS = 15 * 60 * 1_000_000_000


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
        # Tables are written concurrently: an insert costs a part on the server (tens of ms on
        # 18.16), so a batch touching four tables would otherwise pay four in a row.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="inserter")

    def write(self, batch: InsertBatch) -> None:
        """Store what is left of ``batch``; raises StorageError/BusError with the rest kept in it."""
        if batch.dead_letters and not batch.dead_lettered:
            self._dead_letters.send(batch.dead_letters)
            batch.dead_lettered = True
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
        batch.stored += sum(stored for stored, _ in outcomes)
        error = next((error for _, error in outcomes if error is not None), None)
        if error is not None:
            raise error

    def _write_table(self, table: str, records: list[BusRecord]) -> tuple[int, Exception | None]:
        """Insert ``records`` run by run, removing each stored run; return rows stored and the error that stopped it."""
        stored = 0
        while records:
            run = records[: _leading_run(records)]
            columns = to_batches([r.event for r in run], self._wall_ns(), [(r.partition, r.offset) for r in run])[table]
            try:
                self._store.insert_columns(table, columns.columns, columns.data)
            except Exception as exc:  # noqa: BLE001 - handed back to the writer, which keeps the rest and retries
                return stored, exc
            done_ns = self._wall_ns()
            del records[: len(run)]
            stored += len(run)
            self._latency.observe_many(done_ns - r.event.recv_ns for r in run if r.event.recv_ns)
        return stored, None

    def close(self) -> None:
        self._pool.shutdown(wait=True)

"""Find the rows of a failed insert that fail on their own, without storing anything.

An insert that fails while the server is reachable may fail because of one row (a value
the driver cannot encode, a string the server refuses) or because of all of them (our
bug, a broken table, the server). Only the first kind may be set aside: a row is poison
when it fails alone while other rows get in. Each event table has a twin with
``ENGINE = Null`` (migration 4): it parses and converts rows exactly like the table, keeps
nothing, and no materialized view reads it, so bisecting the failed run on the twin
finds the rows that fail alone (twice) with no side effect. A row's neighbours are the other rows
of the failed run: when none of them gets in either, every row failing is not the rows'
fault, and the caller keeps the batch and retries. A run of one row (a lone event in a
quiet moment) has no neighbours; it takes the last row this writer stored in that table
as one, so that a lone bad row does not stop its partition for good.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from bus.base import BusRecord
from storage.rows import to_batches
from storage.schema import probe_table
from storage.store import StorageUnavailable, Store

log = logging.getLogger(__name__)

MAX_PROBES = 256  # per failed run: bounds an attempt when many rows fail; what is found is set aside, the rest next time


class PoisonProbe:
    def __init__(self, store: Store, wall_ns: Callable[[], int] = time.time_ns) -> None:
        self._store = store
        self._wall_ns = wall_ns

    def _error(self, table: str, records: Sequence[BusRecord]) -> str | None:
        """Why the twin refuses ``records``, or None when it takes them; StorageUnavailable propagates."""
        columns = to_batches([r.event for r in records], self._wall_ns(), [(r.partition, r.offset) for r in records])
        try:
            self._store.insert_columns(probe_table(table), columns[table].columns, columns[table].data)
        except StorageUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any refusal is what we are looking for
            return f"{type(exc).__name__}: {exc}"
        return None

    def rows_failing_alone(self, table: str, run: Sequence[BusRecord], control: BusRecord | None) -> dict[int, str]:
        """Index in ``run`` -> the error that row fails with alone; empty when no row is to blame.

        ``control``, the last row stored in ``table`` (None when there is none yet), is the neighbour of a
        run of one row. Raises :class:`StorageUnavailable` when the server goes away meanwhile."""
        whole = self._error(table, run)
        if whole is None:
            log.error("the probe table takes every row of the failed insert: the fault is the table's or the server's",
                      extra={"table": table, "rows": len(run)})
            return {}
        if len(run) == 1:
            if control is None or self._error(table, [control]) is not None:
                log.error("a lone row fails and no row known to be good gets in: keeping the batch",
                          extra={"table": table, "error": whole})
                return {}
            return self._confirmed(table, run, {0: whole})
        alone: dict[int, str] = {}
        passed = False
        probes = 1
        failing = [(0, len(run), whole)]
        while failing and probes < MAX_PROBES:
            lo, hi, error = failing.pop()
            if hi - lo == 1:
                alone[lo] = error
                continue
            mid = (lo + hi) // 2
            for start, end in ((mid, hi), (lo, mid)):  # the left half is searched first (popped last pushed)
                probes += 1
                part_error = self._error(table, run[start:end])
                if part_error is None:
                    passed = True
                else:
                    failing.append((start, end, part_error))
        if not passed:
            log.error("every row probed fails on its own: the fault is ours or the server's, keeping the batch",
                      extra={"table": table, "rows": len(run), "error": whole})
            return {}
        return self._confirmed(table, run, alone)

    def _confirmed(self, table: str, run: Sequence[BusRecord], alone: dict[int, str]) -> dict[int, str]:
        """Those of ``alone`` that fail a second time: a passing error (a busy server) must not cost a good row."""
        return {index: error for index, error in alone.items() if self._error(table, [run[index]]) is not None}

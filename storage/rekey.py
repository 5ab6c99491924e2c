"""Change a ReplacingMergeTree table's sorting key by copy and rename (ClickHouse 18.16 cannot change it in place).

    copy     CREATE <t>_rekeyed AS <t> with the new ORDER BY; per day partition INSERT ... SELECT one row
             per new key (LIMIT 1 BY, the preferred row first); count(copy) = uniqExact(key) of <t>, per day
    swap     DROP the views reading <t>; RENAME <t> TO <t>_before_rekey, <t>_rekeyed TO <t>
    settle   rows of the old table whose key the new one lacks (written by an older writer between the
             copy and the swap) are copied; then there must be none
    rebind   CREATE the views again, on the new table; TRUNCATE and refill each aggregate from the copied
             rows (INSERT ... SELECT with the view's own states, never by re-firing the view); recreate twins
    drop     DROP <t>_before_rekey

Why the views are dropped and created again: a materialized view follows its source differently by
version. On 18.16 (Ordinary database) it is bound by name, so after the rename it fires for the new
table, which would count rows into an aggregate about to be rebuilt. On chDB 26 (Atomic database)
its dependency follows the renamed old table by UUID and then fires for neither table. Neither is
what we want; a view created after the swap reads the new table on both.

Every phase can run again after a crash at any point (the migration lease lets another instance take
over): the copy starts from scratch while the table still has its old key; once it has the new key
the swap is done and the later phases are idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from storage.store import StorageError, Store, sql_string

log = logging.getLogger(__name__)


class RekeyFailed(StorageError):
    """The copy does not hold what the table held; the old table is kept. The message says what differs."""


@dataclass(frozen=True)
class Rekey:
    """Re-sort ``table`` of database ``{db}`` by ``order_by``, keeping one row per key.

    ``prefer`` orders the rows sharing a key, the one kept first. ``views`` are (name, DDL) of the
    materialized views reading the table; ``rebuilds`` (target table, INSERT ... SELECT with a
    ``{where}`` placeholder) refill an aggregate per day partition; ``twins`` are DDL recreating
    tables made ``AS`` the table. DDL takes ``{db}``."""

    table: str
    order_by: tuple[str, ...]
    partition_by: str
    prefer: tuple[str, ...]
    views: tuple[tuple[str, str], ...] = ()
    rebuilds: tuple[tuple[str, str], ...] = ()
    twins: tuple[tuple[str, str], ...] = ()

    def __call__(self, store: Store) -> None:
        table = store.table(self.table)
        copy, old = f"{table}_rekeyed", f"{table}_before_rekey"
        if not _exists(store, self.table) and _exists(store, f"{self.table}_rekeyed"):
            store.execute(f"RENAME TABLE {copy} TO {table}")  # a crash between the two renames of the swap
        if _sorting_key(store, self.table) != self.order_by:
            self._copy(store, table, copy)
            for name, _ in self.views:
                store.execute(f"DROP TABLE IF EXISTS {store.table(name)}")
            store.execute(f"RENAME TABLE {table} TO {old}, {copy} TO {table}")
            log.info("table swapped for its copy with the new sorting key",
                     extra={"table": table, "order_by": ", ".join(self.order_by)})
        if _exists(store, f"{self.table}_before_rekey"):
            self._settle(store, old, table)
        for _, ddl in self.views:
            store.execute(ddl.format(db=store.database))
        for target, select in self.rebuilds:
            store.execute(f"TRUNCATE TABLE {store.table(target)}")
            for day in self._days(store, table):
                store.execute(select.format(db=store.database, where=f"{self.partition_by} = {day}"))
        for name, ddl in self.twins:
            store.execute(f"DROP TABLE IF EXISTS {store.table(name)}")
            store.execute(ddl.format(db=store.database))
        if _exists(store, f"{self.table}_before_rekey"):
            store.execute(f"DROP TABLE {old}")

    def _key(self) -> str:
        return ", ".join(self.order_by)

    def _days(self, store: Store, table: str) -> list[int]:
        return sorted(int(day) for (day,) in store.query(f"SELECT DISTINCT {self.partition_by} FROM {table}"))

    def _copy_rows(self, source: str, where: str) -> str:
        """SELECT of the rows of ``source`` matching ``where``, one per key, the preferred one."""
        return (f"SELECT * FROM {source} WHERE {where} ORDER BY {self._key()}, {', '.join(self.prefer)} "
                f"LIMIT 1 BY {self._key()}")

    def _copy(self, store: Store, table: str, copy: str) -> None:
        """Fill a fresh copy day by day (bounded memory), then check each day's count against the source."""
        store.execute(f"DROP TABLE IF EXISTS {copy}")
        store.execute(f"CREATE TABLE {copy} AS {table} ENGINE = ReplacingMergeTree "
                      f"PARTITION BY {self.partition_by} ORDER BY ({self._key()})")
        days = self._days(store, table)
        for day in days:
            store.execute(f"INSERT INTO {copy} {self._copy_rows(table, f'{self.partition_by} = {day}')}")
        wanted = self._per_day(store, f"uniqExact({self._key()})", table)
        copied = self._per_day(store, "count()", copy)
        if copied != wanted:
            differ = {day: (wanted.get(day, 0), copied.get(day, 0)) for day in set(wanted) | set(copied)
                      if wanted.get(day) != copied.get(day)}
            raise RekeyFailed(
                f"copying {table} to {copy}: distinct keys vs rows copied differ per day {differ}; is a writer of "
                f"an older version still inserting? Stop it; the migration starts the copy again on the next try")
        log.info("table copied with its new sorting key",
                 extra={"table": table, "days": len(days), "rows": sum(copied.values())})

    def _per_day(self, store: Store, aggregate: str, table: str) -> dict[int, int]:
        rows = store.query(f"SELECT {self.partition_by} AS day, {aggregate} FROM {table} GROUP BY day")
        return {int(day): int(n) for day, n in rows}

    def _missing(self, old: str, table: str, day: int) -> str:
        """WHERE clause: rows of ``old`` in ``day`` whose key ``table`` lacks."""
        key = self._key()
        return (f"{self.partition_by} = {day} AND ({key}) NOT IN "
                f"(SELECT {key} FROM {table} WHERE {self.partition_by} = {day})")

    def _settle(self, store: Store, old: str, table: str) -> None:
        """Copy what the old table holds and the new lacks, then prove nothing is left behind."""
        for day in self._days(store, old):
            store.execute(f"INSERT INTO {table} {self._copy_rows(old, self._missing(old, table, day))}")
        left = {day: n for day in self._days(store, old)
                if (n := int(store.query(f"SELECT count() FROM {old} WHERE {self._missing(old, table, day)}")[0][0]))}
        if left:
            raise RekeyFailed(f"{old} still holds rows {table} lacks, per day {left}; it is kept, try again")


def _sorting_key(store: Store, table: str) -> tuple[str, ...]:
    rows = store.query(f"SELECT sorting_key FROM system.tables WHERE database = {sql_string(store.database)} "
                       f"AND name = {sql_string(table)}")
    if not rows:
        raise StorageError(f"{store.table(table)} does not exist: migration 1 creates it")
    return tuple(part.strip() for part in str(rows[0][0]).split(","))


def _exists(store: Store, table: str) -> bool:
    return bool(store.query(f"SELECT 1 FROM system.tables WHERE database = {sql_string(store.database)} "
                            f"AND name = {sql_string(table)}"))

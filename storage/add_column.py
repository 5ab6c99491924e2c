"""Add a column to a table unless it is there: ClickHouse 18.16 has no ``ADD COLUMN IF NOT EXISTS``.

A migration can be interrupted after its ALTER and before the ledger records it (storage/migrate.py);
the next run must then find the column and go on, not fail on "column already exists".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from storage.store import Store, sql_string

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddColumn:
    """``ALTER TABLE {db}.<table> ADD COLUMN <column> <definition>`` when ``column`` is missing. Rows
    written before read the definition's DEFAULT."""

    table: str
    column: str
    definition: str  # type and default, e.g. "UInt8 DEFAULT 0"

    def __call__(self, store: Store) -> None:
        present = store.query(f"SELECT 1 FROM system.columns WHERE database = {sql_string(store.database)} "
                              f"AND table = {sql_string(self.table)} AND name = {sql_string(self.column)}")
        if present:
            log.info("column already there", extra={"table": self.table, "column": self.column})
            return
        store.execute(f"ALTER TABLE {store.table(self.table)} ADD COLUMN {self.column} {self.definition}")

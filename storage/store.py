"""The store interface both backends implement, and its errors.

Callers (migrations, the writer, the dashboard's queries) speak only this interface, so
the embedded default (chDB) and production (a ClickHouse server) run the same SQL. Table
names are always qualified with the database: the database may not exist when a store
is opened, and a shared chDB connection has no per-caller current database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any


class StorageError(RuntimeError):
    """A statement failed on a reachable server (bad SQL, schema mismatch)."""


class StorageUnavailable(StorageError):
    """The server cannot be reached; retry later, do not drop the batch."""


class Store(ABC):
    """A ClickHouse-compatible database holding the TickOps schema in ``database``."""

    database: str

    @abstractmethod
    def execute(self, sql: str) -> None:
        """Run a statement that returns no rows (DDL, INSERT ... SELECT)."""

    @abstractmethod
    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a SELECT and return its rows as tuples."""

    @abstractmethod
    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> int:
        """Insert one batch given column-wise (``data[i]`` is column ``columns[i]``); return rows."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""

    def stats(self) -> dict[str, int]:
        """Counters of the backend's own resources (the server store's connection pool); empty if none."""
        return {}

    def server_version(self) -> tuple[int, ...]:
        """Numeric version, used to gate features newer than ClickHouse 18.16."""
        (text,) = self.query("SELECT version()")[0]
        return tuple(int(part) for part in str(text).split(".") if part.isdigit())

    def table(self, name: str) -> str:
        """Qualified table name in this store's database."""
        return f"{self.database}.{name}"


def row_count(columns: Sequence[Sequence[Any]]) -> int:
    """Rows in a columnar batch; every column must have the same length."""
    lengths = {len(column) for column in columns}
    if len(lengths) > 1:
        raise StorageError(f"columnar batch has columns of different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def sql_string(value: str) -> str:
    """A ClickHouse string literal for ``value`` (data-derived names such as sources go into SQL)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

"""Embedded backend: chDB (current ClickHouse, in-process) for ``make run`` and tests.

chDB allows one data path per process, so connections are shared per path and opening
a second path fails with a message that says so. Statements on the shared connection
are serialised by a lock; inserts travel as JSONCompactEachRow, which keeps types
exact (Int64 nanoseconds, arrays) without a columnar API.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import chdb
import msgspec

from storage.store import StorageError, Store, row_count

_connections: dict[str, Any] = {}
_registry_lock = threading.Lock()
_statement_lock = threading.Lock()
_encode = msgspec.json.Encoder().encode


def _shared_connection(path: Path) -> Any:
    key = str(path.resolve())
    with _registry_lock:
        if key in _connections:
            return _connections[key]
        if _connections:
            (other,) = _connections
            raise StorageError(
                f"chDB is already open at {other} in this process; chDB holds one data path per "
                f"process, so use that path (or a separate database name) instead of {key}"
            )
        path.mkdir(parents=True, exist_ok=True)
        connection = chdb.connect(key)
        connection.query("SET output_format_json_quote_64bit_integers=0")
        _connections[key] = connection
        return connection


class ChdbStore(Store):
    def __init__(self, path: Path | str, database: str = "tickops") -> None:
        self.database = database
        self.path = Path(path)
        self._connection = _shared_connection(self.path)

    def __repr__(self) -> str:
        return f"ChdbStore({self.path}, db={self.database})"

    def _run(self, sql: str, fmt: str = "CSV") -> Any:
        try:
            with _statement_lock:
                return self._connection.query(sql, fmt)
        except Exception as exc:  # chDB raises its own error types for any failed statement
            raise StorageError(str(exc).splitlines()[0]) from exc

    def execute(self, sql: str) -> None:
        self._run(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        result = self._run(sql, "JSONCompact")
        payload = result.bytes()
        if not payload:
            return []
        return [tuple(row) for row in msgspec.json.decode(payload)["data"]]

    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> int:
        rows = row_count(data)
        if rows:
            body = b"\n".join(map(_encode, zip(*data))).decode()
            names = ", ".join(columns)
            self._run(f"INSERT INTO {self.table(table)} ({names}) FORMAT JSONCompactEachRow\n{body}")
        return rows

    def close(self) -> None:
        """The shared connection lives as long as the process; nothing to release per store."""

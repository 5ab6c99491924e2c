"""ClickHouse server backend over the native protocol (clickhouse-driver).

A clickhouse-driver ``Client`` is not thread-safe, so each thread gets its own; the
writer thread and dashboard queries then never wait on each other's sockets.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from storage.store import StorageError, StorageUnavailable, Store, row_count

_NETWORK_ERRORS = (ch_errors.NetworkError, ch_errors.SocketTimeoutError, OSError, EOFError)


class ClickHouseServerStore(Store):
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9000,
        database: str = "tickops",
        user: str = "default",
        password: str = "",
        connect_timeout_s: float = 3.0,
        send_receive_timeout_s: float = 30.0,
    ) -> None:
        self.database = database
        self._params = {
            "host": host,
            "port": port,
            "user": user,
            "password": password,
            "connect_timeout": connect_timeout_s,
            "send_receive_timeout": send_receive_timeout_s,
        }
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never shows the password
        return f"ClickHouseServerStore({self._params['host']}:{self._params['port']}, db={self.database})"

    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = Client(**self._params)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _run(self, sql: str, params: Any = None, **kwargs: Any) -> Any:
        client = self._client()
        try:
            return client.execute(sql, params, **kwargs)
        except _NETWORK_ERRORS as exc:
            client.disconnect()
            raise StorageUnavailable(f"ClickHouse at {self._params['host']}:{self._params['port']} unreachable: {exc}") from exc
        except ch_errors.Error as exc:
            message = (getattr(exc, "message", "") or str(exc)).split("Stack trace")[0].strip()
            raise StorageError(f"ClickHouse error {getattr(exc, 'code', '?')}: {message}") from exc

    def execute(self, sql: str) -> None:
        self._run(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._run(sql)]

    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> int:
        rows = row_count(data)
        if rows:
            names = ", ".join(columns)
            self._run(f"INSERT INTO {self.table(table)} ({names}) VALUES", list(data), columnar=True)
        return rows

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.disconnect()
            self._clients.clear()
        self._local = threading.local()

"""ClickHouse server backend over the native protocol (clickhouse-driver).

Statements borrow a client from a bounded pool (:mod:`storage.connection_pool`), so the
writer's insert threads and dashboard queries run side by side on their own sockets
while the connections of the process stay at ``pool_size``, however many threads come
and go (Streamlit runs each rerun on a fresh one).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from storage.connection_pool import ClientPool, PoolExhausted
from storage.store import StorageError, StorageUnavailable, Store, row_count

__all__ = ["ClickHouseServerStore", "PoolExhausted"]

_NETWORK_ERRORS = (ch_errors.NetworkError, ch_errors.SocketTimeoutError, OSError, EOFError)
# The driver logs every failed connect with a traceback; during an outage that is a line per retry.
# The failure reaches us as StorageUnavailable and the outage is logged once (storage/availability.py).
logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)


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
        pool_size: int = 8,
        pool_wait_s: float = 10.0,
        secure: bool = False,
        ca_certs: str | None = None,
        verify: bool = True,
    ) -> None:
        """``secure``: TLS to the server's secure port, its certificate checked against ``ca_certs`` (else the
        system's CAs) unless ``verify`` is false."""
        self.database = database
        self._params = {
            "host": host,
            "port": port,
            "user": user,
            "password": password,
            "connect_timeout": connect_timeout_s,
            "send_receive_timeout": send_receive_timeout_s,
            "secure": secure,
            "verify": verify,
            **({"ca_certs": ca_certs} if ca_certs else {}),
        }
        self._pool = ClientPool(lambda: Client(**self._params), size=pool_size, wait_s=pool_wait_s, name=repr(self))

    def __repr__(self) -> str:  # never shows the password
        return f"ClickHouseServerStore({self._params['host']}:{self._params['port']}, db={self.database})"

    def _run(self, sql: str, params: Any = None, **kwargs: Any) -> Any:
        try:
            with self._pool.borrow() as client:
                return client.execute(sql, params, **kwargs)
        except _NETWORK_ERRORS as exc:
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

    def stats(self) -> dict[str, int]:
        return self._pool.stats()

    def close(self) -> None:
        self._pool.close()

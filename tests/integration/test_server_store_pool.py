"""ClickHouseServerStore's connection pool on the real ClickHouse server.

Streamlit runs every rerun on a fresh thread, and the writer inserts from several
threads at once: whatever the threads do, the store holds at most ``pool_size``
connections, a borrower that finds them all busy gets a clear error after its wait,
and a broken connection is thrown away rather than handed to the next statement.
"""

from __future__ import annotations

import threading
import time

import psutil
import pytest

from config import Settings
from storage.factory import open_store
from storage.server_store import ClickHouseServerStore, PoolExhausted
from storage.store import StorageUnavailable
from tests.conftest import CLICKHOUSE_PORT

pytestmark = pytest.mark.timeout(180)

TCP_CONNECTIONS = "SELECT value FROM system.metrics WHERE metric = 'TCPConnection'"


def server_connections(observer: ClickHouseServerStore) -> int:
    """Open native-protocol connections the server counts (every client of the shared server)."""
    return int(observer.query(TCP_CONNECTIONS)[0][0])


def own_connections() -> int:
    """This process's established sockets to the ClickHouse server: exactly what our stores hold."""
    return sum(
        1
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == CLICKHOUSE_PORT and conn.status == psutil.CONN_ESTABLISHED
    )


def in_fresh_threads(work, total: int, at_once: int) -> list[BaseException]:
    """Run ``work`` ``total`` times, each on a new short-lived thread, ``at_once`` threads at a time."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # collected and asserted on by the caller
            errors.append(exc)

    for _ in range(0, total, at_once):
        threads = [threading.Thread(target=run) for _ in range(at_once)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return errors


def test_a_thousand_queries_from_fresh_threads_leave_no_more_connections_than_the_pool(server_store):
    observer = ClickHouseServerStore(port=CLICKHOUSE_PORT, database="default")
    store = ClickHouseServerStore(port=CLICKHOUSE_PORT, database=server_store.database, pool_size=4)
    try:
        server_before = server_connections(observer)
        own_before = own_connections()
        errors = in_fresh_threads(lambda: store.query("SELECT 1"), total=1000, at_once=10)
        assert errors == []
        own_after = own_connections()
        server_after = server_connections(observer)
        assert own_after - own_before <= 4, f"{own_after - own_before} sockets left open by 1000 short-lived threads"
        # The server is shared with other test runs: allow for their connections, not for ours
        # (a connection per thread would leave about 1000 open).
        assert server_after - server_before <= 4 + 50
        assert store.stats()["open"] <= 4
    finally:
        store.close()
        observer.close()


def test_closing_the_store_closes_idle_connections_at_once_and_borrowed_ones_when_they_come_back(server_store):
    store = ClickHouseServerStore(port=CLICKHOUSE_PORT, database=server_store.database, pool_size=3)
    before = own_connections()
    assert in_fresh_threads(lambda: store.query("SELECT sleep(0.2)"), total=3, at_once=3) == []
    assert own_connections() - before == store.stats()["open"] >= 1
    busy = threading.Thread(target=lambda: store.query("SELECT sleep(1)"))
    busy.start()
    deadline = time.monotonic() + 10
    while store.stats()["in_use"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    store.close()
    assert own_connections() - before == 1 == store.stats()["in_use"]  # the statement under way finishes
    busy.join()
    assert own_connections() == before
    assert store.stats()["open"] == 0


def test_the_default_pool_covers_the_writers_four_insert_threads_and_a_dashboard_query_without_waiting(server_store):
    settings = Settings(storage={"backend": "server", "port": CLICKHOUSE_PORT, "database": server_store.database})
    store = open_store(settings)
    try:
        store.execute(f"CREATE DATABASE IF NOT EXISTS {store.database}")
        store.execute(f"CREATE TABLE {store.table('t')} (x Int64) ENGINE = MergeTree ORDER BY x")
        start = threading.Barrier(5)
        errors: list[BaseException] = []

        def inserter() -> None:
            start.wait()
            for i in range(20):
                store.insert_columns("t", ["x"], [[i] * 100])

        def dashboard() -> None:
            start.wait()
            for _ in range(20):
                store.query(f"SELECT count() FROM {store.table('t')}")

        def guarded(target) -> None:
            try:
                target()
            except BaseException as exc:  # collected and asserted on below
                errors.append(exc)

        threads = [threading.Thread(target=guarded, args=(inserter,)) for _ in range(4)]
        threads.append(threading.Thread(target=guarded, args=(dashboard,)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        stats = store.stats()
        assert stats["size"] == settings.storage.pool_size >= 5
        assert stats["waited"] == 0 and stats["exhausted"] == 0
        assert store.query(f"SELECT count() FROM {store.table('t')}") == [(4 * 20 * 100,)]
    finally:
        store.close()


def test_a_borrower_finding_every_connection_busy_gets_a_clear_storage_unavailable_after_its_wait(server_store, caplog):
    store = ClickHouseServerStore(port=CLICKHOUSE_PORT, database=server_store.database, pool_size=1, pool_wait_s=0.3)
    busy = threading.Thread(target=lambda: store.query("SELECT sleep(2)"))
    try:
        busy.start()
        deadline = time.monotonic() + 10
        while store.stats()["in_use"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.stats()["in_use"] == 1
        for _ in range(2):
            with pytest.raises(PoolExhausted, match=r"all 1 ClickHouse connections.*storage\.pool_size") as raised:
                store.query("SELECT 1")
            assert isinstance(raised.value, StorageUnavailable)  # the writer keeps its batch and retries
        busy.join()
        assert store.query("SELECT 1") == [(1,)]  # the connection came back
        stats = store.stats()
        assert stats["exhausted"] == 2 and stats["open"] == 1
        exhausted_logs = [r for r in caplog.records if r.getMessage() == "ClickHouse connection pool exhausted"]
        assert len(exhausted_logs) == 1 and exhausted_logs[0].pool_size == 1  # logged once, with the bound
    finally:
        busy.join()
        store.close()


def test_a_broken_connection_is_discarded_and_the_next_statement_gets_a_fresh_one(server_store):
    store = ClickHouseServerStore(port=CLICKHOUSE_PORT, database=server_store.database, pool_size=1,
                                  send_receive_timeout_s=0.5)
    try:
        before = own_connections()
        with pytest.raises(StorageUnavailable, match="unreachable"):
            store.query("SELECT sleep(2)")  # the socket times out mid-query: that connection is unusable
        stats = store.stats()
        assert (stats["discarded"], stats["open"], stats["in_use"]) == (1, 0, 0)
        assert own_connections() == before
        assert store.query("SELECT 1") == [(1,)]
        assert store.stats()["open"] == 1
    finally:
        store.close()

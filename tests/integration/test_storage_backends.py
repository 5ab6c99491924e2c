"""The same schema code on the real ClickHouse 18.16 server and on chDB 26.x."""

from __future__ import annotations

import pytest

from storage.migrate import applied_versions, migrate
from storage.schema import MIGRATIONS
from storage.store import StorageError

TRADE_COLUMNS = [
    "symbol", "ts_ns", "price", "size", "conditions", "market_center", "tick_id", "total_volume",
    "basis", "backfilled", "source", "seq", "recv_ns", "stored_ns", "bus_partition", "bus_offset",
]


def _trades(n: int, source: str = "sim-1") -> list[list]:
    base = 1_614_589_200_000_000_000  # 2021-03-01 09:00 UTC
    return [
        ["AAPL" if i % 2 else "MSFT" for i in range(n)],
        [base + i * 1_000_000 for i in range(n)],
        [100.0 + i / 100 for i in range(n)],
        [100 + i for i in range(n)],
        [["87", "3D"] if i % 3 == 0 else [] for i in range(n)],
        [11] * n,
        list(range(n)),
        list(range(n)),
        ["C"] * n,
        [0] * n,
        [source] * n,
        list(range(1, n + 1)),
        [base + i * 1_000_000 + 5 for i in range(n)],
        [base + i * 1_000_000 + 9 for i in range(n)],
        [i % 3 for i in range(n)],
        list(range(n)),
    ]


@pytest.mark.timeout(120)
def test_migrations_apply_once_and_are_recorded(store):
    assert migrate(store) == [m.version for m in MIGRATIONS]
    assert migrate(store) == []
    assert applied_versions(store) == {m.version for m in MIGRATIONS}
    tables = {name for (name,) in store.query(f"SELECT name FROM system.tables WHERE database = '{store.database}'")}
    assert {"trades", "quotes", "depth", "feed_status", "feed_outages", "schema_migrations"} <= tables


@pytest.mark.timeout(120)
def test_columnar_insert_and_select_round_trip_exact_values(store):
    migrate(store)
    columns = _trades(1000)
    assert store.insert_columns("trades", TRADE_COLUMNS, columns) == 1000
    rows = store.query(
        f"SELECT symbol, ts_ns, price, size, conditions, seq FROM {store.table('trades')} ORDER BY seq"
    )
    assert len(rows) == 1000
    first = rows[0]
    assert first[0] == "MSFT" and first[1] == 1_614_589_200_000_000_000
    assert float(first[2]) == 100.0 and first[3] == 100 and list(first[4]) == ["87", "3D"] and first[5] == 1
    assert float(rows[-1][2]) == pytest.approx(109.99)


@pytest.mark.timeout(120)
def test_redelivered_rows_collapse_on_the_dedup_key(store):
    migrate(store)
    batch = _trades(200)
    store.insert_columns("trades", TRADE_COLUMNS, batch)
    store.insert_columns("trades", TRADE_COLUMNS, batch)  # a crash between insert and commit redelivers
    table = store.table("trades")
    (raw,) = store.query(f"SELECT count() FROM {table}")[0]
    (distinct,) = store.query(f"SELECT uniqExact(symbol, ts_ns, source, seq) FROM {table}")[0]
    (final,) = store.query(f"SELECT count() FROM {table} FINAL")[0]
    assert raw == 400 and distinct == 200 and final == 200


@pytest.mark.timeout(60)
def test_bad_sql_raises_storage_error_naming_the_problem(store):
    with pytest.raises(StorageError, match="(?i)(exist|unknown)"):
        store.query(f"SELECT * FROM {store.database}.no_such_table")

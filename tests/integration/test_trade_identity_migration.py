"""Migration 8 re-keys a trades table that holds data, on ClickHouse 18.16 and chDB 26: the same prints
from two collectors, a backfill and a redelivery become one row each, the 1-minute bars are rebuilt
exact, and the bars view and the probe twin work on the new table."""

from __future__ import annotations

import msgspec
import pytest

from events.kinds import TRADES
from storage.bars import query_bars
from storage.migrate import applied_versions, migrate
from storage.store import StorageError, Store, sql_string
from tests.integration.test_writer_table_faults import WrappedStore
from tests.integration.trade_market import (
    FROM_REKEY,
    REKEY,
    assert_each_print_once_and_bars_exact,
    expected_bars,
    insert,
    old_database_with_copies,
)


def sorting_key(store: Store, table: str) -> str:
    return store.query(f"SELECT sorting_key FROM system.tables WHERE database = {sql_string(store.database)} "
                       f"AND name = {sql_string(table)}")[0][0]


def columns(store: Store, table: str) -> dict[str, str]:
    return dict(store.query(f"SELECT name, type FROM system.columns WHERE database = {sql_string(store.database)} "
                            f"AND table = {sql_string(table)}"))


@pytest.mark.timeout(120)
def test_migrating_an_old_database_keeps_each_print_once_and_rebuilds_the_bars_exact(store):
    prints = old_database_with_copies(store)
    assert query_bars(store, "AAPL", 0, 2**62) != expected_bars(prints, "AAPL")  # the old view counted copies

    assert migrate(store) == FROM_REKEY
    assert sorting_key(store, "trades") == ", ".join(TRADES.identity)
    assert_each_print_once_and_bars_exact(store, prints)
    tables = {name for (name,) in store.query(
        f"SELECT name FROM system.tables WHERE database = {sql_string(store.database)}")}
    assert not tables & {"trades_rekeyed", "trades_before_rekey"}
    assert columns(store, "trades_probe") == columns(store, "trades")

    last = prints[-1]
    later = msgspec.structs.replace(last, ts_ns=last.ts_ns + 1, total_volume=last.total_volume + 100, seq=10_000)
    insert(store, [later], stored_ns=4)
    assert query_bars(store, last.symbol, 0, 2**62)[-1].trades == expected_bars(prints, last.symbol)[-1].trades + 1
    assert expected_bars([*prints, later], last.symbol) == query_bars(store, last.symbol, 0, 2**62)  # view fires


class FailingOnce(WrappedStore):
    """The real store, except that the first statement starting with ``prefix`` fails (a crash there)."""

    def __init__(self, inner: Store, prefix: str) -> None:
        super().__init__(inner)
        self._prefix, self.failed = prefix, False

    def execute(self, sql: str) -> None:
        if not self.failed and sql.startswith(self._prefix):
            self.failed = True
            raise StorageError(f"injected failure before: {sql[:60]}")
        self._inner.execute(sql)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("crash_before", ["RENAME", "TRUNCATE", "DROP TABLE " + "{db}.trades_before_rekey"])
def test_a_migration_interrupted_at_any_phase_completes_on_the_next_run(store, crash_before):
    prints = old_database_with_copies(store)
    failing = FailingOnce(store, crash_before.format(db=store.database))
    with pytest.raises(StorageError, match="injected"):
        migrate(failing)
    assert failing.failed and REKEY not in applied_versions(store)
    assert migrate(store) == FROM_REKEY
    assert_each_print_once_and_bars_exact(store, prints)

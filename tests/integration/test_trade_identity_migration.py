"""Migration 5 re-keys a trades table that holds data, on ClickHouse 18.16 and chDB 26: the same prints
from two collectors, a backfill and a redelivery become one row each, the 1-minute bars are rebuilt
exact, and the bars view and the probe twin work on the new table."""

from __future__ import annotations

from collections.abc import Sequence
import msgspec
import pytest

from events.kinds import TRADES
from storage.bars import query_bars
from storage.migrate import applied_versions, migrate
from storage.rows import IDENTITY_COLUMNS, identity_of, stored_identity
from storage.schema import MIGRATIONS
from storage.store import StorageError, Store, sql_string
from tests.integration.test_writer_table_faults import WrappedStore
from tests.integration.trade_market import SYMBOLS, delivered_as, expected_bars, insert, market

OLD_SCHEMA = MIGRATIONS[:4]


def old_database_with_copies(store: Store) -> list:
    """An old-schema database holding every print from collector a, most of them again from collector b,
    some backfilled by a's next session, and a redelivered batch (same source and seq). Returns the prints."""
    migrate(store, OLD_SCHEMA)
    prints = market()
    insert(store, delivered_as(prints[::3] + prints[1::3], "col-b@1"), stored_ns=1)  # b stored first
    insert(store, prints, stored_ns=2)
    insert(store, delivered_as(prints[:50] + prints[250:300], "col-a@2", backfilled=True), stored_ns=0)
    insert(store, prints[:40], stored_ns=3)  # a crash between insert and commit
    return prints


def sorting_key(store: Store, table: str) -> str:
    return store.query(f"SELECT sorting_key FROM system.tables WHERE database = {sql_string(store.database)} "
                       f"AND name = {sql_string(table)}")[0][0]


def columns(store: Store, table: str) -> dict[str, str]:
    return dict(store.query(f"SELECT name, type FROM system.columns WHERE database = {sql_string(store.database)} "
                            f"AND table = {sql_string(table)}"))


def assert_each_print_once_and_bars_exact(store: Store, prints: Sequence) -> None:
    trades = store.table("trades")
    rows = store.query(f"SELECT {', '.join(IDENTITY_COLUMNS['trades'])} FROM {trades}")
    assert len(rows) == len(prints), "count() without FINAL is the number of prints"
    assert {stored_identity("trades", row) for row in rows} == {identity_of("trades", p) for p in prints}
    assert store.query(f"SELECT countIf(backfilled = 1), countIf(source = 'col-b@1') FROM {trades}")[0] == \
        (0, len(prints[::3] + prints[1::3]))  # a live row before a backfilled one, the first stored before later
    for symbol in SYMBOLS:
        assert query_bars(store, symbol, 0, 2**62) == expected_bars(prints, symbol)


@pytest.mark.timeout(120)
def test_migrating_an_old_database_keeps_each_print_once_and_rebuilds_the_bars_exact(store):
    prints = old_database_with_copies(store)
    assert query_bars(store, "AAPL", 0, 2**62) != expected_bars(prints, "AAPL")  # the old view counted copies

    assert migrate(store) == [5]
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
    assert failing.failed and 5 not in applied_versions(store)
    assert migrate(store) == [5]
    assert_each_print_once_and_bars_exact(store, prints)

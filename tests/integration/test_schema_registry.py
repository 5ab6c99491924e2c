"""Storage is checked against the registry of event kinds after the migrations, on both servers."""

from __future__ import annotations

import pytest

from storage.migrate import SchemaMismatch, check_tables, migrate
from storage.rows import TABLE_COLUMNS


def test_the_migrated_schema_holds_every_registered_table_and_column(store):
    migrate(store)  # runs check_tables itself; a missing piece would raise here
    check_tables(store)


def test_a_kind_registered_without_its_migration_fails_at_start_naming_what_is_missing(store):
    migrate(store)
    wider = dict(TABLE_COLUMNS, trades=(*TABLE_COLUMNS["trades"], "aggressor"), news=("symbol", "headline"))
    with pytest.raises(SchemaMismatch, match=r"trades: aggressor.*news: no such table"):
        check_tables(store, wider)

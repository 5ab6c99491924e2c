"""Apply the schema's migrations to a store, once each, recording them in a ledger table.

Safe to run from every process at start-up: applied versions are skipped, every
statement is ``IF NOT EXISTS``, and the ledger is a ReplacingMergeTree keyed on the
version, so two processes racing on a fresh database still converge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from storage.rows import TABLE_COLUMNS
from storage.schema import MIGRATIONS, Migration, ledger_ddl
from storage.store import StorageError, Store, sql_string

log = logging.getLogger(__name__)


def applied_versions(store: Store) -> set[int]:
    rows = store.query(f"SELECT DISTINCT version FROM {store.table('schema_migrations')}")
    return {int(version) for (version,) in rows}


def migrate(store: Store, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Bring ``store`` up to the newest migration; return the versions applied now."""
    store.execute(f"CREATE DATABASE IF NOT EXISTS {store.database}")
    store.execute(ledger_ddl(store.database))
    done = applied_versions(store)
    applied: list[int] = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in done:
            continue
        for statement in migration.statements:
            store.execute(statement.format(db=store.database))
        store.insert_columns(
            "schema_migrations",
            ["version", "name", "applied_ns"],
            [[migration.version], [migration.name], [time.time_ns()]],
        )
        applied.append(migration.version)
        log.info("migration applied", extra={"version": migration.version, "migration": migration.name, "store": repr(store)})
    if migrations is MIGRATIONS:
        check_tables(store)
    return applied


class SchemaMismatch(StorageError):
    """A table lacks columns the registry of event kinds names: a kind was added without its migration."""


def check_tables(store: Store, tables: Mapping[str, Sequence[str]] = TABLE_COLUMNS) -> None:
    """Fail loudly at start when a registered table or column is missing from storage, instead of at the
    first insert of that kind (which would stop its bus partition)."""
    rows = store.query(f"SELECT table, name FROM system.columns WHERE database = {sql_string(store.database)}")
    present: dict[str, set[str]] = {}
    for table, column in rows:
        present.setdefault(str(table), set()).add(str(column))
    missing = {table: sorted(set(columns) - present.get(table, set())) for table, columns in tables.items()}
    problems = [f"{table}: {', '.join(columns) if table in present else 'no such table'}"
                for table, columns in missing.items() if columns]
    if problems:
        raise SchemaMismatch(
            f"storage {store.database} does not match the event registry (events/kinds.py), missing: "
            f"{'; '.join(problems)}. Add a migration for the new kind or column (storage/schema.py).")

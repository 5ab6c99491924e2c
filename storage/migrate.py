"""Apply the schema's migrations to a store, once each, recording them in a ledger table.

Safe to run from every process at start-up: when the ledger shows every version applied
nothing else happens; otherwise one instance takes the migration lease
(:mod:`storage.migration_lease`) and applies what is pending while the others wait until
the ledger shows it done (or the holder dies and its lease expires: then one of them takes
over, and a migration interrupted half-way runs again, so each is idempotent). A fleet
starting together therefore runs a copy-and-rename migration (7) exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from storage.migration_lease import MigrationLock, lease_ddl
from storage.rows import TABLE_COLUMNS
from storage.schema import MIGRATIONS, Migration, ledger_ddl
from storage.store import StorageError, Store, sql_string

log = logging.getLogger(__name__)


def applied_versions(store: Store) -> set[int]:
    rows = store.query(f"SELECT DISTINCT version FROM {store.table('schema_migrations')}")
    return {int(version) for (version,) in rows}


def migrate(store: Store, migrations: Sequence[Migration] = MIGRATIONS, *, lock: MigrationLock | None = None) -> list[int]:
    """Bring ``store`` up to the newest migration; return the versions this call applied (none when another
    instance applied them). ``lock`` defaults to a :class:`MigrationLock` with its default timings."""
    store.execute(f"CREATE DATABASE IF NOT EXISTS {store.database}")
    store.execute(ledger_ddl(store.database))
    store.execute(lease_ddl(store.database))
    wanted = {m.version for m in migrations}
    applied: list[int] = []
    if not wanted <= applied_versions(store):
        lease = (lock or MigrationLock(store)).acquire(done=lambda: wanted <= applied_versions(store))
        if lease is not None:
            try:
                done = applied_versions(store)  # the previous holder may have applied some
                for migration in sorted(migrations, key=lambda m: m.version):
                    if migration.version not in done:
                        lease.check()
                        _apply(store, migration)
                        applied.append(migration.version)
            finally:
                lease.release()
    if migrations is MIGRATIONS:
        check_tables(store)
    return applied


def _apply(store: Store, migration: Migration) -> None:
    for statement in migration.statements:
        store.execute(statement.format(db=store.database))
    if migration.procedure is not None:
        migration.procedure(store)
    store.insert_columns(
        "schema_migrations",
        ["version", "name", "applied_ns"],
        [[migration.version], [migration.name], [time.time_ns()]],
    )
    log.info("migration applied", extra={"version": migration.version, "migration": migration.name, "store": repr(store)})


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

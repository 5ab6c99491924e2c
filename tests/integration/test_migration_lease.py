"""Migrations under the lease, on the real ClickHouse server: three processes starting together migrate the
same database and the copy-and-rename runs exactly once; a holder that dies lets another take over; a holder
that cannot renew stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from storage.migrate import applied_versions, migrate
from storage.migration_lease import LEASE_TABLE, LeaseLost, MigrationLock
from storage.schema import MIGRATIONS
from storage.store import StorageError
from tests.conftest import CLICKHOUSE_PORT
from tests.integration.test_writer_table_faults import WrappedStore
from tests.integration.trade_market import FROM_REKEY, assert_each_print_once_and_bars_exact, old_database_with_copies

ROOT = Path(__file__).resolve().parents[2]
ALL = [m.version for m in MIGRATIONS]

# A fleet member: waits for the common start time, migrates with a short lease, prints what it applied.
MIGRATE = """
import json, sys, time
from storage.migrate import migrate
from storage.migration_lease import LEASE_TABLE, LeaseLost, MigrationLock
from storage.server_store import ClickHouseServerStore
port, database, start = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
store = ClickHouseServerStore(port=port, database=database)
time.sleep(max(0.0, start - time.time()))
applied = migrate(store, lock=MigrationLock(store, settle_s=0.25, ttl_s=5, poll_s=0.1))
print(json.dumps(applied), flush=True)
"""

# A holder that takes the lease, says so, and never lets go (the test kills it).
HOLD = """
import sys, time
from storage.migration_lease import LEASE_TABLE, LeaseLost, MigrationLock
from storage.server_store import ClickHouseServerStore
store = ClickHouseServerStore(port=int(sys.argv[1]), database=sys.argv[2])
lease = MigrationLock(store, owner="doomed", settle_s=0.1, ttl_s=3).acquire(done=lambda: False)
print("held", flush=True)
time.sleep(600)
"""


def _python(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _fleet_migrates(database: str, members: int = 3) -> list[list[int]]:
    start = time.time() + 2.0  # after every interpreter has started
    procs = [_python(MIGRATE, str(CLICKHOUSE_PORT), database, str(start)) for _ in range(members)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.timeout(180)
def test_three_processes_migrating_a_fresh_database_at_once_apply_each_migration_once(server_store):
    results = _fleet_migrates(server_store.database)
    assert sorted(results) == [[], [], ALL], results
    assert applied_versions(server_store) == set(ALL)


@pytest.mark.timeout(180)
def test_three_processes_starting_together_on_an_old_database_copy_and_rename_the_trades_once(server_store):
    prints = old_database_with_copies(server_store)
    results = _fleet_migrates(server_store.database)
    assert sorted(results) == [[], [], FROM_REKEY], results  # the holder re-keyed; the others waited for the ledger
    assert_each_print_once_and_bars_exact(server_store, prints)


@pytest.mark.timeout(120)
def test_a_holder_that_dies_lets_another_instance_take_over_when_its_lease_expires(server_store):
    prints = old_database_with_copies(server_store)
    holder = _python(HOLD, str(CLICKHOUSE_PORT), server_store.database)
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()[-3000:]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    lock = MigrationLock(server_store, settle_s=0.1, ttl_s=3, poll_s=0.1)
    assert [claim.owner for claim in lock.live_claims()] == ["doomed"]  # dead, but its lease has not expired
    started = time.monotonic()
    assert migrate(server_store, lock=lock) == FROM_REKEY
    assert time.monotonic() - started > 0.5  # it waited for the expiry instead of migrating beside a holder
    assert lock.live_claims() == []  # released
    assert_each_print_once_and_bars_exact(server_store, prints)


class RenewalsRefused(WrappedStore):
    """The real store, except that once ``refusing`` is set, writes to the lease table fail."""

    refusing = False

    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> int:
        if self.refusing and table == LEASE_TABLE:
            raise StorageError("injected: lease row refused")
        return self._inner.insert_columns(table, columns, data)


@pytest.mark.timeout(60)
def test_a_holder_that_cannot_renew_its_lease_stops_before_its_next_migration(server_store):
    migrate(server_store, [])  # the database, the ledger and the lease table
    store = RenewalsRefused(server_store)
    lease = MigrationLock(store, settle_s=0.05, ttl_s=0.6).acquire(done=lambda: False)
    assert lease is not None
    lease.check()  # renewed just now
    store.refusing = True
    time.sleep(0.9)  # more than a time to live without a renewal: another instance may hold it now
    with pytest.raises(LeaseLost, match="not renewed"):
        lease.check()
    lease.release()  # refused too: logged, the claim expires by itself
    assert MigrationLock(server_store).live_claims() == []

"""Migration 9 on ClickHouse 18.16 and chDB 26: the rollouts table keeps a rollout's latest revision, and the
symbols table gains ``critical`` (old rows read 0), carried through the desired symbol registry."""

from __future__ import annotations

import dataclasses

import pytest

from runtime.rollout import Rollout
from runtime.rollout_store import TABLE, RolloutRecord, RolloutStore, latest_unfinished
from runtime.symbols import SymbolRegistry
from storage.migrate import applied_versions, migrate
from storage.schema import MIGRATIONS
from storage.write_behind import WriteBehind
from tests.integration.test_trade_identity_migration import columns
from tests.unit.test_rollout import Clock, _start_due, _symbols

BEFORE_9 = tuple(m for m in MIGRATIONS if m.version < 9)
(MIGRATION_9,) = (m for m in MIGRATIONS if m.version == 9)


@pytest.mark.timeout(120)
def test_migration_9_gives_old_symbol_rows_critical_0_and_keeps_the_flag_from_then_on(store):
    assert migrate(store, BEFORE_9) == [m.version for m in BEFORE_9]
    store.insert_columns("symbols", ["symbol", "level1", "depth", "silent_after_s", "updated_ns", "updated_by"],
                         [["AAPL"], [1], [0], [0.0], [1], ["ops"]])
    assert migrate(store) == [9]
    assert columns(store, "symbols")["critical"] == "UInt8"
    MIGRATION_9.procedure(store)  # a run interrupted after its ALTER, before the ledger: no "already exists"
    assert 9 in applied_versions(store)

    registry = SymbolRegistry(store)
    registry.refresh()
    (old,) = registry.all()
    assert old.symbol == "AAPL" and old.level1 and old.critical is False
    registry.set("NVDA", level1=True, critical=True, by="ops")
    registry.set("AAPL", level1=True, by="ops")
    again = SymbolRegistry(store)  # another process reading the stored set
    again.refresh()
    assert {s.symbol: s.critical for s in again.all()} == {"AAPL": False, "NVDA": True}
    registry.set("NVDA", level1=False, by="ops")  # a stop clears it, as on the assignment topic
    again.refresh()
    assert {s.symbol: s.critical for s in again.all()} == {"AAPL": False, "NVDA": False}


@pytest.mark.timeout(120)
def test_the_rollouts_table_returns_each_rollouts_latest_revision_and_skips_an_unreadable_one(store):
    migrate(store)
    keeper = RolloutStore(store, WriteBehind(store))
    clock = Clock()
    rollout = Rollout(_symbols(6), (2, 4, 6), clock=clock, by="ops")
    first = RolloutRecord("r1", 1, clock(), False, True, rollout.snapshot())
    _start_due(rollout, clock)
    second = dataclasses.replace(first, revision=2, updated_ns=clock() + 1, snapshot=rollout.snapshot())
    keeper.save(second)
    keeper.save(first)  # written after, older revision: loses
    store.insert_columns(TABLE, ["rollout_id", "revision", "state", "begun_by", "updated_ns", "record"],
                         [["r0"], [1], ["waiting"], ["ops"], [0], ['{"v": 1, "rollout_id": "r0"']])
    (record,) = keeper.records()
    assert record == second and keeper.unreadable == 1
    assert latest_unfinished(keeper.records()) == second

"""Operator records taken while ClickHouse is down survive a stop of the engine (docs/DELIVERY.md).

The write-behind queue journals them under the data_dir (storage/write_behind_journal.py);
a new engine on the same data_dir stores them once storage answers, and the audit chain
they join still verifies.
"""

from __future__ import annotations

import io

import pytest

from alerts.audit import report, verify_store
from alerts.store import AlertStore
from runtime.engine import Engine
from runtime.symbols import SymbolRegistry
from storage.audit_anchor import anchor_path, read_anchors
from tests.integration.pipeline import wait_until
from tests.integration.test_delivery_faults import private_clickhouse  # noqa: F401 - fixture
from tests.integration.test_storage_outage import checking_store, outage_settings


@pytest.mark.timeout(300)
def test_an_operator_action_taken_while_storage_is_down_is_stored_by_the_next_engine_after_a_stop(
    private_clickhouse, tmp_path  # noqa: F811 - fixture
):
    private_clickhouse.down()
    settings = outage_settings(tmp_path, private_clickhouse)
    first = Engine(settings).start()
    try:
        first.start_symbol("NVDA", by="ops-anna")
        assert not first.status().storage.available and first.status().storage.pending_writes >= 2
    finally:
        first.stop()  # storage still down: main lost the pending writes here

    private_clickhouse.up()
    second = Engine(settings).start()
    try:
        wait_until(lambda: second.status().storage.migrated and second.status().storage.pending_writes == 0, 60,
                   "storage back and the pending writes flushed")
    finally:
        second.stop()
    check = checking_store(settings)
    try:
        audit = [(e.actor, e.action, e.subject) for e in AlertStore(check).audit_log(limit=100)]
        assert ("ops-anna", "start_symbol", "NVDA") in audit, audit
        assert [a for _, a, _ in audit].count("engine_start") == 2 and [a for _, a, _ in audit].count(
            "engine_stop") == 2, audit
        registry = SymbolRegistry(check)
        registry.refresh()
        nvda = {s.symbol: s for s in registry.all()}.get("NVDA")
        assert nvda is not None and nvda.level1 and nvda.updated_by == "ops-anna"
        anchors = read_anchors(anchor_path(tmp_path))  # the engine keeps its chain's head outside storage too
        assert [(a.source, a.seq) for a in anchors] == [(settings.instance_id, 5)]
        out = io.StringIO()
        assert report(verify_store(check, anchors), out), out.getvalue()
        assert f"{settings.instance_id}: 5 records" in out.getvalue(), out.getvalue()
    finally:
        check.close()
    assert not (tmp_path / "write_behind" / f"{settings.instance_id}.jsonl").exists()  # compacted away

"""Reconciliation over a real Kafka topic, the real ClickHouse server and backup segments.

The three sides are built from one event stream, then faults are injected: a row never
stored, a row stored twice, a message produced twice. The report must name each of them
in the right cell and side, and the exit status must follow.
"""

from __future__ import annotations

import json
import os

import msgspec
import pytest
from confluent_kafka import Producer

from bus.codec import decode, encode
from bus.topics import event_key as partition_key
from storage.backup import BackupConfig, BackupWriter
from storage.migrate import migrate
from storage.reconcile import MINUTE_NS, compare, identity_text, main, read_backup, read_kafka, read_store
from storage.rows import identity_of, table_for, to_batches
from storage.segments import iso_utc
from tests.conftest import CLICKHOUSE_PORT
from tests.events_factory import make_events

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def _produce(bootstrap: str, topic: str, events) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    for event in events:
        producer.produce(topic, key=partition_key(event), value=encode(event))
    assert producer.flush(30) == 0


def _insert(store, events) -> None:
    for batch in to_batches(events, stored_ns=1).values():
        store.insert_columns(batch.table, batch.columns, batch.data)


def _cell(event) -> tuple[str, str, str]:
    return table_for(event), event.symbol, iso_utc(event.ts_ns // MINUTE_NS * MINUTE_NS)[:16] + "Z"


@pytest.mark.timeout(90)
def test_a_missing_row_and_duplicates_are_reported_in_their_cell_and_side(
    kafka_bootstrap, kafka_topic, server_store, tmp_path, monkeypatch, capsys
):
    events = make_events(3_000)
    stored = [e for e in events if table_for(e)]
    lost, doubled_in_storage, doubled_on_bus = stored[100], stored[200], stored[300]
    _produce(kafka_bootstrap, kafka_topic, [*events, doubled_on_bus])
    writer = BackupWriter(BackupConfig(directory=tmp_path / "backup", instance_id="rec-1", segment_max_bytes=16_000))
    writer.append(events)
    writer.close()
    migrate(server_store)
    _insert(server_store, [e for e in stored if e is not lost])
    _insert(server_store, [doubled_in_storage])

    for name in list(os.environ):
        if name.startswith("TICKOPS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TICKOPS_STORAGE__BACKEND", "server")
    monkeypatch.setenv("TICKOPS_STORAGE__PORT", str(CLICKHOUSE_PORT))
    monkeypatch.setenv("TICKOPS_STORAGE__DATABASE", server_store.database)
    monkeypatch.setenv("TICKOPS_BACKUP__DIRECTORY", str(tmp_path / "backup"))
    cli = ["--topic", kafka_topic, "--bootstrap", kafka_bootstrap]

    assert main([*cli, "--json", str(tmp_path / "report.json")]) == 1
    table = capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    assert not report["ok"] and report["sides"] == ["kafka", "clickhouse", "backup"]
    (mismatch,) = report["mismatches"]
    assert (mismatch["table"], mismatch["symbol"], mismatch["minute"]) == _cell(lost)
    assert mismatch["missing"] == {"clickhouse": 1}
    assert mismatch["missing_sample"]["clickhouse"] == [identity_text(identity_of(table_for(lost), lost))]
    duplicates = {(d["table"], d["symbol"], d["minute"]): d["counts"] for d in report["duplicates"]}
    in_storage = duplicates[_cell(doubled_in_storage)]["clickhouse"]
    on_bus = duplicates[_cell(doubled_on_bus)]["kafka"]
    assert in_storage["rows"] == in_storage["unique"] + 1 and on_bus["rows"] == on_bus["unique"] + 1
    assert report["totals"]["backup"]["unique"] == len(stored) == report["totals"]["kafka"]["unique"]
    assert "MISMATCH" in table and identity_text(identity_of(table_for(lost), lost)) in table

    _insert(server_store, [lost])
    assert main(cli) == 0
    assert "OK: every cell agrees; 2 cell(s) with duplicate rows" in capsys.readouterr().out
    assert main([*cli, "--kafka-offsets-only", "--strict"]) == 1  # storage's duplicate row fails a strict run
    out = capsys.readouterr().out
    assert f"kafka {kafka_topic}[0]" in out and "Kafka read as offsets only" in out


@pytest.mark.timeout(60)
def test_only_the_chosen_time_range_and_offsets_are_compared(kafka_bootstrap, kafka_topic, server_store, tmp_path):
    events = make_events(3_000)  # ts spans 150 s from T0
    stored = [e for e in events if table_for(e)]
    _produce(kafka_bootstrap, kafka_topic, events)
    migrate(server_store)
    _insert(server_store, stored[: len(stored) // 2])  # storage is behind: only the first half is in
    writer = BackupWriter(BackupConfig(directory=tmp_path / "backup", instance_id="rec-2"))
    writer.append(events)
    writer.close()

    until = stored[len(stored) // 2].ts_ns // MINUTE_NS * MINUTE_NS  # the last whole minute storage holds
    kafka = read_kafka(kafka_bootstrap, [kafka_topic], decode, until_ns=until)
    backup = read_backup([tmp_path / "backup"], until_ns=until)
    report = compare([kafka.counts, read_store(server_store, until_ns=until), backup.counts])
    assert report.ok and report.cells > 0
    assert report.totals["clickhouse"]["unique"] == sum(1 for e in stored if e.ts_ns < until)

    everything = compare([read_store(server_store), read_backup([tmp_path / "backup"]).counts])
    assert not everything.ok
    assert sum(f.missing.get("clickhouse", 0) for f in everything.mismatches) == len(stored) - len(stored) // 2

    tail = read_kafka(kafka_bootstrap, [kafka_topic], None)
    assert sum(p.messages for p in tail.partitions) == len(events) and tail.counts is None
    resumed = read_kafka(kafka_bootstrap, [kafka_topic], decode,
                         start_offsets={(kafka_topic, p.partition): p.high for p in tail.partitions})
    assert resumed.messages == 0


@pytest.mark.timeout(60)
def test_a_trade_stored_from_another_collector_agrees_with_this_collectors_backup_and_kafka(
    kafka_bootstrap, kafka_topic, server_store, tmp_path
):
    events = make_events(1_000)
    trades = [e for e in events if table_for(e) == "trades"]
    writer = BackupWriter(BackupConfig(directory=tmp_path / "backup", instance_id="rec-3"))
    writer.append(events)
    writer.close()
    from_peer = [msgspec.structs.replace(t, source="peer@1", seq=t.seq + 10**6) for t in trades]
    _produce(kafka_bootstrap, kafka_topic, [*events, *from_peer])  # both collectors published the prints
    migrate(server_store)
    _insert(server_store, [e for e in events if table_for(e) and table_for(e) != "trades"] + from_peer)

    kafka = read_kafka(kafka_bootstrap, [kafka_topic], decode)
    report = compare([kafka.counts, read_store(server_store), read_backup([tmp_path / "backup"]).counts])
    assert report.ok, report.mismatches[:3]  # the same print is one trade, whoever stored it
    stored = sum(1 for e in events if table_for(e))
    assert report.totals["clickhouse"] == report.totals["backup"] == {"rows": stored, "unique": stored}
    assert report.totals["kafka"]["rows"] == report.totals["kafka"]["unique"] + len(trades)  # two copies each

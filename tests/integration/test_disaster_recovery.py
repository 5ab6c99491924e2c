"""Disaster recovery against the real ClickHouse server and Kafka: the database and the backup disk are lost,
the database is rebuilt from the backup's mirror and what Kafka still holds, and it equals what was generated.

The stream goes through the real pipeline (EventProducer -> Kafka -> Writer -> ClickHouse, and the
BackupWriter beside it) in three parts, so that each source is needed for one of them:

    head    backup (sealed, mirrored)   Kafka: removed by retention (delete_records)
    middle  backup (sealed, mirrored)   Kafka
    tail    (the backup's open segment went down with its disk)   Kafka

Operator tables (alerts, audit log, symbols, outages, uptime minutes) come back from the snapshot
in the mirror; an action taken after that snapshot is lost, which is the snapshot interval's RPO.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from alerts.lifecycle import Alert
from alerts.store import AlertStore
from bus.factory import build_producer, open_bus
from bus.topics import TopicSet
from config import Settings
from events import Trade
from runtime.symbols import SymbolRegistry
from runtime.uptime import UptimeTracker
from storage.backup import BackupConfig, BackupWriter
from storage.bars import Bar, query_bars
from storage.factory import open_store
from storage.kafka_read import throwaway_consumer
from storage.migrate import migrate
from storage.mirror import BackupMirror
from storage.operator_backup import OPERATOR_TABLES, OperatorSnapshots, snapshot_directory, table_columns
from storage.rebuild import KafkaSource, rebuild
from storage.reconcile import EventTally, compare, read_store
from storage.rows import TABLE_COLUMNS, table_for
from storage.store import Store
from storage.writer import build_writer
from tests.conftest import CLICKHOUSE_PORT, unique_name
from tests.events_factory import SYMBOLS, FakeClock, make_events
from tests.integration.pipeline import delete_topics, stored_count, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 12_000
MINUTE_NS = 60_000_000_000


@dataclass
class Site:
    settings: Settings
    store: Store
    topics: TopicSet
    backup_dir: Path
    mirror_dir: Path
    env: dict[str, str]


@pytest.fixture
def site(kafka_bootstrap, clickhouse_server, tmp_path):
    prefix, database = unique_name("dr"), unique_name("dr")
    backup_dir, mirror_dir = tmp_path / "backup", tmp_path / "mirror"
    mirror_dir.mkdir()  # "another disk": TickOps never creates the mirror directory
    settings = Settings(
        data_dir=tmp_path, instance_id="dr-1", bus={"kind": "kafka"},
        kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix, "partitions": 3,
               "consumer_group": f"{prefix}-writer"},
        storage={"backend": "server", "port": CLICKHOUSE_PORT, "database": database, "batch_rows": 2000},
        backup={"directory": backup_dir, "mirror_directory": mirror_dir},
    )
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")}, "PYTHONPATH": str(ROOT),
           "TICKOPS_BUS__KIND": "kafka", "TICKOPS_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
           "TICKOPS_KAFKA__TOPIC_PREFIX": prefix, "TICKOPS_KAFKA__CONSUMER_GROUP": f"{prefix}-writer",
           "TICKOPS_STORAGE__BACKEND": "server", "TICKOPS_STORAGE__PORT": str(CLICKHOUSE_PORT),
           "TICKOPS_STORAGE__DATABASE": database, "TICKOPS_BACKUP__DIRECTORY": str(backup_dir)}
    store = open_store(settings)
    yield Site(settings, store, TopicSet(prefix), backup_dir, mirror_dir, env)
    store.execute(f"DROP DATABASE IF EXISTS {database}")
    store.close()
    delete_topics(kafka_bootstrap, prefix)


def _watermarks(site: Site) -> dict[tuple[str, int], int]:
    consumer = throwaway_consumer(site.settings.kafka.bootstrap_servers, _quiet(), "test")
    try:
        return {(topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for topic in site.topics.event_topics for p in range(3)}
    finally:
        consumer.close()


def _quiet() -> logging.Logger:
    logger = logging.getLogger("tests.dr.kafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def _expire_from_kafka(site: Site, before: dict[tuple[str, int], int]) -> None:
    """Kafka's retention, applied now: every message before ``before`` is deleted from its partition."""
    admin = AdminClient({"bootstrap.servers": site.settings.kafka.bootstrap_servers})
    doomed = [TopicPartition(topic, p, offset) for (topic, p), offset in before.items() if offset > 0]
    for future in admin.delete_records(doomed).values():
        future.result(timeout=30)


def _operator_rows(store: Store) -> dict[str, list[tuple]]:
    rows = {}
    for table in OPERATOR_TABLES:
        columns = table_columns(store, table.name)
        rows[table.name] = sorted(map(tuple, store.query(f"SELECT {', '.join(columns)} FROM {store.table(table.name)}")),
                                  key=repr)
    return rows


def _expected_bars(events) -> dict[str, list[Bar]]:
    cells: dict[tuple[str, int], list[Trade]] = defaultdict(list)
    for event in events:
        if isinstance(event, Trade):
            cells[(event.symbol, event.ts_ns // MINUTE_NS * MINUTE_NS)].append(event)
    bars: dict[str, list[Bar]] = defaultdict(list)
    for (symbol, minute), trades in sorted(cells.items()):
        trades.sort(key=lambda t: t.ts_ns)
        bars[symbol].append(Bar(symbol, minute, trades[0].price, max(t.price for t in trades),
                                min(t.price for t in trades), trades[-1].price, sum(t.size for t in trades), len(trades)))
    return bars


def _rebuild_cli(site: Site, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "storage.rebuild", *args], env=site.env, cwd=site.backup_dir.parent,
                          capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.timeout(300)
def test_a_dropped_database_and_a_lost_backup_disk_are_rebuilt_from_the_mirror_and_kafka_exactly(site):
    settings, store = site.settings, site.store
    events = make_events(EVENTS)
    head, middle, tail = events[:4_800], events[4_800:9_600], events[9_600:]
    stored = [e for e in events if table_for(e)]
    migrate(store)
    bus = open_bus(settings)
    producer = build_producer(settings, bus)
    backup = BackupWriter(BackupConfig(directory=site.backup_dir, instance_id="dr-1", segment_max_bytes=32_000,
                                       flush_max_bytes=8_000), clock=FakeClock())
    writer = build_writer(settings, bus, store)
    writer.start()

    def ingest(part, *, backed_up: bool = True) -> None:
        if backed_up:
            for start in range(0, len(part), 100):  # feed reads arrive in small batches
                backup.append(part[start:start + 100])
        producer.publish_many(part)
        assert producer.flush(30), producer.stats()

    ingest(head)
    head_ends = _watermarks(site)
    ingest(middle)

    # Operator state, its snapshot, and the mirror pass that copies segments and snapshot to the other disk.
    clock = FakeClock(time.time_ns())
    alerts, symbols = AlertStore(store), SymbolRegistry(store)
    alerts.save([Alert("kafka_unreachable", "bus", "critical", "firing", "Kafka unreachable", started_ns=1, updated_ns=2,
                       value=None, fired_ns=2)])
    alerts.audit("ops", "acknowledge", "kafka_unreachable/bus", "on it", ts_ns=10)
    symbols.set("AAPL", level1=True, depth=True, by="ops")
    store.insert_columns("feed_outages", ["source", "connection", "symbol", "cause", "start_ns", "end_ns", "recorded_ns"],
                         [["dr-1@1"], ["level1"], [""], ["socket closed"], [100], [200], [300]])
    uptime = UptimeTracker("dr-1", 0.999, clock_ns=clock)
    for _ in range(13):
        uptime.sample({"feed": True, "bus": True, "storage": True, "writer": True})
        clock.advance(5)
    uptime.persist(store)
    snapshots = OperatorSnapshots(store, snapshot_directory(site.backup_dir), instance_id="dr-1", interval_s=300, keep=5,
                                  clock_ns=clock)
    assert snapshots.run_if_due(storage_ready=True) is not None
    backup.close()  # seals head and middle
    mirror = BackupMirror(site.backup_dir, site.mirror_dir, retention_ns=14 * 86_400 * 10**9)
    assert mirror.sync() > 5 and mirror.health.state == "ok" and mirror.health.pending == 0
    before = _operator_rows(store)
    alerts.audit("ops", "stop_symbol", "MSFT", ts_ns=20)  # after the last snapshot: lost with the database (RPO)

    ingest(tail, backed_up=False)
    wait_until(lambda: stored_count(store) == len(stored), 120, "the pipeline to store every event")
    writer.stop()  # the writer leaves its consumer group
    producer.close()
    assert sum(store.query(f"SELECT count() FROM {store.table(t)}")[0][0] for t in TABLE_COLUMNS) == len(stored)

    # The disaster: Kafka's retention has removed the head, the database is dropped, the backup disk is gone.
    _expire_from_kafka(site, head_ends)
    store.execute(f"DROP DATABASE {store.database}")
    shutil.rmtree(site.backup_dir)
    site.backup_dir.mkdir()  # a new, empty disk

    # A writer in the group would race the rebuild: refused.
    intruder = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": settings.kafka.consumer_group,
                         "logger": _quiet()})
    assigned: list = []
    intruder.subscribe([site.topics.trades], on_assign=lambda _c, parts: assigned.extend(parts))
    wait_until(lambda: intruder.poll(0.2) is None and bool(assigned), 60, "the intruder to join the group")
    refused = _rebuild_cli(site, "--backup", str(site.mirror_dir))
    intruder.close()
    assert refused.returncode == 2 and "active member" in refused.stderr and "stop the writers" in refused.stderr

    done = _rebuild_cli(site, "--backup", str(site.mirror_dir), "--json", str(site.backup_dir / "rebuild.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((site.backup_dir / "rebuild.json").read_text())
    print(done.stdout)  # the RTO of this size: docs/DR.md
    assert [s["name"] for s in report["steps"]] == ["schema", "operator tables", "kafka", "backup segments"]
    assert report["events_inserted"] == len(stored) and report["problems"] == []
    from_kafka = sum(1 for e in middle + tail if table_for(e))
    assert f"{from_kafka} inserted" in report["steps"][2]["detail"]
    assert f"{len(stored) - from_kafka} inserted" in report["steps"][3]["detail"]

    # Exactly what was generated: per cell, count() without FINAL, and the 1-minute bars.
    assert sum(store.query(f"SELECT count() FROM {store.table(t)}")[0][0] for t in TABLE_COLUMNS) == len(stored)
    generated = EventTally("generated")
    generated.add(events)
    reconciled = compare([generated.finish(), read_store(store)])
    assert reconciled.ok and not reconciled.duplicates, (reconciled.mismatches[:3], reconciled.duplicates[:3])
    expected_bars = _expected_bars(events)
    for symbol in SYMBOLS:
        assert query_bars(store, symbol, 0, 2**62) == expected_bars[symbol], symbol
    rebuilt = _operator_rows(store)
    audited = [row for row in rebuilt["audit_trail"] if row[0] == "rebuild"]  # the rebuild audits itself
    rebuilt["audit_trail"] = [row for row in rebuilt["audit_trail"] if row[0] != "rebuild"]
    assert len(audited) == 1 and rebuilt == before  # the audit entry written after the snapshot is the RPO's loss

    # Running it again stores nothing twice.
    again = rebuild(store, [site.mirror_dir], kafka=KafkaSource(settings.kafka.bootstrap_servers, site.topics,
                                                                settings.kafka.consumer_group))
    assert again.events_inserted == 0 and set(again.snapshot.inserted.values()) == {0}

    # The writers resume after the rebuilt rows: new events are stored once, nothing old is read again.
    more = make_events(600, start_seq=EVENTS + 1)
    successor = build_writer(settings, bus, store)
    successor.start()
    try:
        producer = build_producer(settings, bus)
        producer.publish_many(more)
        assert producer.flush(30)
        producer.close()
        expected = len(stored) + sum(1 for e in more if table_for(e))
        wait_until(lambda: stored_count(store) >= expected, 60, "the new events to be stored")
        time.sleep(1.0)  # a re-read of rebuilt rows would land now
    finally:
        successor.stop()
    assert stored_count(store) == expected
    assert successor.stats().stored == expected - len(stored)

"""Recovery time: rebuild a dropped ClickHouse database from Kafka and the backup segments (storage/rebuild.py).

    .venv/bin/python bench/bench_rebuild.py [--events 300000] [--kafka-share 0.5] [--bootstrap 127.0.0.1:9092]
                                            [--ch-port 9000]

Publishes ``--events`` feed-like events (tests/events_factory.py: trades, quotes, depth, status,
heartbeats over 5 symbols) through the real producer into fresh Kafka topics and appends them to a
backup directory (default segment settings), then deletes the oldest ``1 - --kafka-share`` of
every partition from Kafka (as retention would) and rebuilds a fresh database with
:func:`storage.rebuild.rebuild`: Kafka replays its share, the segments restore the rest and skip
what Kafka stored. Prints each step's time and rate and checks the rebuilt row count. This is the
RTO figure of docs/DR.md: time to rebuild N events on this hardware. Topics and database are
removed afterwards.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO))

from confluent_kafka import TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from bus.factory import build_producer, open_bus  # noqa: E402
from bus.topics import TopicSet  # noqa: E402
from config import Settings  # noqa: E402
from storage.backup import BackupConfig, BackupWriter  # noqa: E402
from storage.factory import open_store  # noqa: E402
from storage.kafka_read import partition_ranges, throwaway_consumer  # noqa: E402
from storage.rebuild import KafkaSource, rebuild  # noqa: E402
from storage.rows import TABLE_COLUMNS, table_for  # noqa: E402
from tests.events_factory import make_events  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--kafka-share", type=float, default=0.5, help="the newest share Kafka still holds")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--ch-port", type=int, default=9000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet = logging.getLogger("bench.kafka")
    quiet.propagate = False

    name = f"bench_rebuild_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), bus={"kind": "kafka"},
                            kafka={"bootstrap_servers": args.bootstrap, "topic_prefix": name, "partitions": 6},
                            storage={"backend": "server", "port": args.ch_port, "database": name})
        topics = TopicSet(name)
        events = make_events(args.events)
        split = int(len(events) * (1 - args.kafka_share))
        producer = build_producer(settings, open_bus(settings))
        backup = BackupWriter(BackupConfig(directory=Path(tmp) / "backup", instance_id="bench"))
        started = time.monotonic()

        def publish(part) -> None:
            for start in range(0, len(part), 1_000):
                chunk = part[start:start + 1_000]
                backup.append(chunk)
                producer.publish_many(chunk)
            assert producer.flush(120), producer.stats()

        publish(events[:split])
        consumer = throwaway_consumer(args.bootstrap, quiet, "bench")
        head_ends = {(r.topic, r.partition): r.high for r in partition_ranges(consumer, topics.event_topics, {})}
        consumer.close()
        publish(events[split:])
        producer.close()
        backup.close()
        print(f"prepared {len(events):,} events in {time.monotonic() - started:.1f} s")

        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        doomed = [TopicPartition(t, p, o) for (t, p), o in head_ends.items() if o > 0]
        for future in (admin.delete_records(doomed).values() if doomed else ()):
            future.result(timeout=60)
        store = open_store(settings)
        try:
            report = rebuild(store, [Path(tmp) / "backup"],
                             kafka=KafkaSource(args.bootstrap, topics, settings.kafka.consumer_group))
            stored = sum(store.query(f"SELECT count() FROM {store.table(t)}")[0][0] for t in TABLE_COLUMNS)
        finally:
            store.execute(f"DROP DATABASE IF EXISTS {name}")
            store.close()
            for future in admin.delete_topics(list(topics.all_topics), operation_timeout=30).values():
                future.result(timeout=60)
    expected = sum(1 for e in events if table_for(e))
    print(report.summary())
    for step in report.steps:
        if step.name in ("kafka", "backup segments"):
            read = report.kafka.messages if step.name == "kafka" else report.backup.events
            print(f"{step.name}: {read / step.seconds:,.0f} events read/s")
    print(f"rebuild: {report.events_inserted / report.seconds:,.0f} events stored/s overall; "
          f"{stored:,} rows stored, {expected:,} expected")
    return 0 if stored == expected else 1


if __name__ == "__main__":
    sys.exit(main())

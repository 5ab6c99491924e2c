"""Pipeline throughput: events/s from the producer through the broker and the writer into ClickHouse.

    .venv/bin/python bench/bench_pipeline.py [--events 200000] [--bus kafka|memory] [--store server|chdb]
                                             [--writer thread|process] [--bootstrap 127.0.0.1:9092]
                                             [--ch-port 9000] [--min-rate 10000]

Publishes ``--events`` feed-like events (60% trades, 30% quotes, 8% depth, status and
heartbeats; 50 symbols) in chunks of 1,000 through :class:`bus.producer.EventProducer`
(idempotent, acks=all, lz4) while :class:`storage.writer.Writer` (default batch settings:
20,000 rows / 50 ms) stores them: in a thread of this process as the embedded engine
runs it (``--writer thread``), or as ``python -m storage.writer`` in its own process as a
headless deployment runs it (``--writer process``, Kafka and server only). Prints the
producer rate (first publish -> every event acknowledged), the end-to-end rate (first
publish -> last row stored) and latency percentiles, then checks that storage holds
exactly the expected rows. Fresh topics and database, removed afterwards. Exits 1 when
the end-to-end rate is under ``--min-rate``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO))

from bus.factory import build_producer, open_bus  # noqa: E402
from config import Settings  # noqa: E402
from events import Depth, Event, Heartbeat, Quote, System, Trade  # noqa: E402
from events.kinds import TABLES  # noqa: E402
from storage.migrate import migrate  # noqa: E402
from storage.rows import table_for  # noqa: E402
from storage.store import Store  # noqa: E402
from storage.writer import build_writer  # noqa: E402

TARGET_EVENTS_PER_S = 10_000
_TABLES = tuple(TABLES)
_SYMBOLS = tuple(f"SYM{n:02d}" for n in range(50))


def make_events(count: int) -> list[Event]:
    base = time.time_ns()
    events: list[Event] = []
    for seq in range(1, count + 1):
        symbol, ts_ns, kind = _SYMBOLS[seq % len(_SYMBOLS)], base + seq * 1000, seq % 100
        if kind < 60:
            events.append(Trade(symbol=symbol, price=100 + kind / 100, size=100, ts_ns=ts_ns, conditions=("17",),
                                market_center=11, tick_id=seq, total_volume=seq, basis="C", source="bench", seq=seq))
        elif kind < 90:
            events.append(Quote(symbol=symbol, bid=99.99, bid_size=300, ask=100.01, ask_size=200, ts_ns=ts_ns,
                                source="bench", seq=seq))
        elif kind < 98:
            events.append(Depth(symbol=symbol, action="update", side="ask", price=100.02, size=500, mmid="NSDQ",
                                ts_ns=ts_ns, source="bench", seq=seq))
        elif kind == 98:
            events.append(System(name="STATS", fields=("x",), ts_ns=ts_ns, source="bench", seq=seq))
        else:
            events.append(Heartbeat(ts_ns=ts_ns, source="bench", seq=seq))
    return events


def stored_rows(store: Store) -> int:
    return sum(store.query(f"SELECT count() FROM {store.table(t)}")[0][0] for t in _TABLES)


def open_bench_store(kind: str, database: str, port: int, data_dir: Path) -> Store:
    if kind == "server":
        from storage.server_store import ClickHouseServerStore

        return ClickHouseServerStore(port=port, database=database)
    from storage.chdb_store import ChdbStore

    return ChdbStore(data_dir / "chdb", database=database)


class WriterUnderTest:
    """The writer in a thread of this process, or as ``python -m storage.writer`` in its own."""

    def __init__(self, args: argparse.Namespace, settings: Settings, bus, store: Store) -> None:
        self._store = store
        self._process: subprocess.Popen[bytes] | None = None
        self._writer = None
        if args.writer == "thread":
            self._writer = build_writer(settings, bus, store)
            self._writer.start()
            return
        if args.bus != "kafka" or args.store != "server":
            raise SystemExit("--writer process needs --bus kafka --store server")
        env = {**os.environ, "TICKOPS_DATA_DIR": str(settings.data_dir), "TICKOPS_BUS__KIND": "kafka",
               "TICKOPS_KAFKA__BOOTSTRAP_SERVERS": args.bootstrap, "TICKOPS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
               "TICKOPS_KAFKA__CONSUMER_GROUP": settings.kafka.consumer_group, "TICKOPS_STORAGE__BACKEND": "server",
               "TICKOPS_STORAGE__PORT": str(args.ch_port), "TICKOPS_STORAGE__DATABASE": store.database,
               "TICKOPS_LOG_LEVEL": "WARNING"}
        self._process = subprocess.Popen([sys.executable, "-m", "storage.writer"], cwd=_REPO, env=env)

    def stored(self) -> int:
        if self._writer is not None:
            return self._writer.stats().stored
        time.sleep(0.1)
        return stored_rows(self._store)

    def stop(self) -> None:
        if self._writer is not None:
            self._writer.stop()
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            self._process.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--bus", choices=("kafka", "memory"), default="kafka")
    parser.add_argument("--store", choices=("server", "chdb"), default="server")
    parser.add_argument("--writer", choices=("thread", "process"), default="thread")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--ch-port", type=int, default=9000)
    parser.add_argument("--min-rate", type=float, default=TARGET_EVENTS_PER_S)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    data_dir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    settings = Settings(data_dir=data_dir, instance_id=prefix, bus={"kind": args.bus},
                        kafka={"bootstrap_servers": args.bootstrap, "topic_prefix": prefix, "consumer_group": prefix},
                        )
    store = open_bench_store(args.store, prefix.replace("-", "_"), args.ch_port, data_dir)
    migrate(store)
    events = make_events(args.events)
    expected = sum(1 for event in events if table_for(event) is not None)
    bus = open_bus(settings)
    producer = build_producer(settings, bus)
    producer.start()
    writer = WriterUnderTest(args, settings, bus, store)
    time.sleep(3.0)  # group joined and idle: measure the pipeline, not start-up
    try:
        started = time.perf_counter()
        for index in range(0, len(events), 1000):
            chunk = events[index:index + 1000]
            now = time.time_ns()
            for event in chunk:
                event.recv_ns = now
            producer.publish_many(chunk)
        if not producer.flush(300):
            print(f"producer did not deliver everything: {producer.stats()}", file=sys.stderr)
            return 1
        acked = time.perf_counter()
        deadline = time.monotonic() + 300
        while writer.stored() < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        stored = time.perf_counter()
    finally:
        writer.stop()
        producer.close()
    rows = stored_rows(store)
    ack = producer.stats().latency
    end_to_end = args.events / (stored - started)
    print(f"bus={args.bus} store={args.store} writer={args.writer} events={args.events} "
          f"stored_rows={rows} (expected {expected})")
    print(f"producer: {args.events / (acked - started):,.0f} events/s (publish -> acknowledged)")
    print(f"pipeline: {end_to_end:,.0f} events/s (publish -> stored), {stored - started:.2f} s")
    print(f"recv->ack    p50 <= {ack.percentile(0.5) / 1e6:.1f} ms  p99 <= {ack.percentile(0.99) / 1e6:.1f} ms")
    (p50, p99) = store.query(f"SELECT quantiles(0.5, 0.99)((stored_ns - recv_ns) / 1e6) FROM {store.table('trades')}")[0][0]
    print(f"recv->stored p50 {p50:.1f} ms  p99 {p99:.1f} ms (stored_ns is stamped as each insert starts)")
    print(f"spooled={producer.stats().spooled}")
    store.execute(f"DROP DATABASE IF EXISTS {store.database}")
    if args.bus == "kafka":
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        for future in admin.delete_topics([t for t in admin.list_topics(timeout=10).topics
                                           if t.startswith(prefix + ".")]).values():
            future.result(timeout=60)
    if rows != expected:
        print(f"FAIL: {rows} rows stored, {expected} expected", file=sys.stderr)
        return 1
    return 0 if end_to_end >= args.min_rate else 1


if __name__ == "__main__":
    sys.exit(main())

"""What several events per bus message would save: CPU per event on both sides of the real broker.

    .venv/bin/python bench/bus_batching.py [--events 200000] [--symbols 1000] [--partitions 12]
                                           [--batch 1 --batch 10 --batch 50] [--repeat 3] [--json]

The profile of the collector at 15k events/s (BENCHMARKS.md) puts most of an event's cost in work done
once per Kafka message: one ``produce`` call, one delivery-report callback and one consumed ``Message``
per event. This measures that cost against the number of events per message, with our codec's
msgspec encoder and the settings of :class:`bus.kafka.KafkaBus` (idempotent, acks=all, lz4, 5 ms linger),
before the bus format is changed for it:

- batch 1: today's shape, one message per event keyed by symbol, a Python delivery callback each;
- batch B: events grouped per partition (the symbol's CRC-32 modulo the partition count, which is
  librdkafka's default partitioner for keyed messages, so a symbol stays on its partition), B events
  msgpack-encoded as one list per message, one callback per message.

For each it reports the producer side (encode, produce, wait for every acknowledgement) and the
consumer side (consume the topic from the start with a fresh group, decode every event) as events/s
and CPU microseconds per event of this process (librdkafka's own threads included). A prototype
measurement of the transport only, not the pipeline: no spool, no writer. The broker must be up
(``make services-up``); the topic is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import msgspec
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bus.codec import decode, encode  # noqa: E402
from events import Event, Quote, Trade  # noqa: E402

_QUIET = logging.getLogger("bench.bus_batching.librdkafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def make_events(count: int, symbols: int) -> list[Event]:
    """Two thirds trades, one third quotes, round-robin over the symbols (a feed-like mix of sizes)."""
    base = time.time_ns()
    out: list[Event] = []
    for seq in range(1, count + 1):
        symbol, ts_ns = f"S{seq % symbols:04d}", base + seq * 1000
        if seq % 3:
            out.append(Trade(symbol=symbol, price=100 + seq % 97 / 100, size=100, ts_ns=ts_ns, conditions=("17",),
                             market_center=11, tick_id=seq, total_volume=seq, basis="C", source="bench", seq=seq,
                             recv_ns=ts_ns))
        else:
            out.append(Quote(symbol=symbol, bid=99.99, bid_size=300, ask=100.01, ask_size=200, ts_ns=ts_ns,
                             source="bench", seq=seq, recv_ns=ts_ns))
    return out


def cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def produce(bootstrap: str, topic: str, events: list[Event], batch: int, partitions: int) -> tuple[float, float]:
    """(wall s, CPU s) to publish ``events`` and hear every acknowledgement."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "compression.type": "lz4", "linger.ms": 5, "queue.buffering.max.messages": 100_000,
                         "logger": _QUIET})
    producer.produce(topic, value=b"warm-up", partition=0)  # connection and producer id outside the timing
    producer.flush(30)
    acked = [0]
    encoder = msgspec.msgpack.Encoder()

    def deliver_one(message_events: int) -> Callable[[KafkaError | None, object], None]:
        def report(error: KafkaError | None, _message: object) -> None:
            if error is not None:
                raise SystemExit(f"delivery failed: {error}")
            acked[0] += message_events
        return report

    def send(value: bytes, *, key: bytes | None = None, partition: int = -1, message_events: int = 1) -> None:
        while True:
            try:
                producer.produce(topic, value=value, key=key, partition=partition,
                                 on_delivery=deliver_one(message_events))
                return
            except BufferError:
                producer.poll(0.01)

    wall0, cpu0 = time.perf_counter(), cpu_s()
    chunk = 1000  # a feed read's worth, as Engine.ingest publishes them
    for start in range(0, len(events), chunk):
        read = events[start:start + chunk]
        if batch == 1:
            for event in read:
                send(encode(event), key=event.symbol.encode())
        else:
            by_partition: dict[int, list[Event]] = {}
            for event in read:
                by_partition.setdefault(zlib.crc32(event.symbol.encode()) % partitions, []).append(event)
            for partition, group in by_partition.items():
                for at in range(0, len(group), batch):
                    part = group[at:at + batch]
                    send(b"\x02" + encoder.encode(part), partition=partition, message_events=len(part))
        producer.poll(0)
    if producer.flush(120):
        raise SystemExit("the broker did not acknowledge everything within 120 s")
    wall, cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    if acked[0] != len(events):
        raise SystemExit(f"acknowledged {acked[0]} of {len(events)} events")
    return wall, cpu


def consume(bootstrap: str, topic: str, expected: int, batch: int) -> tuple[float, float]:
    """(wall s, CPU s) to read the topic from its start and decode every event."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "logger": _QUIET})
    consumer.subscribe([topic])
    decoder = msgspec.msgpack.Decoder(list[Event])
    seen, wall0, cpu0 = 0, None, 0.0
    deadline = time.monotonic() + 120
    while seen < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"consumed {seen} of {expected} events within 120 s")
        messages = consumer.consume(num_messages=10_000, timeout=0.5)
        if wall0 is None:
            if not messages:
                continue
            wall0, cpu0 = time.perf_counter(), cpu_s()  # from the first fetch: the group join is not the cost
        for message in messages:
            if message.error() is not None or message.value() == b"warm-up":
                continue
            if batch == 1:
                decode(message.value())
                seen += 1
            else:
                seen += len(decoder.decode(memoryview(message.value())[1:]))
    wall, cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    consumer.close()
    return wall, cpu


def one_run(bootstrap: str, events: list[Event], batch: int, partitions: int) -> dict[str, float]:
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": _QUIET})
    topic = f"bench-batching-{uuid.uuid4().hex[:10]}"
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)
    try:
        p_wall, p_cpu = produce(bootstrap, topic, events, batch, partitions)
        c_wall, c_cpu = consume(bootstrap, topic, len(events), batch)
    finally:
        admin.delete_topics([topic], operation_timeout=30)[topic].result(60)
    n = len(events)
    return {"batch": batch, "produce_events_per_s": round(n / p_wall), "produce_cpu_us_per_event": round(p_cpu / n * 1e6, 2),
            "consume_events_per_s": round(n / c_wall), "consume_cpu_us_per_event": round(c_cpu / n * 1e6, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--batch", type=int, action="append", help="events per message (repeatable; default 1 10 50)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    events = make_events(args.events, args.symbols)
    results = []
    for batch in args.batch or [1, 10, 50]:
        runs = [one_run(args.bootstrap, events, batch, args.partitions) for _ in range(args.repeat)]
        summary: dict[str, object] = {"batch": batch, "runs": len(runs), "events": args.events,
                                      "load": round(os.getloadavg()[0], 2)}
        for field in ("produce_events_per_s", "produce_cpu_us_per_event", "consume_events_per_s",
                      "consume_cpu_us_per_event"):
            values = [r[field] for r in runs]
            summary[field] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
        results.append(summary)
        if not args.json:
            print(f"batch {batch:>3}: produce {summary['produce_events_per_s']} ev/s, "
                  f"{summary['produce_cpu_us_per_event']} µs CPU/ev; consume {summary['consume_events_per_s']} ev/s, "
                  f"{summary['consume_cpu_us_per_event']} µs CPU/ev")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

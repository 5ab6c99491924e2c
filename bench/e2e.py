"""End-to-end benchmark: simulator process -> our client -> bus -> writer -> storage, counted exactly.

    .venv/bin/python bench/e2e.py --rate 20000 --symbols 1000 --seconds 60 [--bus kafka|memory]
        [--store server|chdb] [--writer embedded|process] [--batch-age-ms MS] [--batch-rows N] [--warmup 10] [--json]
        [--profile FILE.svg]

The simulator runs as its own process (it stands in for IQConnect, a separate program) with a
trade log; the engine (client, producer, writer) runs in this process, so ``cpu_percent`` and
``rss_mb`` are the collector process's own. After ``--warmup`` seconds the engine's histograms
are read for ``--seconds`` (the live path: receive -> acknowledged by the bus; freshness:
receive -> stored), then the simulator is stopped, the engine drains, and the stored trades
are compared with every trade the simulator logged for the watched symbols (by content), and
every ingested event with the stored rows (by source and seq): ``lost`` and ``duplicates``
count both. Exit status 1 when anything was lost or doubled.

Kafka and ClickHouse must be running for the defaults (``make services-up``); the embedded
default is ``--bus memory --store chdb``. Run it alone: the machine has two cores.
``--profile`` records this process with py-spy as a flame graph during the window.
``--writer process`` runs the writer as its own process (``python -m storage.writer``,
``storage.embedded_writer = false``; Kafka and the ClickHouse server only): its stored rate and
freshness are read from its ``/metrics`` (bucket bounds …, 100, 200, 500, 1000 ms) and its CPU is
``writer_cpu_percent``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_run import pipeline  # noqa: E402
from writer_process import percentile_ms  # noqa: E402


def _ms(snapshot, q: float) -> float | None:
    value = snapshot.percentile(q)
    return None if value is None else round(value / 1e6, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20_000, help="simulator Level 1 messages/s")
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60, help="measured window")
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--bus", choices=["kafka", "memory"], default="kafka")
    parser.add_argument("--store", choices=["server", "chdb"], default="server")
    parser.add_argument("--writer", choices=["embedded", "process"], default="embedded",
                        help="the writer in the engine's process, or as its own (Kafka + server only)")
    parser.add_argument("--batch-age-ms", type=int, help="storage.batch_age_ms (default: the setting's default)")
    parser.add_argument("--batch-rows", type=int, help="storage.batch_rows (default: the setting's default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", type=Path, help="py-spy flame graph (SVG) of this process during the window")
    args = parser.parse_args()
    if args.writer == "process" and (args.bus, args.store) != ("kafka", "server"):
        parser.error("--writer process needs --bus kafka --store server")

    me = psutil.Process(os.getpid())
    with pipeline(rate=args.rate, symbols=args.symbols, bus=args.bus, store=args.store, writer=args.writer,
                  batch_age_ms=args.batch_age_ms, batch_rows=args.batch_rows) as run:
        time.sleep(args.warmup)
        profiler = None
        if args.profile:
            profiler = subprocess.Popen(["py-spy", "record", "-p", str(os.getpid()), "-d", str(int(args.seconds)),
                                         "-o", str(args.profile), "-r", "100", "--nonblocking"])
        start, cpu0, wall0 = run.engine.status(), me.cpu_times(), time.monotonic()
        writer0 = run.writer.scrape() if run.writer else None
        time.sleep(args.seconds)
        end, cpu1, wall1 = run.engine.status(), me.cpu_times(), time.monotonic()
        writer1 = run.writer.scrape() if run.writer else None
        rss_mb = me.memory_info().rss / 2**20
        if profiler is not None:
            profiler.wait(60)
        counts = run.finish()

    window = wall1 - wall0
    live = end.producer.latency.minus(start.producer.latency)
    if writer0 is not None and writer1 is not None:
        stored_rate = (writer1.stored - writer0.stored) / window
        fresh_p50, fresh_p99 = percentile_ms(writer0, writer1, 0.5), percentile_ms(writer0, writer1, 0.99)
        max_ns, writer_cpu = live.max_ns, round((writer1.cpu_s - writer0.cpu_s) / window * 100, 1)
    else:
        fresh = end.writer.latency.minus(start.writer.latency)
        stored_rate = (end.writer.stored - start.writer.stored) / window
        fresh_p50, fresh_p99 = _ms(fresh, 0.5), _ms(fresh, 0.99)
        max_ns, writer_cpu = max(live.max_ns, fresh.max_ns), None
    result = {
        **counts,
        "rate": round((end.ingested - start.ingested) / window),
        "stored_rate": round(stored_rate),
        "live_p50_ms": _ms(live, 0.5), "live_p99_ms": _ms(live, 0.99),
        "fresh_p50_ms": fresh_p50, "fresh_p99_ms": fresh_p99,
        "max_ms": round(max_ns / 1e6, 2),
        "cpu_percent": round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / window * 100, 1),
        "rss_mb": round(rss_mb, 1),
        "writer_cpu_percent": writer_cpu, "writer": args.writer,
        "batch_age_ms": run.engine.settings.storage.batch_age_ms,
        "batch_rows": run.engine.settings.storage.batch_rows,
        "bus": args.bus, "store": args.store, "symbols": args.symbols, "sim_rate": args.rate,
        "seconds": args.seconds, "load": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>14}: {value}")
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

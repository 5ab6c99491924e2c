"""End-to-end benchmark: simulator process -> our client -> bus -> writer -> storage, counted exactly.

    .venv/bin/python bench/e2e.py --rate 20000 --symbols 1000 --seconds 60 [--bus kafka|memory]
        [--store server|chdb] [--warmup 10] [--json] [--profile FILE.svg]

The simulator runs as its own process (it stands in for IQConnect, which is a separate
program) with a trade log; the engine (client, producer, writer) runs in this process, so
``cpu_percent`` and ``rss_mb`` are the collector process's own. After ``--warmup`` seconds
the engine's histograms are read for ``--seconds`` (the live path: receive -> acknowledged
by the bus; freshness: receive -> stored), then the simulator is stopped, the engine drains,
and the stored trades are compared with every trade the simulator logged for the watched
symbols (by content: symbol, ts_ns, total_volume, price, size), and every ingested event with
the stored rows (by source and seq): ``lost`` and ``duplicates`` count both.

Kafka and ClickHouse must be running for the defaults (``make services-up``); the embedded
default is ``--bus memory --store chdb``. Run it alone: the machine has two cores.
``--profile`` records the engine process with py-spy (``pip install py-spy``) as a flame graph.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.iqfeed.simulator.config import generated_symbols  # noqa: E402
from collectors.iqfeed.simulator.trade_log import read_trade_log  # noqa: E402
from config import load_settings  # noqa: E402
from runtime.engine import Engine  # noqa: E402
from storage.factory import open_store  # noqa: E402

TAIL_S = 2.0  # trades the simulator logged in its last seconds may not have left its socket


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_simulator(args: argparse.Namespace, ports: dict[str, int], trade_log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "collectors.iqfeed.simulator", "--symbols", str(args.symbols),
        "--rate", str(args.rate), "--watch-limit", str(args.symbols), "--trade-log", str(trade_log),
        "--log-level", "WARNING",
        *(item for name, port in ports.items() for item in (f"--{name}-port", str(port))),
    ]
    return subprocess.Popen(command, cwd=Path(__file__).resolve().parents[1])


def _wait_listening(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"the simulator did not listen on {port} within {timeout_s:.0f} s")


def _delete_topics(bootstrap: str, prefix: str) -> None:
    """A broker holding hundreds of idle partitions burns CPU: every run removes its topics."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix + ".")]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(timeout=60)


def _count(store, engine: Engine, ingested: Counter, symbols: set[str], trade_log: Path, stop_ns: int) -> dict:
    """Lost and duplicated, against the simulator's trades and against what the engine ingested."""
    logged = {(t.symbol, t.ts_ns, t.total_volume, t.price, t.size) for t in read_trade_log(trade_log)
              if t.symbol in symbols}
    first_ns = {sym: ts for sym, ts in store.query(
        f"SELECT symbol, min(ts_ns) FROM {store.table('trades')} GROUP BY symbol")}
    rows = store.query(f"SELECT symbol, ts_ns, total_volume, price, size FROM {store.table('trades')}")
    stored = Counter((s, int(ts), int(v), float(p), int(z)) for s, ts, v, p, z in rows)
    horizon = stop_ns - int(TAIL_S * 1e9)
    expected = {t for t in logged if t[0] in first_ns and first_ns[t[0]] <= t[1] <= horizon}
    lost_trades = len(expected - stored.keys())
    keys = Counter()
    for table in ("trades", "quotes", "depth", "feed_status"):
        keys.update((str(source), int(seq)) for source, seq in store.query(
            f"SELECT source, seq FROM {store.table(table)} WHERE source = '{engine.source}'"))
    lost_events = sum(1 for key in ingested if key not in keys)
    duplicates = sum(n - 1 for n in keys.values() if n > 1) + sum(n - 1 for n in stored.values() if n > 1)
    return {"sent": len(expected), "stored": sum(keys.values()), "lost": lost_trades + lost_events,
            "lost_trades": lost_trades, "lost_events": lost_events, "duplicates": duplicates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20_000, help="simulator Level 1 messages/s")
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60, help="measured window")
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--bus", choices=["kafka", "memory"], default="kafka")
    parser.add_argument("--store", choices=["server", "chdb"], default="server")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", type=Path, help="py-spy flame graph of this process during the window")
    args = parser.parse_args()

    run = f"e2e_{uuid.uuid4().hex[:8]}"
    symbols = list(generated_symbols(args.symbols))
    ports = {name: _free_port() for name in ("level1", "level2", "admin", "lookup")}
    with tempfile.TemporaryDirectory() as data:
        trade_log = Path(data) / "trades.csv"
        simulator = _start_simulator(args, ports, trade_log)
        _wait_listening(ports["level1"])
        settings = load_settings(
            data_dir=Path(data), instance_id=run, log_level="WARNING",
            feed={"mode": "iqconnect", "host": "127.0.0.1", "symbols": symbols, "watch_limit": max(500, args.symbols),
                  **{f"{name}_port": port for name, port in ports.items()}},
            bus={"kind": args.bus}, kafka={"topic_prefix": run, "consumer_group": run},
            storage={"backend": args.store, "database": run}, monitoring={"enabled": False},
            alerts={"symbol_silent_s": 86_400},
        )
        store = open_store(settings)
        engine = Engine(settings, store=store)
        ingested: Counter = Counter()
        forward = engine.ingest

        def counting(events):
            forward(events)
            ingested.update((e.source, e.seq) for e in events if type(e).__name__ in ("Trade", "Quote", "Depth", "System"))

        engine.ingest = counting  # type: ignore[method-assign]
        me = psutil.Process(os.getpid())
        engine.start()
        profiler = None
        try:
            time.sleep(args.warmup)
            if args.profile:
                profiler = subprocess.Popen(["py-spy", "record", "-p", str(os.getpid()), "-d", str(int(args.seconds)),
                                             "-o", str(args.profile), "-r", "100", "--nonblocking"])
            start, cpu0, wall0 = engine.status(), me.cpu_times(), time.monotonic()
            time.sleep(args.seconds)
            end, cpu1, wall1 = engine.status(), me.cpu_times(), time.monotonic()
            rss_mb = me.memory_info().rss / 2**20
            simulator.send_signal(signal.SIGTERM)
            simulator.wait(30)
            stop_ns = time.time_ns()
            time.sleep(1.0)
        finally:
            if simulator.poll() is None:
                simulator.kill()
            engine.stop(drain_timeout_s=60)
            if profiler is not None:
                profiler.wait(60)
        try:
            counts = _count(store, engine, ingested, set(symbols), trade_log, stop_ns)
        finally:
            store.execute(f"DROP DATABASE IF EXISTS {run}")
            store.close()
            if args.bus == "kafka":
                _delete_topics(settings.kafka.bootstrap_servers, run)

    live = end.producer.latency.minus(start.producer.latency)
    fresh = end.writer.latency.minus(start.writer.latency)
    window = wall1 - wall0
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / window * 100

    def ms(snapshot, q: float) -> float | None:
        value = snapshot.percentile(q)
        return None if value is None else round(value / 1e6, 2)

    result = {
        **counts,
        "rate": round((end.ingested - start.ingested) / window),
        "stored_rate": round((end.writer.stored - start.writer.stored) / window),
        "live_p50_ms": ms(live, 0.5), "live_p99_ms": ms(live, 0.99),
        "fresh_p50_ms": ms(fresh, 0.5), "fresh_p99_ms": ms(fresh, 0.99),
        "max_ms": round(max(live.max_ns, fresh.max_ns) / 1e6, 2),
        "cpu_percent": round(cpu, 1), "rss_mb": round(rss_mb, 1),
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

"""A pipeline run for the benchmarks: a simulator process feeding an in-process engine, torn down after.

Shared by bench/e2e.py (throughput, latency, exact loss and duplicate counts) and bench/soak.py
(memory over a long run). The simulator is its own process, as IQConnect is; the engine (client,
producer, writer) runs in the calling process, so that process's CPU and RSS are the collector's.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.iqfeed.simulator.config import generated_symbols  # noqa: E402
from collectors.iqfeed.simulator.trade_log import read_trade_log  # noqa: E402
from config import load_settings  # noqa: E402
from runtime.engine import Engine  # noqa: E402
from storage.factory import open_store  # noqa: E402
from storage.store import StorageError, Store  # noqa: E402
from writer_process import WriterProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TAIL_S = 2.0  # trades the simulator logged in its last seconds may not have left its socket
_STORED_KINDS = ("Trade", "Quote", "Depth", "System")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


@dataclass
class PipelineRun:
    engine: Engine
    store: Store
    simulator: subprocess.Popen
    trade_log: Path
    symbols: list[str]
    writer: WriterProcess | None  # the writer's own process (``storage.embedded_writer = false``), if any
    # The engine's seq of every stored-kind event it ingested (all under engine.source): a flat array of
    # integers, because a set of millions of (source, seq) tuples grew the process by 1.4 GB in a 13-minute
    # soak and its garbage-collection passes stalled the feed reader until the simulator dropped it.
    ingested: array = field(default_factory=lambda: array("q"))
    stop_ns: int = 0

    def finish(self) -> dict[str, int]:
        """Stop the simulator (its trade log is flushed at SIGTERM), drain and stop the engine, then count
        what was lost and duplicated: against the simulator's trades (by content: symbol, ts_ns,
        total_volume, price, size) and against the engine's ingest (by source and seq)."""
        self.simulator.send_signal(signal.SIGTERM)
        self.simulator.wait(30)
        self.stop_ns = time.time_ns()
        time.sleep(1.0)  # the last lines on the socket reach the engine
        self.engine.stop(drain_timeout_s=120)
        if self.writer is not None:
            self.writer.drain()
        store, wanted = self.store, set(self.symbols)
        logged = {(t.symbol, t.ts_ns, t.total_volume, t.price, t.size) for t in read_trade_log(self.trade_log)
                  if t.symbol in wanted}
        first_ns = dict(store.query(f"SELECT symbol, min(ts_ns) FROM {store.table('trades')} GROUP BY symbol"))
        rows = store.query(f"SELECT symbol, ts_ns, total_volume, price, size FROM {store.table('trades')}")
        stored = Counter((s, int(ts), int(v), float(p), int(z)) for s, ts, v, p, z in rows)
        horizon = self.stop_ns - int(TAIL_S * 1e9)
        expected = {t for t in logged if t[0] in first_ns and first_ns[t[0]] <= t[1] <= horizon}
        lost_trades = len(expected - stored.keys())
        keys: Counter = Counter()
        for table in ("trades", "quotes", "depth", "feed_status"):
            keys.update((str(source), int(seq)) for source, seq in store.query(
                f"SELECT source, seq FROM {store.table(table)} WHERE source = '{self.engine.source}'"))
        source = self.engine.source
        lost_events = sum(1 for seq in self.ingested if (source, seq) not in keys)
        duplicates = sum(n - 1 for n in keys.values() if n > 1) + sum(n - 1 for n in stored.values() if n > 1)
        return {"sent": len(expected), "stored": sum(keys.values()), "lost": lost_trades + lost_events,
                "lost_trades": lost_trades, "lost_events": lost_events, "duplicates": duplicates}


@contextmanager
def pipeline(*, rate: float, symbols: int, bus: str, store: str, writer: str = "embedded",
             batch_age_ms: int | None = None, batch_rows: int | None = None) -> Iterator[PipelineRun]:
    """A started simulator process and engine (and with ``writer="process"`` a writer process); on exit
    they are stopped and the run's database and topics are removed."""
    run = f"bench_{uuid.uuid4().hex[:8]}"
    names = list(generated_symbols(symbols))
    ports = {name: _free_port() for name in ("level1", "level2", "admin", "lookup")}
    with tempfile.TemporaryDirectory() as data:
        trade_log = Path(data) / "trades.csv"
        simulator = subprocess.Popen([
            sys.executable, "-m", "collectors.iqfeed.simulator", "--symbols", str(symbols), "--rate", str(rate),
            "--watch-limit", str(symbols), "--trade-log", str(trade_log), "--log-level", "WARNING",
            *(item for name, port in ports.items() for item in (f"--{name}-port", str(port))),
        ], cwd=ROOT)
        # Catch-up off: a fresh database has no watermarks, so the first start would fetch each symbol's
        # history back to the session's start through the lookup port while the window is measured.
        settings = load_settings(
            data_dir=Path(data), instance_id=run, log_level="WARNING",
            feed={"mode": "iqconnect", "supervise": False, "host": "127.0.0.1", "symbols": names, "watch_limit": max(500, symbols),
                  "catch_up": False,
                  **{f"{name}_port": port for name, port in ports.items()}},
            bus={"kind": bus}, kafka={"topic_prefix": run, "consumer_group": run},
            storage={"backend": store, "database": run, "embedded_writer": writer == "embedded",
                     **({"batch_age_ms": batch_age_ms} if batch_age_ms else {}),
                     **({"batch_rows": batch_rows} if batch_rows else {})},
            monitoring={"enabled": False},
        )
        writer_process = None
        opened = open_store(settings)
        try:
            _wait_listening(ports["level1"])
            engine = Engine(settings, store=opened)
            if writer == "process":
                writer_port = _free_port()
                writer_process = WriterProcess({
                    "TICKOPS_DATA_DIR": str(Path(data) / "writer"), "TICKOPS_INSTANCE_ID": f"{run}-writer",
                    "TICKOPS_LOG_LEVEL": "WARNING", "TICKOPS_BUS__KIND": "kafka",
                    "TICKOPS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
                    "TICKOPS_KAFKA__TOPIC_PREFIX": run, "TICKOPS_KAFKA__CONSUMER_GROUP": run,
                    "TICKOPS_STORAGE__BACKEND": store, "TICKOPS_STORAGE__DATABASE": run,
                    "TICKOPS_MONITORING__PORT": str(writer_port),
                    "TICKOPS_STORAGE__BATCH_AGE_MS": str(settings.storage.batch_age_ms),
                    "TICKOPS_STORAGE__BATCH_ROWS": str(settings.storage.batch_rows)}, writer_port)
                writer_process.wait_ready()
            result = PipelineRun(engine, opened, simulator, trade_log, names, writer_process)
            forward = engine.ingest

            def counting(events):
                forward(events)
                result.ingested.extend(e.seq for e in events if type(e).__name__ in _STORED_KINDS)

            engine.ingest = counting  # type: ignore[method-assign]
            engine.start()
            try:
                yield result
            finally:
                engine.stop(drain_timeout_s=10)  # a no-op after finish()
        finally:
            if writer_process is not None:
                writer_process.stop()
            if simulator.poll() is None:
                simulator.kill()
            try:  # never lose the run's result to its cleanup
                opened.execute(f"DROP DATABASE IF EXISTS {run}")
            except StorageError as exc:  # 30 minutes at 20k events/s: 18.16 may take longer than the timeout
                print(f"database {run} not dropped yet ({exc}); the server goes on dropping it", file=sys.stderr)
            finally:
                opened.close()
                if bus == "kafka":
                    _delete_topics(settings.kafka.bootstrap_servers, run)

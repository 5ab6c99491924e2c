"""Fleet: one simulator process (one shared market, a watch limit of 500 per client connection, a trade
log), 3 headless collectors (``python -m runtime run``, Kafka bus, ClickHouse server, feed.mode iqconnect,
a limit of 500 each) sharing 800 desired symbols, and 2 writer processes (``python -m storage.writer``).
One collector and one writer are SIGKILLed mid-stream.

Proved against the simulator's own record of every trade it made: the survivors take the dead
collector's symbols over within the group's session timeout plus a few seconds, every trade of the
comparison window is stored exactly once, nothing is stored that the market did not make, and the
trades the dead collector's symbols printed while nobody watched them were recovered by the takeover's
catch-up from tick history (stored as backfilled). The figures (takeover, recovery) are printed and
kept in docs/HA.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bus.keyed_topic import KeyedTopicReader, KeyedTopicWriter, ensure_compacted_topic
from collectors.iqfeed.simulator.config import generated_symbols
from collectors.iqfeed.simulator.trade_log import read_trade_log
from runtime.assignment import assignment_topic, encode_spec
from bus.fleet_channel import STATUS_TOPIC_CONFIGS, status_topic
from runtime.fleet_status import InstanceStatus, decode_statuses
from runtime.symbols import SymbolSpec
from storage.migrate import migrate
from tests.conftest import CLICKHOUSE_PORT, unique_name
from tests.integration._simulator_process import start_simulator
from tests.integration.pipeline import delete_topics, wait_until

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = generated_symbols(800)
LIMIT = 500
SESSION_TIMEOUT_S = 6.0
COLLECTORS = ("c1", "c2", "c3")
WRITERS = ("w1", "w2")
S = 1_000_000_000

Identity = tuple[str, int, int, str, int]  # symbol, ts_ns, total_volume, price (4 decimals), size


@dataclass
class Fleet:
    prefix: str
    tmp: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen]

    def start(self, name: str, module: str, **env: str) -> None:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - the child writes to it until it ends
        self.processes[name] = subprocess.Popen([sys.executable, "-m", module, *(["run"] if module == "runtime" else [])],
                                                cwd=ROOT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-4000:]

    def alive(self) -> None:
        for name, proc in self.processes.items():
            assert proc.poll() is None or proc.returncode == -signal.SIGKILL, (name, self.log(name))


def _simulator(tmp: Path, trade_log: Path) -> tuple[subprocess.Popen, dict[str, int]]:
    return start_simulator(tmp / "simulator.log", "--symbols", str(len(SYMBOLS)), "--rate", "400",
                           "--watch-limit", str(LIMIT), "--watch-limit-per-connection", "--trade-log", str(trade_log),
                           "--history-ticks", "2000000")


class StatusWatch:
    """The fleet status topic, as the dashboard reads it."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.reader = KeyedTopicReader(bootstrap, status_topic(prefix), client_id=unique_name("test"))
        self.reader.start(1)

    def latest(self) -> dict[str, InstanceStatus]:
        self.reader.poll(0.2)
        return {s.instance_id: s for s in decode_statuses(self.reader.entries())[0]}  # collectors (writers publish too)

    def watched_by(self, names: tuple[str, ...], since_ns: int = 0) -> Counter[str]:
        statuses = self.latest()
        return Counter(symbol for name in names if name in statuses and statuses[name].updated_ns >= since_ns
                       for symbol in statuses[name].watched)


def _identities(rows) -> list[Identity]:
    return [(str(symbol), int(ts), int(volume), f"{float(price):.4f}", int(size))
            for symbol, ts, volume, price, size in rows]


@pytest.mark.timeout(420)
def test_a_collector_and_a_writer_sigkilled_mid_stream_are_taken_over_and_each_trade_is_stored_once(
        kafka_bootstrap, server_store, tmp_path):
    prefix = unique_name("ha")
    migrate(server_store)
    trade_log = tmp_path / "trades.csv"
    simulator, ports = _simulator(tmp_path, trade_log)
    # The operator's desired set, as the dashboard writes it: 800 symbols on a 64-partition assignment topic.
    ensure_compacted_topic(kafka_bootstrap, assignment_topic(prefix), 64)
    ensure_compacted_topic(kafka_bootstrap, status_topic(prefix), 1, configs=STATUS_TOPIC_CONFIGS)
    control = KeyedTopicWriter(kafka_bootstrap, client_id="test-dashboard")
    control.put(assignment_topic(prefix), {s: encode_spec(SymbolSpec(s, True, False, 0.0, time.time_ns(), "test"))
                                           for s in SYMBOLS}, timeout_s=30)
    control.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")}
    env.update({
        "TICKOPS_BUS__KIND": "kafka", "TICKOPS_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TICKOPS_KAFKA__TOPIC_PREFIX": prefix, "TICKOPS_KAFKA__CONSUMER_GROUP": f"{prefix}-writer",
        "TICKOPS_KAFKA__SESSION_TIMEOUT_MS": str(int(SESSION_TIMEOUT_S * 1000)),
        "TICKOPS_STORAGE__BACKEND": "server", "TICKOPS_STORAGE__PORT": str(CLICKHOUSE_PORT),
        "TICKOPS_STORAGE__DATABASE": server_store.database, "TICKOPS_MONITORING__ENABLED": "false",
        "TICKOPS_FEED__MODE": "iqconnect", "TICKOPS_FEED__HOST": "127.0.0.1",
        "TICKOPS_FEED__LEVEL1_PORT": str(ports["level1"]), "TICKOPS_FEED__LEVEL2_PORT": str(ports["level2"]),
        "TICKOPS_FEED__ADMIN_PORT": str(ports["admin"]), "TICKOPS_FEED__LOOKUP_PORT": str(ports["lookup"]),
        "TICKOPS_FEED__WATCH_LIMIT": str(LIMIT), "TICKOPS_FEED__SYMBOLS": "[]",
        "TICKOPS_FEED__SUPERVISE": "false", "TICKOPS_STORAGE__EMBEDDED_WRITER": "false",
        "TICKOPS_FLEET__STATUS_INTERVAL_S": "1", "TICKOPS_FLEET__STALE_AFTER_S": "5",
    })
    fleet = Fleet(prefix, tmp_path, env, {})
    watch = StatusWatch(kafka_bootstrap, prefix)
    try:
        for name in WRITERS:
            fleet.start(name, "storage.writer", TICKOPS_INSTANCE_ID=name, TICKOPS_DATA_DIR=str(tmp_path / name))
        for name in COLLECTORS:
            fleet.start(name, "runtime", TICKOPS_INSTANCE_ID=name, TICKOPS_FEED__CLIENT_NAME=name,
                        TICKOPS_DATA_DIR=str(tmp_path / name))

        def all_watched_once(names: tuple[str, ...], since_ns: int = 0) -> bool:
            fleet.alive()
            return watch.watched_by(names, since_ns) == Counter(SYMBOLS)

        def shares() -> dict[str, int]:
            return {name: len(status.watched) for name, status in watch.latest().items() if name in COLLECTORS}

        def spread_over_all() -> bool:
            """Every collector has its share: a member that joins after the others have taken every
            partition gets some only at the group's next rebalance."""
            return len(shares()) == len(COLLECTORS) and all(share > 0 for share in shares().values())

        wait_until(lambda: all_watched_once(COLLECTORS) and spread_over_all(), 120,
                   "800 symbols watched once, shared by all 3 collectors", 0.2)
        window_start_ns = time.time_ns() + 2 * S
        shared = shares()
        assert all(0 < share <= LIMIT for share in shared.values()), shared
        time.sleep(8)

        victim = "c2"
        doomed_symbols = set(watch.latest()[victim].watched)
        killed_ns = time.time_ns()
        fleet.processes[victim].send_signal(signal.SIGKILL)
        survivors = tuple(name for name in COLLECTORS if name != victim)
        time.sleep(2)
        writer_killed = datetime.now(timezone.utc)
        fleet.processes["w1"].send_signal(signal.SIGKILL)  # a writer too, while the takeover is under way
        wait_until(lambda: all_watched_once(survivors, killed_ns), SESSION_TIMEOUT_S + 30,
                   "the survivors watching every symbol", 0.1)
        takeover_s = (time.time_ns() - killed_ns) / S
        time.sleep(5)
        window_end_ns = time.time_ns() - 2 * S

        def missing_now() -> list[Identity]:
            return sorted(set(_made(trade_log, window_start_ns, window_end_ns))
                          - set(_stored(server_store, window_start_ns, window_end_ns)), key=lambda key: key[1])

        # The survivors catch the taken-over symbols up from their stored watermarks (tick history).
        wait_until(lambda: not missing_now(), 120, "every trade of the window stored (the takeover's catch-up)", 1)
        recovered_s = (time.time_ns() - killed_ns) / S - takeover_s
        for name in survivors:
            fleet.processes[name].send_signal(signal.SIGTERM)
        for name in survivors:
            assert fleet.processes[name].wait(60) == 0, fleet.log(name)

        def settled_count() -> int:
            return server_store.query(f"SELECT count() FROM {server_store.table('trades')}")[0][0]

        last = [-1, time.monotonic()]

        def stored_everything() -> bool:  # the surviving writer has stored the bus's backlog
            count = settled_count()
            if count != last[0]:
                last[:] = [count, time.monotonic()]
            return time.monotonic() - last[1] > 4

        wait_until(stored_everything, 90, "the surviving writer to store the backlog", 0.5)
        fleet.processes["w2"].send_signal(signal.SIGTERM)
        assert fleet.processes["w2"].wait(30) == 0, fleet.log("w2")
        assignments = [json.loads(line) for line in (tmp_path / "w2.log").read_text().splitlines()
                       if '"partitions assigned"' in line]
        assert any(a["count"] == 4 * 6 and datetime.fromisoformat(a["ts"].replace("Z", "+00:00")) > writer_killed
                   for a in assignments), f"the surviving writer did not take all 24 data partitions over: {assignments}"
    finally:
        for proc in fleet.processes.values():
            if proc.poll() is None:
                proc.kill()
        simulator.send_signal(signal.SIGTERM)
        simulator.wait(30)
        watch.reader.close()
        delete_topics(kafka_bootstrap, prefix)

    made = _made(trade_log, window_start_ns, window_end_ns)
    stored = _stored(server_store, window_start_ns, window_end_ns)
    doubled = {key: n for key, n in Counter(stored).items() if n > 1}
    assert not doubled, f"{len(doubled)} trades stored more than once, e.g. {list(doubled)[:3]}"
    invented = set(stored) - set(made)
    assert not invented, f"{len(invented)} stored trades the market never made, e.g. {sorted(invented)[:3]}"
    missing = sorted(set(made) - set(stored), key=lambda key: key[1])
    # Nobody watched the victim's symbols from just after the kill to just before the takeover.
    unwatched = [m for m in made if m[0] in doomed_symbols and killed_ns + S // 2 <= m[1] <= killed_ns + (takeover_s - 1) * S]
    backfilled = set(_identities(server_store.query(
        f"SELECT symbol, ts_ns, total_volume, price, size FROM {server_store.table('trades')} WHERE backfilled = 1 "
        f"AND ts_ns >= {window_start_ns} AND ts_ns <= {window_end_ns}")))
    print(f"\nFLEET FIGURES: symbols {len(SYMBOLS)}, shares {shared}, takeover {takeover_s:.1f} s "
          f"(session timeout {SESSION_TIMEOUT_S:.0f} s), trades in window {len(made)}, stored {len(stored)}, "
          f"printed by the victim's {len(doomed_symbols)} symbols while nobody watched them {len(unwatched)}, "
          f"recovered by catch-up {len(backfilled)}, all stored {recovered_s:.1f} s after the takeover")
    assert len(made) > 1000, "too few trades in the comparison window to prove anything"
    assert takeover_s <= SESSION_TIMEOUT_S + 8, f"takeover took {takeover_s:.1f} s"
    assert not missing, f"{len(missing)} trades never stored, e.g. {missing[:3]}"
    assert unwatched and set(unwatched) <= backfilled, "the takeover gap was not recovered by the catch-up"


def _made(trade_log: Path, start_ns: int, end_ns: int) -> list[Identity]:
    """The trades the simulator's market made in the window, as its trade log records them."""
    return [(t.symbol, t.ts_ns, t.total_volume, f"{t.price:.4f}", t.size) for t in read_trade_log(trade_log)
            if start_ns <= t.ts_ns <= end_ns]


def _stored(store, start_ns: int, end_ns: int) -> list[Identity]:
    return _identities(store.query(
        f"SELECT symbol, ts_ns, total_volume, price, size FROM {store.table('trades')} "
        f"WHERE ts_ns >= {start_ns} AND ts_ns <= {end_ns}"))

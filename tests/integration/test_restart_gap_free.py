"""A headless engine SIGKILLed mid-replay and restarted loses no trade and doubles none.

Real processes over real sockets: the simulator replays a slice of the shared 2021 tick
sample (as it stands, 2021 dates and IQFeed's own cumulative volumes) into
``python -m runtime run`` (Kafka bus, ClickHouse server, feed mode ``iqconnect`` pointed at
the simulator). The engine is SIGKILLed while the replay runs, restarted a few seconds
later, and at the end storage holds every replayed trade exactly once, compared by content
identity (symbol, ts_ns, total_volume, price, size) with the replay file and counted with
``count()`` without FINAL. The downtime's trades come back from the lookup port's tick
history (the catch-up from the symbol's watermark); the quotes cannot, and the restart gap
is recorded in ``feed_outages``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from storage.store import StorageError, Store, sql_string
from tests.conftest import CLICKHOUSE_PORT, unique_name
from tests.ports import free_port
from tests.integration._backfill_support import SAMPLE, eastern_us_to_ns
from tests.integration.pipeline import delete_topics, wait_until
from collectors.iqfeed.simulator.wire import parse_history_timestamp

pytestmark = [pytest.mark.timeout(240),
              pytest.mark.skipif(not SAMPLE.exists(), reason="shared IQFeed sample not present")]

ROOT = Path(__file__).resolve().parents[2]
PYTHON = os.environ.get("TICKOPS_PYTHON", sys.executable)
LISTENING = re.compile(r"listening on \S+: level1=(\d+) level2=(\d+) admin=(\d+) lookup=(\d+)")
SYMBOL = "SMPL"
SPEED = 60  # 30 market minutes in 30 s
FIRST, LAST = "2021-03-02 09:30", "2021-03-02 10:00"

Identity = tuple[int, int, float, int]


def _write_slice(path: Path) -> Counter[Identity]:
    """The sample's rows from FIRST to LAST, verbatim; returns their content identities."""
    rows = [line for line in SAMPLE.read_text(encoding="latin-1").splitlines() if FIRST <= line[:16] < LAST]
    path.write_text("\n".join(rows) + "\n", encoding="latin-1")
    identities: Counter[Identity] = Counter()
    for row in rows:
        f = row.split(",")
        identities[(eastern_us_to_ns(parse_history_timestamp(f[0])), int(f[3]), float(f[1]), int(f[2]))] += 1
    return identities


def _start_simulator(replay: Path, log: Path) -> tuple[subprocess.Popen, dict[str, int]]:
    proc = subprocess.Popen(
        [PYTHON, "-m", "collectors.iqfeed.simulator", "--level1-port", "0", "--level2-port", "0", "--admin-port", "0",
         "--lookup-port", "0", "--symbols", SYMBOL, "--replay", str(replay), "--replay-symbol", SYMBOL,
         "--speed", str(SPEED), "--history-ticks", "200000"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    with open(log, "w") as out:
        for line in proc.stderr:
            out.write(line)
            match = LISTENING.search(line)
            if match:
                ports = dict(zip(("level1", "level2", "admin", "lookup"), (int(g) for g in match.groups())))
                break
        else:
            raise AssertionError(f"the simulator did not listen; exit code {proc.wait()}")
    # Keep draining stderr so the simulator never blocks on a full pipe.
    def drain() -> None:
        with open(log, "a") as out:
            for line in proc.stderr:  # type: ignore[union-attr]
                out.write(line)
    threading.Thread(target=drain, daemon=True).start()
    return proc, ports


def _stored(store: Store) -> Counter[Identity]:
    rows = store.query(f"SELECT ts_ns, total_volume, price, size FROM {store.table('trades')} "
                       f"WHERE symbol = {sql_string(SYMBOL)}")
    return Counter((int(t), int(v), float(p), int(s)) for t, v, p, s in rows)


def _count(store: Store) -> int:
    """Rows stored for the symbol, without FINAL; 0 until the engine has created the tables."""
    try:
        return int(store.query(f"SELECT count() FROM {store.table('trades')} WHERE symbol = {sql_string(SYMBOL)}")[0][0])
    except StorageError:
        return 0


def test_an_engine_sigkilled_mid_replay_and_restarted_stores_every_replayed_trade_exactly_once(
        kafka_bootstrap, server_store, tmp_path):
    replayed = _write_slice(tmp_path / "slice.csv")
    sim, ports = _start_simulator(tmp_path / "slice.csv", tmp_path / "simulator.log")
    prefix = unique_name("restart")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")}
    env.update({
        "TICKOPS_DATA_DIR": str(tmp_path / "data"),
        "TICKOPS_FEED__MODE": "iqconnect",
        "TICKOPS_FEED__HOST": "127.0.0.1",
        "TICKOPS_FEED__LEVEL1_PORT": str(ports["level1"]),
        "TICKOPS_FEED__LEVEL2_PORT": str(ports["level2"]),
        "TICKOPS_FEED__ADMIN_PORT": str(ports["admin"]),
        "TICKOPS_FEED__LOOKUP_PORT": str(ports["lookup"]),
        "TICKOPS_FEED__SYMBOLS": f'["{SYMBOL}"]',
        "TICKOPS_BUS__KIND": "kafka",
        "TICKOPS_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TICKOPS_KAFKA__TOPIC_PREFIX": prefix,
        "TICKOPS_KAFKA__CONSUMER_GROUP": prefix,
        "TICKOPS_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "TICKOPS_STORAGE__BACKEND": "server",
        "TICKOPS_STORAGE__PORT": str(CLICKHOUSE_PORT),
        "TICKOPS_STORAGE__DATABASE": server_store.database,
        "TICKOPS_MONITORING__PORT": str(free_port()),
    })
    engine_log = tmp_path / "engine.log"

    def start_engine() -> subprocess.Popen:
        with open(engine_log, "ab") as out:
            return subprocess.Popen([PYTHON, "-m", "runtime", "run"], cwd=ROOT, env=env,
                                    stdout=out, stderr=subprocess.STDOUT)

    def stored_at_least(n: int, proc: subprocess.Popen) -> bool:
        assert proc.poll() is None, f"the engine exited ({proc.returncode}):\n{engine_log.read_text()[-4000:]}"
        return _count(server_store) >= n

    engine = start_engine()
    try:
        wait_until(lambda: stored_at_least(300, engine), 60, "the first engine to store 300 trades")
        engine.send_signal(signal.SIGKILL)
        engine.wait(10)
        killed_at = _count(server_store)
        time.sleep(6)  # the replay goes on: about 6 market minutes the feed sends to nobody
        engine = start_engine()
        # Until every replayed trade is stored, or the stored count stops moving for 20 s.
        deadline, last, still_since = time.monotonic() + 150, -1, time.monotonic()
        while time.monotonic() < deadline:
            assert engine.poll() is None, engine_log.read_text()[-4000:]
            count = _count(server_store)
            if count != last:
                last, still_since = count, time.monotonic()
            if count >= sum(replayed.values()) or time.monotonic() - still_since > 20:
                break
            time.sleep(0.5)
        time.sleep(3)  # a late copy would show up here
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(60) == 0, engine_log.read_text()[-4000:]
    finally:
        if engine.poll() is None:
            engine.kill()
        sim.send_signal(signal.SIGTERM)
        sim.wait(20)
        delete_topics(kafka_bootstrap, prefix)

    stored = _stored(server_store)
    missing, extra = replayed - stored, stored - replayed
    assert killed_at < sum(replayed.values()), "the engine was killed after the replay ended: nothing to prove"
    assert not missing and not extra and _count(server_store) == sum(replayed.values()), (
        f"replayed {sum(replayed.values())} trades, count() says {_count(server_store)} stored "
        f"({killed_at} when the engine was killed); missing {sum(missing.values())} {sorted(missing)[:3]}, "
        f"doubled or unknown {sum(extra.values())} {sorted(extra)[:3]}")

    outages = server_store.query(
        f"SELECT cause, start_ns, argMax(end_ns, recorded_ns) FROM {server_store.table('feed_outages')} "
        f"WHERE symbol = {sql_string(SYMBOL)} AND cause = 'restart' GROUP BY cause, start_ns")
    backfilled = [int(ts) for (ts,) in server_store.query(
        f"SELECT ts_ns FROM {server_store.table('trades')} WHERE symbol = {sql_string(SYMBOL)} AND backfilled = 1")]
    assert len(outages) == 1, f"one restart gap recorded for {SYMBOL}, found {outages}"
    (_, start_ns, end_ns), = outages
    assert backfilled and start_ns <= min(backfilled) and start_ns < end_ns, (start_ns, end_ns, min(backfilled))

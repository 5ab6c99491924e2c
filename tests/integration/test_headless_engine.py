"""`python -m collectors run` against the real broker and server: serves health, stores the
simulator's data, and on SIGTERM flushes so that storage holds exactly what the backup holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from storage.rows import table_for
from storage.segments import list_segments, verify_segment
from tests.conftest import CLICKHOUSE_PORT, unique_name
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def _healthz(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


@pytest.mark.timeout(180)
def test_headless_engine_stores_everything_it_backed_up_and_exits_cleanly(kafka_bootstrap, server_store, tmp_path):
    prefix = unique_name("headless")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")}
    env.update({
        "TICKOPS_DATA_DIR": str(tmp_path),
        "TICKOPS_FEED__SYMBOLS": '["AAPL","MSFT","SPY"]',
        "TICKOPS_FEED__SIMULATOR_RATE": "500",
        "TICKOPS_BUS__KIND": "kafka",
        "TICKOPS_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TICKOPS_KAFKA__TOPIC_PREFIX": prefix,
        "TICKOPS_KAFKA__CONSUMER_GROUP": prefix,
        "TICKOPS_STORAGE__BACKEND": "server",
        "TICKOPS_STORAGE__PORT": str(CLICKHOUSE_PORT),
        "TICKOPS_STORAGE__DATABASE": server_store.database,
        "TICKOPS_MONITORING__PORT": str(port),
    })
    log = open(tmp_path / "engine.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "collectors", "run"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            health = _healthz(port)
            rows = server_store.query(f"SELECT count() FROM {server_store.table('trades')}")[0][0] \
                if health else 0
            if health and health["status"] == "ok" and rows > 50:
                break
            assert proc.poll() is None, (tmp_path / "engine.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail(f"engine not healthy with stored trades in 60 s: {_healthz(port)}")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "tickops_writer_stored_total" in metrics and "tickops_latency_recv_to_stored_seconds_bucket" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        log.close()
    assert code == 0, (tmp_path / "engine.log").read_text()[-3000:]

    backed_up = set()
    for segment in list_segments(tmp_path / "backup"):
        for batch in verify_segment(segment).batches():
            backed_up |= {(e.source, e.seq) for e in batch if table_for(e) is not None}
    stored = []
    for table in ("trades", "quotes", "depth", "feed_status"):
        stored += [(s, int(q)) for s, q in server_store.query(f"SELECT source, seq FROM {server_store.table(table)}")]
    assert backed_up and len(stored) == len(set(stored))
    assert set(stored) == backed_up

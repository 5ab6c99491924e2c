"""`python -m collectors run` through a ClickHouse outage, as an operator runs it.

With storage down it starts and stays up, and ``/healthz`` says degraded naming storage.
SIGTERM ends it within the drain timeout plus 5 s, also while storage is down during a
partition assignment (the writer's retry loop used to wait for storage forever). What it
could not store stays uncommitted on Kafka: a restart with storage back stores it, and the
reconciliation against the engine's own backup segments proves each event stored once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from bus.topics import TopicSet
from events import Event
from storage.segments import list_segments, verify_segment
from storage.server_store import ClickHouseServerStore
from tests.conftest import unique_name
from tests.ports import free_port
from tests.integration.pipeline import assert_stored_exactly_once, delete_topics, stored_count, stored_kinds, wait_until
from tests.integration.test_delivery_faults import PrivateService, private_clickhouse  # noqa: F401 - fixture
from tests.integration.test_headless_engine import _healthz

ROOT = Path(__file__).resolve().parents[2]
DRAIN_S = 10.0  # the default drain_timeout_s


class Headless:
    """One engine configuration; each :meth:`start` is a new process on the same data_dir, topics and database."""

    def __init__(self, tmp_path: Path, kafka_bootstrap: str, clickhouse: PrivateService) -> None:
        self.prefix = unique_name("headless")
        self.data_dir = tmp_path
        self.port = free_port()
        self.log = tmp_path / "engine.log"
        self.database = self.prefix
        self.kafka_bootstrap = kafka_bootstrap
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")}
        self.env.update({
            "TICKOPS_DATA_DIR": str(tmp_path),
            "TICKOPS_FEED__SYMBOLS": '["AAPL","MSFT","SPY"]',
            "TICKOPS_FEED__SIMULATOR_RATE": "300",
            "TICKOPS_BUS__KIND": "kafka",
            "TICKOPS_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "TICKOPS_KAFKA__TOPIC_PREFIX": self.prefix,
            "TICKOPS_KAFKA__CONSUMER_GROUP": self.prefix,
            "TICKOPS_KAFKA__PARTITIONS": "2",
            "TICKOPS_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "TICKOPS_STORAGE__BACKEND": "server",
            "TICKOPS_STORAGE__PORT": str(clickhouse.port),
            "TICKOPS_STORAGE__DATABASE": self.database,
            "TICKOPS_STORAGE__RETRY_MAX_MS": "1000",
            "TICKOPS_MONITORING__PORT": str(self.port),
        })
        self.store = ClickHouseServerStore(port=clickhouse.port, database=self.database,
                                           connect_timeout_s=1.0, send_receive_timeout_s=5.0)

    def start(self) -> subprocess.Popen:
        with open(self.log, "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "collectors", "run"], cwd=ROOT, env=self.env,
                                    stdout=log, stderr=subprocess.STDOUT)

    def tail(self) -> str:
        return self.log.read_text()[-4000:]

    def wait_for(self, proc: subprocess.Popen, condition, timeout_s: float, what: str) -> None:
        def alive_and() -> bool:
            assert proc.poll() is None, f"the engine exited ({proc.returncode}) waiting for {what}:\n{self.tail()}"
            return condition()
        wait_until(alive_and, timeout_s, what, interval_s=0.5)

    def health(self) -> dict:
        return _healthz(self.port) or {}

    def start_storing(self) -> subprocess.Popen:
        """A new process, once it is healthy and has stored some of the simulator's data."""
        proc = self.start()
        self.wait_for(proc, lambda: self.health().get("status") == "ok" and stored_count(self.store) > 100, 60,
                      "the engine to store data")
        return proc

    def sigterm(self, proc: subprocess.Popen) -> None:
        """SIGTERM; fails unless the process exits cleanly within the drain timeout plus 5 s."""
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(DRAIN_S + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
            pytest.fail(f"SIGTERM did not end the engine within {DRAIN_S + 5} s:\n{self.tail()}", pytrace=False)
        assert code == 0, self.tail()

    def join_writer_group(self) -> Consumer:
        """A second member of the writer's group, once the rebalance has assigned it partitions: the
        engine's writer gets a new assignment too and asks storage where each partition ends."""
        intruder = Consumer({"bootstrap.servers": self.kafka_bootstrap, "group.id": self.prefix,
                             "enable.auto.commit": False, "session.timeout.ms": 6000})
        intruder.subscribe(list(TopicSet(self.prefix).event_topics))

        def assigned() -> bool:
            intruder.poll(0.2)
            return bool(intruder.assignment())

        wait_until(assigned, 60, "the rebalance to assign the intruder")
        return intruder

    def backed_up(self) -> list[Event]:
        """Every event the runs ingested: the backup segments (sealed at each clean stop)."""
        return [event for segment in list_segments(self.data_dir / "backup")
                for batch in verify_segment(segment).batches() for event in batch]

    def restart_and_reconcile(self) -> None:
        """Storage is back: a new process stores what the earlier ones left on Kafka, each event once."""
        backlog = len(stored_kinds(self.backed_up()))  # before the new run opens a segment of its own
        proc = self.start()
        try:
            self.wait_for(proc, lambda: self.health().get("status") == "ok" and stored_count(self.store) >= backlog,
                          90, "the restarted engine to store the backlog")
        finally:
            self.sigterm(proc)
        assert_stored_exactly_once(self.store, self.backed_up())

    def close(self) -> None:
        self.store.close()
        delete_topics(self.kafka_bootstrap, self.prefix)


@pytest.fixture
def headless(tmp_path, kafka_bootstrap, private_clickhouse) -> Iterator[Headless]:  # noqa: F811 - fixture
    engine = Headless(tmp_path, kafka_bootstrap, private_clickhouse)
    try:
        yield engine
    finally:
        engine.close()


def degraded_by_storage(health: dict) -> bool:
    return health.get("status") == "degraded" and any("storage" in r for r in health.get("reasons", []))


@pytest.mark.timeout(300)
def test_started_with_storage_down_it_stays_up_degraded_and_sigterm_ends_it_within_the_drain_timeout(
    headless, private_clickhouse  # noqa: F811 - fixture
):
    private_clickhouse.down()
    proc = headless.start()
    try:
        headless.wait_for(proc, lambda: degraded_by_storage(headless.health())
                          and headless.health()["details"]["ingested"] > 200, 60,
                          "/healthz degraded naming storage while the feed runs")
        time.sleep(3)  # still up a while later
        assert proc.poll() is None, headless.tail()
    finally:
        headless.sigterm(proc)
    private_clickhouse.up()
    headless.restart_and_reconcile()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("assignment", [False, True], ids=["mid_run", "during_a_partition_assignment"])
def test_sigterm_while_storage_is_down_ends_within_the_drain_timeout_and_leaves_the_rest_on_kafka(
    headless, private_clickhouse, assignment  # noqa: F811 - fixture
):
    """Mid-run the writer retries its batch for the drain timeout; during an assignment it used to wait
    for storage forever (``Engine.stop`` never returned)."""
    proc = headless.start_storing()
    intruder = None
    try:
        private_clickhouse.down()
        headless.wait_for(proc, lambda: degraded_by_storage(headless.health()), 30, "/healthz to name storage")
        if assignment:
            intruder = headless.join_writer_group()
            headless.wait_for(proc, lambda: "stored positions for an assignment" in headless.log.read_text(), 30,
                              "the engine's writer to retry its assignment against the stopped server")
    finally:
        headless.sigterm(proc)
        if intruder is not None:
            intruder.close()
    private_clickhouse.up()
    headless.restart_and_reconcile()

"""Shared fixtures: the real Kafka broker and ClickHouse server, and chDB.

Integration tests skip when a service is not running on a developer's machine, but
`make test` sets TICKOPS_REQUIRE_SERVICES=1, turning a missing service into a failure,
so CI can never pass by skipping the real infrastructure.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest

from storage.chdb_store import ChdbStore
from storage.server_store import ClickHouseServerStore
from storage.store import Store, StorageError

KAFKA_BOOTSTRAP = f"127.0.0.1:{os.environ.get('TICKOPS_KAFKA_PORT', '9092')}"
CLICKHOUSE_PORT = int(os.environ.get("TICKOPS_CH_TCP_PORT", "9000"))


def _unavailable(what: str) -> None:
    message = f"{what} is not running (start it with scripts/services.sh up)"
    if os.environ.get("TICKOPS_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("tests.kafka")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        metadata = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP, "logger": quiet}).list_topics(timeout=10)
    except Exception:  # noqa: BLE001 - any failure means the broker is not usable
        metadata = None
    if metadata is None or not metadata.brokers:
        _unavailable(f"Kafka broker at {KAFKA_BOOTSTRAP}")
    return KAFKA_BOOTSTRAP


@pytest.fixture
def kafka_topic(kafka_bootstrap: str) -> Iterator[str]:
    """A fresh single-use topic (3 partitions), deleted afterwards."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    name = unique_name("test")
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])[name].result(timeout=30)
    yield name
    admin.delete_topics([name])[name].result(timeout=30)


@pytest.fixture(scope="session")
def clickhouse_server() -> ClickHouseServerStore:
    probe = ClickHouseServerStore(port=CLICKHOUSE_PORT, database="default")
    try:
        probe.query("SELECT 1")
    except StorageError:
        _unavailable(f"ClickHouse server at 127.0.0.1:{CLICKHOUSE_PORT}")
    finally:
        probe.close()
    return probe


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory):
    """The TICKOPS data_dir for in-process code under test; its chDB lives in ``chdb/``."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def chdb_path(data_dir):
    """One chDB data path per test process (chDB allows only one): the same one the app uses."""
    return data_dir / "chdb"


def _isolated(store: Store) -> Iterator[Store]:
    try:
        yield store
    finally:
        store.execute(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


@pytest.fixture
def server_store(clickhouse_server: ClickHouseServerStore) -> Iterator[Store]:
    """A store on the real ClickHouse server with a database of its own, dropped afterwards."""
    yield from _isolated(ClickHouseServerStore(port=CLICKHOUSE_PORT, database=unique_name("t")))


@pytest.fixture
def chdb_store(chdb_path) -> Iterator[Store]:
    """A chDB store with a database of its own, dropped afterwards."""
    yield from _isolated(ChdbStore(chdb_path, database=unique_name("t")))


@pytest.fixture(params=["server", "chdb"])
def store(request: pytest.FixtureRequest) -> Store:
    """The same test on both backends: ClickHouse 18.16 server and chDB 26.x."""
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture(autouse=True)
def _apptest_runs_without_the_first_run_rerun(monkeypatch) -> None:
    """Streamlit's AppTest turns the pages-directory mode back on before each run it makes; the dashboard's
    one rerun out of it (dashboard/navigation_mode.py) would drop the input a test just gave, so in-process
    runs skip it. What it fixes is proven in a real browser (tests/e2e/test_dashboard_first_session.py)."""
    from dashboard import navigation_mode

    monkeypatch.setattr(navigation_mode, "_checked", True)
